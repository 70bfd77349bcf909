"""How much memory a run needs, estimated before its points are drawn, against how much
the machine has: sizes that cannot fit are refused with both numbers instead of ending
in a ``MemoryError`` (or the kernel's out-of-memory killer) mid-run.

The estimate is a lower bound, in bytes, with N rows (collocation points times outputs),
d input dimensions, a model of width w (its widest parameter dimension: GMNM's number of
Gaussians, an MLP's or KAN's hidden width) and P parameters, b bytes per value of the run's
dtype:

==================  ================  ================================================
part                bytes             what
==================  ================  ================================================
points              N · d · (8 + b)   the points as drawn (float64) and in the run's dtype
features            N · w · (2+d) · 2b  each feature's value and derivatives at every
                                      point, kept again for back-propagation; when every
                                      stage is a streamed or sparse least-squares solve,
                                      only for the points of one block or loss piece
least squares       N · w · 16        the float64 matrix of the linear solve and its SVD
                                      factor (least squares, variable projection,
                                      Gauss–Newton on the output layer); at most
                                      16 · w · (w + max(2048, w)) when it streams
                                      (``training/solvers.py``: least squares alone)
Gauss–Newton        N · P · 16        the float64 Jacobian and its QR factor
==================  ================  ================================================

Evaluation runs in chunks and is left out. Under ``torchrun`` each process holds its share
of the points, and least squares, variable projection and Gauss–Newton reduce their rows
to R factors instead of gathering them (``benchmarks/ls_ranks.py``); the estimate is
still that of one process, an upper bound for each rank.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .errors import GMNMError
from .training import GaussNewton, LeastSquares, VarPro
from .training.stages import Stage
from .training.task import feature_bytes, model_width, piece_rows

PARTS = {"points": "the points", "features": "the features and their derivatives",
         "least squares": "the least-squares matrix", "gauss-newton": "the Gauss-Newton Jacobian"}


@dataclass(frozen=True)
class Estimate:
    """Bytes a run needs, by part (see the module's table)."""

    parts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def largest(self) -> str:
        return max(self.parts, key=self.parts.__getitem__)


def estimate(*, rows: int, dim: int, width: int, parameters: int,
             least_squares: bool | str, gauss_newton: bool, bytes_per_value: int,
             feature_rows: int | None = None) -> Estimate:
    """The memory a run needs (see the module's table); ``least_squares`` and
    ``gauss_newton`` say whether it solves for the output layer (``"streamed"``: by a
    solve that can stream) or for all parameters; ``feature_rows``: the rows whose
    features are held at once (None: all)."""
    b = bytes_per_value
    held = rows if feature_rows is None else min(rows, feature_rows)
    return Estimate({
        "points": rows * dim * (8 + b),
        "features": held * feature_bytes(width, dim, b),
        "least squares": (min(rows, width + max(2048, width)) * width * 16
                          if least_squares == "streamed" else
                          rows * width * 16 if least_squares else 0),
        "gauss-newton": rows * parameters * 16 if gauss_newton else 0,
    })


def _feature_rows(rows: int, width: int, dim: int, b: int, stages: Sequence[Stage]) -> int:
    """Rows whose features a run holds at once: all of them, unless every stage is a
    least-squares solve that builds its rows piece by piece — streamed (blocks of
    max(2048, width) points) or sparse (truncated Gaussians, a few hundred rows at a time)
    — and evaluates its loss in pieces (:func:`~pinn_gmnm.training.task.piece_rows`)."""
    solvers = {s.solver if isinstance(s, LeastSquares) else None for s in stages}
    if not stages or not solvers <= {"streamed", "sparse"}:
        return rows
    piece = piece_rows(width, dim, b)
    return max(piece, max(2048, width)) if "streamed" in solvers else piece


def available_memory(device: torch.device) -> tuple[int, str] | None:
    """Bytes free for a run on ``device`` and where the number comes from: the GPU's free
    memory, or the kernel's MemAvailable (/proc/meminfo; elsewhere free physical pages).
    None when the machine does not say."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0], f"free on {device}"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "MemAvailable"
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "free physical memory"
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(*, points: int, outputs: int, dim: int, model: nn.Module, stages: Sequence[Stage],
                 dtype: torch.dtype, device: torch.device) -> None:
    """Refuse a run whose estimated memory exceeds what ``device`` has available, with
    both numbers and what to change (a GMNMError)."""
    width, b = model_width(model), torch.finfo(dtype).bits // 8
    parameters = sum(p.numel() for p in model.parameters())
    full_jacobian = any(isinstance(s, GaussNewton) and not s.head_only for s in stages)
    dense_solve = any(isinstance(s, (VarPro, GaussNewton))
                      or isinstance(s, LeastSquares) and s.solver == "dense" for s in stages)
    head_solve = dense_solve or ("streamed" if any(isinstance(s, LeastSquares) for s in stages)
                                 else False)
    need = estimate(rows=points * outputs, dim=dim, width=width, parameters=parameters,
                    least_squares=head_solve, gauss_newton=full_jacobian, bytes_per_value=b,
                    feature_rows=_feature_rows(points * outputs, width, dim, b, stages))
    have = available_memory(device)
    if have is None or need.total <= have[0]:
        return
    raise GMNMError(
        f"this run needs about {_size(need.total)} of memory, mostly for "
        f"{PARTS[need.largest()]} ({points} points, model width {width}, {parameters} "
        f"parameters), but {_size(have[0])} available ({have[1]}); use fewer --points or "
        "--boundary-points, or a smaller model"
    )


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover
