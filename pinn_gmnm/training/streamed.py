"""Least squares in row blocks: the N × P system is never held whole.

The loss's points are cut into pieces of about ``rows`` points (:func:`pieces`); for each
piece the rows [J | −r₀] of the linear system are built and folded into an R factor,

    R ← R factor of [R; J_piece | −r₀,piece]       (a QR of (P + 1 + rows) × (P + 1)),

so the memory is O(P² + rows · P) instead of O(N · P). The last column of R carries Qᵀ(−r₀):
the final R = [R_J, c] is that of the whole augmented matrix, and the least-squares problem
min ‖J θ + r₀‖ equals min ‖R_J θ − c‖ (up to a constant). It is solved as the dense path
solves J: column scaling (R_J's column norms are J's), then a Tikhonov-filtered SVD
(:func:`~.lsq.filtered_solve`). Householder QR is column-wise backward stable, so the
unequal column norms of J need no scaling beforehand.

Under ``torchrun`` each rank folds its own points, then the ranks' R factors are gathered
and reduced by one more QR (TSQR): (world · (P + 1)) × (P + 1) numbers travel instead of
the rows, and each rank holds O(world · P² + rows · P).

Why not the normal equations, which stream too (JᵀJ summed over pieces)? Squaring the
condition number loses what GMNM needs: on a GMNM system of condition 1e9 they lose about
nine more digits than the R factor, and iterative refinement (a second pass over the
rows per step) recovered only part of them (``benchmarks/ls_growth.py``,
``results/benchmarks/ls-growth.md``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..models.head import LinearHead
from .batch import Batch
from .loss import Loss
from ..distributed import Serial
from .lsq import LstsqSolution, default_rcond, filtered_solve, lstsq, stacked, term_blocks


def pieces(loss: Loss, rows: int) -> list[Batch]:
    """The loss's batch cut into pieces of about ``rows`` points each: the interior points
    and each pointwise condition's points split evenly (some pieces may be empty); a
    condition whose residual pairs its points (periodicity) stays whole, in the first."""
    b, conditions = loss.batch, loss.problem.conditions
    k = max(1, -(-b.size // rows))
    interior = torch.tensor_split(b.interior, k)
    split = [torch.tensor_split(x, k) if c.pointwise else (x, *[x[:0]] * (k - 1))
             for c, x in zip(conditions, b.conditions)]
    return [Batch(interior[i], tuple(s[i] for s in split)) for i in range(k)]


def fold(R: Tensor | None, rows: Tensor) -> Tensor:
    """The R factor of [R; rows] (float64), R None at the start."""
    rows = rows.double()
    return torch.linalg.qr(rows if R is None else torch.cat([R, rows]), mode="r").R


def r_factor(loss: Loss, model: nn.Module, head: LinearHead, rows: int) -> Tensor:
    """The R factor of [J | −r₀] over every rank's points, the same on every rank."""
    R = None
    for piece in pieces(loss, rows):
        J, r0 = stacked(term_blocks(loss, model, head, piece))
        R = fold(R, torch.cat([J, -r0[:, None]], dim=1))
        del J, r0
    assert R is not None
    return across_ranks(loss.parallel, R)


def across_ranks(parallel: Serial, R: Tensor) -> Tensor:
    """The R factor of every rank's rows from each rank's own R factor: the ranks' factors
    gathered and reduced by one more QR (TSQR); R itself in one process."""
    return R if parallel.world == 1 else fold(None, parallel.gather_rows(R))


def reduced_lstsq(parallel: Serial, J: Tensor, r0: Tensor, rcond: float | None = None
                  ) -> Tensor:
    """argmin ‖J θ + r₀‖² over every rank's rows (J, r₀ this rank's), the same on every
    rank. One process solves J itself (:func:`~.lsq.lstsq`); under torchrun each rank
    reduces its [J | −r₀] to an R factor and the ranks' factors are reduced once more
    (TSQR), so no rank holds another's rows."""
    if parallel.world == 1:
        return lstsq(J, -r0, rcond)
    R = across_ranks(parallel, fold(None, torch.cat([J, -r0[:, None]], dim=1)))
    return solve_r(R, J.dtype, rcond).theta


def solve_r(R: Tensor, dtype: torch.dtype, rcond: float | None = None) -> LstsqSolution:
    """The filtered least-squares solution from an augmented R factor [R_J, c]."""
    solution = filtered_solve(R[:, :-1], R[:, -1], default_rcond(dtype, rcond))
    return LstsqSolution(solution.theta.to(dtype), solution.cond, solution.rank)


def streamed_solve(loss: Loss, model: nn.Module, head: LinearHead, rows: int,
                   rcond: float | None = None) -> LstsqSolution:
    """argmin ‖J θ + r₀‖² (regularised as :func:`~.lsq.solve_lstsq`), in pieces of ``rows``
    points."""
    return solve_r(r_factor(loss, model, head, rows), loss.batch.interior.dtype, rcond)
