"""Equilibration: loss terms scaled so that no term swamps another in a least-squares solve.

The loss is Σ_t w_t · mean_i r_{t,i}², and the rows of the linear systems that least
squares, variable projection and Gauss–Newton solve are √(w_t / n_t) ∂r_{t,i}/∂θ. Their
size depends on the operator, not on how much the term matters: for the Laplacian of a
Gaussian of width σ the PDE rows grow like 1/σ², while Dirichlet rows are O(1). With equal
weights least squares then trades boundary error for residual — on a plate with holes the
fit came out a flat 0.5.

Before it solves, each of these stages rescales the terms by the size of their own rows in
the Jacobian with respect to the model's linear output layer (the weights from the linear
system itself),

    w_t = u_t / mean_i ‖∂r_{t,i}/∂θ_head‖²,     u_t the user's weight (default 1),

so that every term's rows have the same mean square norm, u_t / n_t; the user's weights
stay multipliers on top. This is a positive diagonal scaling of the rows: where the
collocation equations can all be met (a well-posed square system) their solution does not
change; where they cannot, each term's share of the error no longer depends on the units
of its operator. Measured with least squares alone on the former default GMNM (400 Gaussians
over the box, 2000 + 400 points): ``poisson`` 3.6e-7 → 1.9e-8, ``helmholtz`` 2.8e-4 → 5.9e-5,
``poisson-neumann`` 2.1e-6 → 3.1e-7, ``poisson-lshape`` 7.1e-2 → 3.9e-2, and on
``poisson-holes`` with 900 Gaussians reaching 20 % past the boundary 3.5e-2 → 3.4e-3.
Scaling every row to unit norm instead (as the random feature method does) was better on
two of these five and worse on three, by less than a factor of two either way.

The scales are computed once, when a stage starts, and kept in the loss weights (saved
with every snapshot, so a resumed run continues with the same objective); the weights and
the condition number of the solved system are reported among the run's events
(``metrics.json``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .jacobian import residual_jacobian
from .task import Task


def apply_term_scales(task: Task, row_sq_sums: Sequence[Tensor | float], kind: str
                      ) -> dict[str, Any]:
    """Set each term's weight to u_t / mean_i ‖J_{t,i}‖² from ``row_sq_sums`` (this rank's
    sums of the squared row norms of each term's unweighted Jacobian) and record an
    ``equilibrated`` event; returns the event, to which a stage may add what it solves."""
    loss = task.loss
    sums = torch.tensor([float(s) for s in row_sq_sums], dtype=torch.float64)
    loss.parallel.sum_([sums])
    factors = []
    for total, count in zip(sums.tolist(), loss.counts):
        mean = total / count
        factors.append(1.0 / mean if math.isfinite(mean) and mean > 0 else 1.0)
    loss.scale_terms(factors)
    event: dict[str, Any] = {"event": "equilibrated", "stage": kind, "step": task.step,
                             "term_scales": dict(zip(loss.names, factors))}
    task.events.append(event)
    return event


def jacobian_row_sums(task: Task, params: Sequence[nn.Parameter]) -> list[float]:
    """Each term's sum of squared row norms of ∂r_t/∂``params``, unweighted (this rank's
    rows), from the Jacobian of the weighted residual vector. A term of weight 0 counts 0."""
    loss = task.loss
    with torch.no_grad():
        sizes = [r.shape[-1] for r in loss.residuals(task.model)]
    _, J = residual_jacobian(loss, task.model, params)
    sums, start = [], 0
    for size, w, count in zip(sizes, loss.weights, loss.counts):
        block = J[start:start + size]
        start += size
        sums.append(float(block.square().sum()) * count / w if w > 0 else 0.0)
    return sums
