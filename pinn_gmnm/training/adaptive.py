"""Training callbacks that adapt the loss as training goes: fresh collocation points,
points added where the residual is largest, and loss weights balanced by gradient norms.

Pass them to ``solve(..., callbacks=[...])``. Each acts every ``every`` recorded steps of
the stages named in ``stages`` (Adam by default: L-BFGS builds a curvature model of one
fixed loss, which changing the points or weights would invalidate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..errors import GMNMError, require_positive
from ..sampling import Sampler, Uniform
from .batch import Batch, sample_batch
from .task import Task


@dataclass
class _Every:
    """Acts on every ``every``-th step of the listed stages."""

    every: int = 100
    stages: Sequence[str] = ("adam",)
    count: int = field(default=0, init=False)  # actions so far (seeds the fresh points)

    def __post_init__(self) -> None:
        require_positive(f"{type(self).__name__} every", self.every, integer=True)

    def due(self, row: dict, task: Task) -> bool:
        return row["stage"] in self.stages and task.step % self.every == 0

    def state_dict(self) -> dict:
        """What a resumed run needs to continue alike (see :meth:`Task.safe_point`)."""
        return {"count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.count = int(state["count"])


@dataclass
class Resample(_Every):
    """Draw a fresh batch of collocation points every ``every`` steps (same counts and
    sampler, a new seed each time): the network never overfits one point set."""

    def on_record(self, row: dict, task: Task) -> None:
        if not self.due(row, task):
            return
        self.count += 1
        old = task.loss.batch
        fresh = sample_batch(task.loss.problem, task.collocation, task.seed + 7919 * self.count
                             ).shard(task.loss.parallel)
        task.loss.batch = fresh.to(old.interior.dtype, old.interior.device)


@dataclass
class Refine(_Every):
    """Residual-based refinement (Lu et al., DeepXDE's RAR): every ``every`` steps,
    evaluate the PDE residual at ``candidates`` fresh random points and add the ``add``
    with the largest squared residual to the interior points, up to ``max_points``."""

    candidates: int = 10_000
    add: int = 100
    max_points: int = 20_000
    sampler: Sampler = field(default_factory=Uniform)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("candidates", "add", "max_points"):
            require_positive(f"Refine {name}", getattr(self, name), integer=True)
        if self.add > self.candidates:
            raise GMNMError(f"Refine: cannot add {self.add} of {self.candidates} candidates")

    def on_record(self, row: dict, task: Task) -> None:
        if not self.due(row, task):
            return
        batch, parallel = task.loss.batch, task.loss.parallel
        # Under torchrun each rank holds a shard: the limit is on all ranks' points.
        room = self.max_points - parallel.total(len(batch.interior))
        if room <= 0:
            return
        self.count += 1
        problem = task.loss.problem
        x = problem.geometry.sample_interior(self.candidates, self.sampler,
                                             task.seed + 104729 * self.count)
        x = x.to(batch.interior)
        score = torch.zeros(len(x), dtype=x.dtype, device=x.device)
        for i in range(0, len(x), 4096):  # chunks keep the autograd graphs small
            xi = x[i:i + 4096]
            rs = problem.residuals(problem.field(task.model, xi), xi)
            score[i:i + 4096] = sum(r.detach().square() for r in rs)
        # every rank scores the same candidates alike
        top = parallel.shard(x[score.topk(min(self.add, room)).indices])
        task.loss.batch = Batch(torch.cat([batch.interior, top]), batch.conditions)


@dataclass
class GradNormBalance(_Every):
    """Adaptive loss weights by gradient-norm balancing (Wang, Teng & Perdikaris 2021;
    the form of Wang et al. 2023): every ``every`` steps,

        ŵ_t = Σ_s ‖∇_θ L_s‖ / ‖∇_θ L_t‖,   w_t ← α w_t + (1 − α) ŵ_t,

    so every term pulls on the parameters equally hard. Weights stay within
    [1/``cap``, ``cap``].
    """

    alpha: float = 0.9
    cap: float = 1e4

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.alpha < 1:
            raise GMNMError(f"GradNormBalance alpha must be in [0, 1), got {self.alpha!r}")
        require_positive("GradNormBalance cap", self.cap)

    def on_record(self, row: dict, task: Task) -> None:
        if not self.due(row, task):
            return
        loss = task.loss
        norms = []
        for part in loss(task.model)[1].values():  # each term's mean square, unweighted
            grads = torch.autograd.grad(part, task.params, retain_graph=True, allow_unused=True)
            flat = torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                              for g, p in zip(grads, task.params)])
            loss.parallel.sum_([flat])  # every rank's share: the same norms everywhere
            norms.append(float(flat.norm()))
        total = sum(norms)
        weights = {}
        for name, w, n in zip(loss.names, loss.weights, norms):
            target = total / n if n > 0 else self.cap
            target = min(max(target, 1 / self.cap), self.cap)
            weights[name] = self.alpha * w + (1 - self.alpha) * target
        loss.set_weights(weights)
