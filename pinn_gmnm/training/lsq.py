"""The linear system of a linear head, and its regularised solution.

For a linear PDE with linear conditions every residual is affine in the weights θ of the
model's linear output layer: r(θ) = J θ + r₀, with each term's rows scaled by √(w_t / n_t)
so that ‖J θ + r₀‖² is the loss. ``J`` is built by evaluating the user's own residual on a
*basis field* (:class:`Basis`), on the loss's batch or on a piece of it (the streamed
solve, :mod:`.streamed`). The solution is a column-scaled, Tikhonov-filtered SVD
(:func:`filtered_solve`), of J itself (:func:`solve_lstsq`) or of its R factor.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..derivatives import Field
from ..models.head import ConstantColumn, LinearHead
from ..problem import Problem
from .batch import Batch
from .loss import Loss


class Basis:
    """Residuals on the basis of a linear head: row 0 is the zero function, row
    1 + c·(m+1) + f is feature f (f = m: the constant) placed in output c."""

    def __init__(self, head: LinearHead, problem: Problem) -> None:
        self.head, self.problem = head, problem
        self.k = head.n_features + 1
        self.rows = self.k * problem.n_outputs + 1

    def _place(self, output: int, values: Tensor) -> Tensor:
        """(n, k) per-feature values of one output → (rows, n)."""
        out = values.new_zeros(self.rows, values.shape[0])
        out[1 + output * self.k: 1 + (output + 1) * self.k] = values.T
        return out

    def field(self, x: Tensor) -> Field:
        p = self.problem
        return Field(ConstantColumn(self.head.features(x)), p.variables, p.outputs, p.spatial,
                     combine=self._place)


def unknowns(loss: Loss, head: LinearHead) -> int:
    """The number of columns of J: (features + 1) per output."""
    return (head.n_features + 1) * loss.problem.n_outputs


Blocks = list[tuple[Tensor, Tensor]]


def term_blocks(loss: Loss, model: nn.Module, head: LinearHead, batch: Batch | None = None,
                *, equal_rows: bool | None = None, residuals: list[Tensor] | None = None
                ) -> Blocks:
    """(J_t, r₀_t) for each loss term t, rows scaled by √(w_t / n_t) (with ``equal_rows``,
    by default the loss's, each row to the norm √(u_t / n_t), u_t the term's user weight;
    rows of norm 0 as before): this rank's rows (of ``batch``, a piece of the loss's
    batch, when given). ``residuals``: the terms' residuals on the head's basis
    (:class:`Basis`) when the caller has them already."""
    equal = loss.equal_rows if equal_rows is None else equal_rows
    rs = loss.residuals(model, Basis(head, loss.problem), batch=batch) if residuals is None \
        else residuals
    blocks = []
    for w, u, R, count in zip(loss.weights, loss.user_weights, rs, loss.counts):
        J, r0 = (R[1:] - R[0]).T, R[0]
        scale = math.sqrt(w / count)
        if equal:
            norms = J.norm(dim=1)
            rows = torch.where(norms > 0, math.sqrt(u / count) / norms.clamp_min(1e-300), scale)
            blocks.append((J * rows[:, None], r0 * rows))
        else:
            blocks.append((J * scale, r0 * scale))
    return blocks


def basis_square_sums(residuals: list[Tensor]) -> list[Tensor]:
    """Each term's sum of squared row norms of its unweighted linear system, from its
    residuals on the head's basis (:class:`Basis`): what equilibration scales by."""
    return [(R[1:] - R[0]).square().sum() for R in residuals]


def stacked(blocks: Blocks) -> tuple[Tensor, Tensor]:
    return torch.cat([J for J, _ in blocks]), torch.cat([r for _, r in blocks])


def linear_system(loss: Loss, model: nn.Module, head: LinearHead) -> tuple[Tensor, Tensor]:
    """(J, r₀) with loss(θ) = ‖J θ + r₀‖², θ the head flattened output by output,
    with every rank's rows in the order one process would have them."""
    return gathered(loss, term_blocks(loss, model, head))


def gathered(loss: Loss, blocks: Blocks) -> tuple[Tensor, Tensor]:
    """Every rank's rows of the linear system, on every rank (identity in one process)."""
    p = loss.parallel
    return stacked([(p.gather_rows(J), p.gather_rows(r[:, None])[:, 0]) for J, r in blocks])


def lstsq(J: Tensor, rhs: Tensor, rcond: float | None = None) -> Tensor:
    """argmin ‖J θ − rhs‖² + Tikhonov regularisation, solved stably in float64
    (see :func:`solve_lstsq`)."""
    return solve_lstsq(J, rhs, rcond).theta


@dataclass(frozen=True)
class LstsqSolution:
    """A least-squares solution and what the solve saw of the system."""

    theta: Tensor
    cond: float
    """Condition number s_max / s_min of the column-scaled matrix."""
    rank: int
    """Singular values above ``rcond · s_max``: the directions resolved undamped."""
    seconds: float = 0.0
    """The factorisations' wall time (QR and SVD, without building the system; 0 where
    the solver does not time them apart, e.g. streamed solves build rows as they go)."""


QR_FIRST = 2
"""A system with at least this many times more rows than columns is reduced to its R
factor before the SVD (as the streamed solve does, :mod:`.streamed`): the same problem, in
two thirds of the time (12 000 × 2600: 7.0 s against 10.4 s, the SVD of J itself)."""


def solve_lstsq(J: Tensor, rhs: Tensor, rcond: float | None = None) -> LstsqSolution:
    """argmin ‖J θ − rhs‖² + Tikhonov regularisation, solved stably in float64
    (:func:`filtered_solve` of J itself, or of its R factor when J has ``QR_FIRST`` times
    more rows than columns). ``rcond`` defaults to 100 × the machine epsilon of J's dtype.
    (Rows are the caller's: the stages scale them by term, see :mod:`.equilibrate`.)"""
    start = time.perf_counter()
    M, b = J.double(), rhs.double()
    if M.shape[0] >= QR_FIRST * M.shape[1]:
        R = torch.linalg.qr(torch.cat([M, b[:, None]], dim=1), mode="r").R
        M, b = R[:-1, :-1], R[:-1, -1]
    solution = filtered_solve(M, b, default_rcond(J.dtype, rcond))
    return LstsqSolution(solution.theta.to(J.dtype), solution.cond, solution.rank,
                         time.perf_counter() - start)


SVD_COST = 8.0
"""The SVD of a c × c matrix costs about ``SVD_COST`` · c³ in the units where the QR of
rows × c costs rows · c² (float64, 2-core CPU, c = 1000 to 2750, best of two runs: the QR
0.04 ns × rows · c², the SVD 0.33 to 0.38 ns × c³)."""


def lstsq_cost(rows: int, cols: int) -> float:
    """The relative cost of :func:`solve_lstsq`'s factorisations for a rows × cols system:
    the QR that reduces a tall one to its R factor, then the SVD (of J itself when not
    tall enough for the QR). Ratios of it scale a measured solve to another size."""
    if rows >= QR_FIRST * cols:
        return float(rows) * cols * cols + SVD_COST * float(cols) ** 3
    return SVD_COST * float(max(rows, cols)) * min(rows, cols) ** 2


def default_rcond(dtype: torch.dtype, rcond: float | None) -> float:
    return 100 * torch.finfo(dtype).eps if rcond is None else rcond


def filtered_solve(M: Tensor, rhs: Tensor, rcond: float) -> LstsqSolution:
    """argmin ‖M θ − rhs‖² + Tikhonov regularisation, for M = J (rhs the right-hand side)
    or M = R, an R factor of J (rhs = Qᵀ times the right-hand side: the same problem).

    Columns are scaled to unit norm (R's column norms are J's), then the SVD solution is
    filtered with Tikhonov factors s / (s² + (rcond · s_max)²): singular values far below
    ``rcond · s_max`` are damped instead of amplifying rounding errors.
    """
    scale = M.norm(dim=0)
    # A column (nearly) zero on every point — a KAN spline no sample reaches — is left to
    # the regularisation instead of being blown up to an enormous weight.
    scale = scale.clamp_min(1e-12 * float(scale.max()) + torch.finfo(M.dtype).tiny)
    U, S, Vh = torch.linalg.svd(M / scale, full_matrices=False)
    lam = rcond * S[0]
    filt = S / (S.square() + lam * lam)
    theta = Vh.T @ (filt * (U.T @ rhs))
    cond = float(S[0] / S[-1]) if float(S[-1]) > 0 else math.inf
    return LstsqSolution(theta / scale, cond, int((S > lam).sum()))
