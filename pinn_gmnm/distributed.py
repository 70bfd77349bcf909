"""Data-parallel training with ``torch.distributed``, launched by ``torchrun``.

Every rank holds the whole model and a shard of the collocation points (rank r keeps
points r, r + world, r + 2·world, …). Each loss term is a sum over all points divided by
the *global* number of points, so the ranks' contributions add up to exactly the loss of
one process holding every point; gradients and loss values are summed across ranks with
an explicit all-reduce after every backward pass (this also works inside an L-BFGS
closure, where DistributedDataParallel does not fit), so every rank takes the identical
step. Least squares, variable projection and Gauss–Newton reduce each rank's rows of their
linear systems to an R factor and combine the ranks' R factors (TSQR,
:mod:`pinn_gmnm.training.streamed`), so no rank holds another's rows and every rank solves
the same small system (Gauss–Newton gathers rows only when there are fewer of them than
parameters). Only rank 0 writes artifacts.

Backends: NCCL on GPUs, gloo on CPUs. Launch, e.g.::

    torchrun --nproc-per-node 2 -m pinn_gmnm.cli.main solve poisson --device cpu
"""

from __future__ import annotations

import atexit
import datetime
import os
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import Tensor


class Serial:
    """One process: every collective is the identity."""

    rank = 0
    world = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, x: Tensor) -> Tensor:
        return x

    def total(self, count: int) -> int:
        return count

    def sum_(self, tensors: Sequence[Tensor]) -> None:
        """Sum tensors across ranks, in place."""

    def sum_grads(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Sum parameter gradients across ranks, in place."""

    def gather_rows(self, x: Tensor) -> Tensor:
        return x

    def any(self, flag: bool) -> bool:
        return flag

    def broadcast_(self, tensors: Sequence[Tensor]) -> None:
        """Copy rank 0's values into every rank's tensors."""


class Parallel(Serial):
    """Several processes in an initialised default process group."""

    def __init__(self) -> None:
        self.rank, self.world = dist.get_rank(), dist.get_world_size()

    def shard(self, x: Tensor) -> Tensor:
        return x[self.rank::self.world]

    def total(self, count: int) -> int:
        t = torch.tensor([count], dtype=torch.float64, device=self._device)
        dist.all_reduce(t)
        return int(t.item())

    @property
    def _device(self) -> torch.device:
        if dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def sum_(self, tensors: Sequence[Tensor]) -> None:
        if not tensors:
            return
        flat = torch.cat([t.reshape(-1) for t in tensors])
        dist.all_reduce(flat)
        i = 0
        for t in tensors:
            t.copy_(flat[i:i + t.numel()].view_as(t))
            i += t.numel()

    def sum_grads(self, params: Sequence[torch.nn.Parameter]) -> None:
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        self.sum_([p.grad for p in params])

    def gather_rows(self, x: Tensor) -> Tensor:
        """Every rank's rows, interleaved back into the order of the unsharded tensor
        (rank r holds rows r, r + world, …; ranks may hold different numbers of rows)."""
        n = torch.tensor([x.shape[0]], device=x.device)
        sizes = [torch.zeros_like(n) for _ in range(self.world)]
        dist.all_gather(sizes, n)
        top = int(max(s.item() for s in sizes))
        padded = x.new_zeros((top, *x.shape[1:]))
        padded[: x.shape[0]] = x
        parts = [torch.zeros_like(padded) for _ in range(self.world)]
        dist.all_gather(parts, padded.contiguous())
        out = x.new_empty((int(sum(s.item() for s in sizes)), *x.shape[1:]))
        for r, (part, size) in enumerate(zip(parts, sizes)):
            out[r::self.world] = part[: int(size.item())]
        return out

    def any(self, flag: bool) -> bool:
        t = torch.tensor([1.0 if flag else 0.0], device=self._device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def broadcast_(self, tensors: Sequence[Tensor]) -> None:
        for t in tensors:
            dist.broadcast(t, src=0)


SERIAL = Serial()


def launched_by_torchrun() -> bool:
    """True in a process started by torchrun with more than one rank."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_main_process() -> bool:
    """False on every torchrun rank but rank 0 (which alone prints and writes)."""
    return int(os.environ.get("RANK", "0")) == 0


def setup(device: torch.device) -> tuple[Serial, torch.device]:
    """The parallel context for this process and the device it should use.

    Under torchrun (WORLD_SIZE > 1) this initialises the default process group (NCCL for
    CUDA devices, gloo otherwise) once, and on GPUs gives each rank the GPU numbered by
    its LOCAL_RANK. Otherwise it returns the serial context and ``device`` unchanged.
    """
    if not launched_by_torchrun():
        return SERIAL, device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        # torn down before the interpreter exits: a process group left to the C++
        # destructors can abort at exit ("terminate called without an active exception")
        # after the run finished, seen with gloo on a loaded machine
        atexit.register(_teardown)
    return Parallel(), device


def _teardown() -> None:
    """Wait for every rank (at most a minute: a rank that died is not waited for), then
    destroy the group: a rank tearing its connections down while another still uses
    them aborts, at exit, after the run's work is done."""
    if not dist.is_initialized():
        return
    try:
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=datetime.timedelta(seconds=60))
        else:
            dist.barrier()
    except Exception:  # noqa: BLE001  a peer gone already: tear down regardless
        pass
    dist.destroy_process_group()
