"""Early stopping on held-out collocation points, for stages that move many parameters.

Variable projection moves every centre and projection of a GMNM — m(d + kd) parameters,
often more than there are collocation equations. It then can lower the loss on the
training points while the fit gets worse between them: on the fitting target
``exp-sin-4d`` (625 Gaussians in 4D, 2000 samples, 13 126 parameters) the first ten
iterations took the test error from 0.18 to 0.27.

:class:`HeldOut` draws a second set of collocation points (same counts and sampler, another
seed), and after each group of iterations evaluates the loss there with the training
loss's weights. When it rises, the parameters go back to where they were before the group
and the stage stops. The held-out set is never trained on; for a fit it is a validation set
in the usual sense, for a PDE it holds fresh residual and boundary points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .batch import sample_batch
from .loss import Loss
from .task import Task, assign_vector, parameter_vector

SEED_OFFSET = 7919
"""Held-out points are drawn with the run's seed plus this (a prime: no overlap with the
seeds the training points use)."""


def row_norms(loss: Loss, model: nn.Module) -> list[Tensor]:
    """Each term's row norms ‖∂r_i/∂θ_head‖ of the linear system at ``loss``'s points,
    unweighted (1 where 0)."""
    from .linear import linear_head  # linear imports this module
    from .lsq import Basis

    with torch.no_grad():
        rows = loss.residuals(model, Basis(linear_head(model), loss.problem))
    norms = [(R[1:] - R[0]).norm(dim=0) for R in rows]
    return [torch.where(n > 0, n, torch.ones_like(n)) for n in norms]


class HeldOut:
    """The loss on held-out points, and a roll-back of ``params`` when it rises.

    ``per_row``: each residual is divided by the norm of its row of the linear system
    (∂r_i/∂θ over the model's linear output layer) and the terms weighed by the user's
    weights (the division already takes out the operator's scale, which the term scales
    would take out a second time). For the Laplacian of Gaussians of local width σ that is
    about σ² |r_i|: an error indicator that a narrow Gaussian's large second derivatives do
    not swamp, as local growth needs (:mod:`.growth`)."""

    def __init__(self, task: Task, params: Sequence[nn.Parameter], *, per_row: bool = False) -> None:
        loss = task.loss
        x = loss.batch.interior
        batch = task.held_out_points(
            sample_batch(loss.problem, task.collocation, task.seed + SEED_OFFSET))
        self.loss = Loss(loss.problem, batch.shard(loss.parallel).to(x.dtype, x.device),
                         loss.weights_given, parallel=loss.parallel)
        self.params, self.per_row = list(params), per_row
        self.best = self.value(task)
        self.kept = parameter_vector(self.params)

    def value(self, task: Task) -> float:
        """Σ_t w_t mean(r_t²) on the held-out points, w_t the training loss's weights
        (the user's, ``per_row``)."""
        return self.weigh(task, self.terms(task))

    def weigh(self, task: Task, terms: Sequence[float]) -> float:
        """The value of :meth:`terms` taken earlier, weighed as :meth:`value` weighs."""
        weights = task.loss.user_weights if self.per_row else task.loss.weights
        return float(sum(w * t for w, t in zip(weights, terms)))

    def terms(self, task: Task) -> list[float]:
        """Each term's mean(r_t²) on the held-out points, unweighted (``per_row``: of
        r_i / ‖∂r_i/∂θ_head‖): what :meth:`value` weighs (so that a loss reweighted later
        can weigh them again)."""
        with torch.no_grad():
            rs = self.loss.residuals(task.model)
            if self.per_row:
                rs = [r / n for r, n in zip(rs, row_norms(self.loss, task.model))]
        sums = torch.stack([r.square().sum() for r in rs]).double().cpu()
        task.loss.parallel.sum_([sums])
        return [s / c for s, c in zip(sums.tolist(), self.loss.counts)]

    def rose(self, task: Task) -> bool:
        """Whether the held-out loss rose since the last call (or the start); if so the
        parameters are put back to their values then."""
        now = self.value(task)
        if not now <= self.best:  # NaN counts as a rise
            assign_vector(self.params, self.kept)
            return True
        self.best = now if math.isfinite(now) else self.best
        self.kept = parameter_vector(self.params)
        return False

    def improved(self, task: Task) -> bool:
        """Whether the held-out loss is below its best so far; if so the parameters are
        kept as the best (:meth:`restore` puts them back)."""
        now = self.value(task)
        if not now < self.best:  # NaN is no improvement
            return False
        self.best, self.kept = now, parameter_vector(self.params)
        return True

    def restore(self) -> None:
        """Put back the parameters of the best held-out loss."""
        assign_vector(self.params, self.kept)
