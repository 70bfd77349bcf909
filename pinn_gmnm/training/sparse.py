"""Least squares with a sparse Jacobian: Gaussians truncated where they fall below rounding.

A Gaussian g_i(x) = exp(−½ q_i(x)) is below ``tol`` (default: the dtype's machine epsilon,
relative to its peak 1) where q_i(x) > 2 ln(1/tol); this solver treats it, and its
derivatives, as exactly zero there (for a derivative the neglected part is below
``tol`` · q · ‖A_i‖, rounding level beside the derivative's peak ‖A_i‖). Narrow Gaussians
then touch few points each and J (N × P) is sparse: it is built in CSR form, never dense,
and solved by LSMR after scaling its columns to unit norm (the preconditioner; the dense
solves scale the same way).

The rows come from the user's residual as in the dense path, without evaluating it on
every Gaussian: the residual is affine in the quantities it asks for (u, ∂u/∂x, Δu, …),
so it is evaluated once on a *query basis* (:class:`QueryBasis`) whose row q sets the
q-th quantity to 1 and the others to 0. That gives each point's coefficients c_q(x) and
r₀(x), and the row of J at x is Σ_q c_q(x) · ∂quantity_q/∂θ — each a sparse row of
truncated Gaussian derivatives (:class:`Gaussians`). A condition whose residual pairs its
points (periodicity) gets its few rows densely.

Which solver to use when: the sparse path pays off for GMNM models with narrow Gaussians
(``width_factor`` ≲ 1, many components); the default broad Gaussians (4 × the spacing)
overlap everywhere, J is dense in all but name, and ``dense`` or ``streamed`` is the right
choice (see ``results/benchmarks/ls-growth.md``: measured, not assumed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ..derivatives import Field
from ..errors import GMNMError
from ..models.head import LinearHead
from ..problem import Problem
from .loss import Loss
from .batch import Batch
from .lsq import Basis, LstsqSolution
from .solvers import LinearSolver

Query = tuple[str, int, tuple[int, ...]]
"""(kind, output, axes): kind ``value``, ``partial`` or ``laplacian``."""


class QueryBasis:
    """Basis fields whose row 1 + q answers 1 to the q-th distinct quantity asked
    (numbered as the residuals ask them) and 0 to every other; row 0 answers 0 to all."""

    LIMIT = 32

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.rows = self.LIMIT + 1
        self.queries: list[Query] = []

    def index(self, query: Query) -> int:
        if query not in self.queries:
            if len(self.queries) == self.LIMIT:
                raise GMNMError(f"the residual asks for more than {self.LIMIT} different "
                                "derivatives; the sparse solver cannot build its rows")
            self.queries.append(query)
        return 1 + self.queries.index(query)

    def field(self, x: Tensor) -> Field:
        p = self.problem
        return Field(_OneHot(self, x, p.n_outputs), p.variables, p.outputs, p.spatial)


class _OneHot:
    def __init__(self, basis: QueryBasis, x: Tensor, outputs: int) -> None:
        self.basis, self.x, self.outputs = basis, x, outputs

    def _hot(self, query: Query) -> Tensor:
        out = self.x.new_zeros(self.basis.rows, len(self.x))
        out[self.basis.index(query)] = 1.0
        return out

    def value(self) -> Tensor:
        return torch.stack([self._hot(("value", c, ())) for c in range(self.outputs)], dim=1)

    def partial(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        assert output is not None
        return self._hot(("partial", output, axes) if axes else ("value", output, ()))

    def laplacian(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        assert output is not None
        return self._hot(("laplacian", output, axes))


POINTS_PER_BLOCK = 4096
"""Points whose pairs are found and evaluated at once (bounds the temporaries)."""


class Gaussians:
    """The model's Gaussians in physical coordinates, with a k-d tree over their centres
    and the radius beyond which every one is below ``tol`` (from A_i's smallest
    eigenvalue)."""

    def __init__(self, A: Tensor, mu: Tensor, tol: float) -> None:
        from scipy.spatial import cKDTree

        self.A, self.mu = A, mu
        self.limit = 2 * math.log(1 / tol)
        smallest = torch.linalg.eigvalsh(A)[:, 0].clamp_min(torch.finfo(A.dtype).tiny)
        self.radius = float((self.limit / smallest).sqrt().max())
        self.tree = cKDTree(mu.detach().cpu().numpy())

    def pairs(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(i, j, z, Az) for every point i of ``x`` and Gaussian j with
        q_j(x_i) = z·Az ≤ 2 ln(1/tol), z = x_i − μ_j."""
        from scipy.spatial import cKDTree

        found = cKDTree(x.detach().cpu().numpy()).sparse_distance_matrix(
            self.tree, self.radius, output_type="ndarray")
        i = torch.from_numpy(found["i"].astype(np.int64)).to(x.device)
        j = torch.from_numpy(found["j"].astype(np.int64)).to(x.device)
        z = x[i] - self.mu[j]
        d = x.shape[1]
        Az = torch.stack([sum(self.A[:, a, b][j] * z[:, b] for b in range(d))
                          for a in range(d)], dim=1)
        keep = (z * Az).sum(dim=1) <= self.limit
        return i[keep], j[keep], z[keep], Az[keep]

    def quantity(self, query: Query, j: Tensor, z: Tensor, Az: Tensor, g: Tensor) -> Tensor:
        """∂quantity/∂π_j at the pairs: the Gaussian's value, first or second partial
        derivative or Laplacian (see :class:`~pinn_gmnm.models.gmnm.MixtureEngine`)."""
        kind, _, axes = query
        if kind == "value":
            return g
        if kind == "laplacian":
            trace = sum(self.A[:, a, a][j] for a in axes)
            return g * (Az[:, list(axes)].square().sum(dim=1) - trace)
        if len(axes) == 1:
            return -g * Az[:, axes[0]]
        if len(axes) == 2:
            a, b = axes
            return g * (Az[:, a] * Az[:, b] - self.A[:, a, b][j])
        raise GMNMError(f"the sparse solver has derivatives up to second order, not {len(axes)}")


GRAM_GROUP = 256
"""Rows whose share of JᵀJ is formed at once, as one dense product (see :func:`_gram`)."""


def spatial_order(x: Tensor, group: int) -> Tensor:
    """A permutation of the points ``x`` (n × d) that keeps runs of about ``group`` of
    them in one small box: the bounding box is cut into cells holding about ``group``
    points each, and the points are sorted by cell, cells in a snake-like lexicographic
    order (each next cell a neighbour of the last)."""
    if len(x) <= group:
        return torch.arange(len(x), device=x.device)
    low, high = x.min(dim=0).values, x.max(dim=0).values
    extent = (high - low).clamp_min(torch.finfo(x.dtype).eps)
    used = extent > 1e-9 * float(extent.max())  # flat axes (a face of a box) are not cut
    cells_total = len(x) / group
    side = float((extent[used].prod() / cells_total) ** (1.0 / int(used.sum())))
    counts = torch.where(used, (extent / side).ceil(), torch.ones_like(extent)).long()
    index = ((x - low) / extent * counts).long().clamp(max=counts - 1)
    key = torch.zeros(len(x), dtype=torch.long, device=x.device)
    for a in range(x.shape[1]):  # boustrophedon: each axis runs back on odd rows
        step = torch.where(key % 2 == 1, counts[a] - 1 - index[:, a], index[:, a])
        key = key * counts[a] + step
    return torch.sort(key, stable=True).indices


def sparse_blocks(loss: Loss, model: nn.Module, head: LinearHead, tol: float,
                  weighted: bool = True) -> list[tuple[list, np.ndarray]]:
    """Each term's rows as scipy CSR matrices (blocks of :data:`POINTS_PER_BLOCK` rows,
    P columns) and r₀_t, scaled by √(w_t / n_t) (``weighted``) or not; this rank's rows,
    each pointwise term's in the order of :func:`spatial_order`."""
    import scipy.sparse as sp

    from ..models.gmnm import GMNM

    if not isinstance(model, GMNM):
        raise GMNMError(f"the sparse least-squares solver needs a GMNM model (truncated "
                        f"Gaussians), not {type(model).__name__}; use solver 'dense' or "
                        "'streamed'")
    p = loss.problem
    basis = QueryBasis(p)
    with torch.no_grad():
        rs = loss.residuals(model, basis)
        gaussians = Gaussians(*model.physical(), tol)
    m, k = head.n_features, head.n_features + 1
    sets = [loss.batch.interior] * (len(rs) - len(p.conditions)) + list(loss.batch.conditions)
    blocks = []
    equations = len(rs) - len(p.conditions)
    for t, (R, x) in enumerate(zip(rs, sets)):
        scale = math.sqrt(loss.weights[t] / loss.counts[t]) if weighted else 1.0
        if t >= equations and not p.conditions[t - equations].pointwise:
            blocks.append(_dense_term(loss, model, head, t, scale))
            continue
        # rows in spatial order: least squares does not care, the Gram product does
        order = spatial_order(x, GRAM_GROUP)
        x, R = x[order], R[:, order]
        coef = (R[1:len(basis.queries) + 1] - R[0]) * scale
        pieces = []
        for start in range(0, len(x), POINTS_PER_BLOCK):
            stop = min(start + POINTS_PER_BLOCK, len(x))
            i, j, z, Az = gaussians.pairs(x[start:stop])
            g = torch.exp(-0.5 * (z * Az).sum(dim=1))
            rows, cols, vals = [], [], []
            for c in range(p.n_outputs):
                data = torch.zeros_like(g)
                bias = x.new_zeros(stop - start)
                for n, query in enumerate(basis.queries):
                    if query[1] != c or not bool(coef[n, start:stop].any()):
                        continue
                    data += coef[n, start:stop][i] * gaussians.quantity(query, j, z, Az, g)
                    if query[0] == "value":
                        bias += coef[n, start:stop]
                rows += [i, torch.arange(stop - start, device=x.device)]
                cols += [c * k + j, torch.full((stop - start,), c * k + m, device=x.device)]
                vals += [data, bias]
            del i, j, z, Az, g
            block = sp.csr_matrix((torch.cat(vals).cpu().numpy(),
                                   (torch.cat(rows).cpu().numpy().astype(np.int32),
                                    torch.cat(cols).cpu().numpy().astype(np.int32))),
                                  shape=(stop - start, k * p.n_outputs))
            block.eliminate_zeros()
            pieces.append(block)
        blocks.append((pieces, (R[0] * scale).cpu().numpy()))
    return blocks


def _dense_term(loss: Loss, model: nn.Module, head: LinearHead, t: int, scale: float
                ) -> tuple[list, np.ndarray]:
    """The rows of a condition whose residual pairs its points (periodicity), which the
    query basis cannot split by point: built densely (they are few), in CSR form."""
    import scipy.sparse as sp

    b = loss.batch
    c = t - (len(loss.weights) - len(b.conditions))
    only = Batch(b.interior[:0], tuple(x if i == c else x[:0] for i, x in enumerate(b.conditions)))
    with torch.no_grad():
        R = loss.residuals(model, Basis(head, loss.problem), batch=only)[t]
    J = sp.csr_matrix(((R[1:] - R[0]).T * scale).cpu().numpy())
    return [J], (R[0] * scale).cpu().numpy()


@dataclass(frozen=True)
class Sparse(LinearSolver):
    """Truncated Gaussians, a CSR Jacobian and LSMR (see the module).

    ``tol``: truncation level (None: the dtype's epsilon). The columns are scaled to unit
    norm; with ``gram`` LSMR also runs on J R⁻¹, R the Cholesky factor of the Gram matrix
    JᵀJ + ``shift`` · I (dense, 8 P² bytes, formed from the sparse J; the shift keeps
    the factorisation of a nearly singular JᵀJ going; None: from rounding level up, see
    :func:`_gram_factor`), which leaves LSMR a handful of iterations where column scaling
    alone needs thousands (measured: ``results/benchmarks/ls-growth.md``,
    ``results/benchmarks/ls-target.md``). ``atol``/``btol`` and ``max_iter`` (None:
    20 · P) are LSMR's stopping rules. One process only. The condition number reported is
    LSMR's estimate for the matrix it iterated on; the rank is not computed (P is given).
    """

    tol: float | None = None
    gram: bool = True
    shift: float | None = None
    atol: float = 1e-14
    btol: float = 1e-14
    max_iter: int | None = None
    name: ClassVar[str] = "sparse"

    def _tol(self, loss: Loss) -> float:
        return self.tol if self.tol is not None else torch.finfo(loss.batch.interior.dtype).eps

    def _check(self, loss: Loss) -> None:
        if loss.parallel.world > 1:
            raise GMNMError("the sparse least-squares solver runs in one process; under "
                            "torchrun use solver 'streamed'")

    def row_sums(self, loss: Loss, model: nn.Module, head: LinearHead) -> list[Tensor]:
        self._check(loss)
        blocks = sparse_blocks(loss, model, head, self._tol(loss), weighted=False)
        dtype = loss.batch.interior.dtype
        return [torch.tensor(sum(float(np.square(b.data).sum()) for b in pieces), dtype=dtype)
                for pieces, _ in blocks]

    def solve(self, loss: Loss, model: nn.Module, head: LinearHead, rcond: float | None
              ) -> LstsqSolution:
        self._check(loss)
        return self.solve_blocks(sparse_blocks(loss, model, head, self._tol(loss)),
                                 loss.batch.interior)

    def solve_blocks(self, blocks: list[tuple[list, np.ndarray]], like: Tensor
                     ) -> LstsqSolution:
        """The solution for rows built by :func:`sparse_blocks` (consumed), as a tensor
        of ``like``'s dtype and device."""
        from scipy.sparse.linalg import LinearOperator, lsmr

        J = _stack([b for pieces, _ in blocks for b in pieces])
        r0 = np.concatenate([r for _, r in blocks])
        blocks.clear()
        scale = np.sqrt(np.bincount(J.indices, weights=np.square(J.data), minlength=J.shape[1]))
        scale = np.maximum(scale, 1e-12 * scale.max() + np.finfo(np.float64).tiny)
        J.data /= scale[J.indices]
        R = _gram_factor(J, self.shift) if self.gram else None
        A = J if R is None else LinearOperator(
            J.shape, matvec=lambda v: J @ _solve(R, v), rmatvec=lambda u: _solve(R, J.T @ u, True),
            dtype=np.float64)
        limit = self.max_iter if self.max_iter is not None else 20 * J.shape[1]
        y, _, _, _, _, _, cond_a, _ = lsmr(A, -r0, atol=self.atol, btol=self.btol, maxiter=limit)
        if R is not None:
            y = _solve(R, y)
        theta = torch.from_numpy(y / scale).to(dtype=like.dtype, device=like.device)
        return LstsqSolution(theta, float(cond_a), J.shape[1])  # rank: not computed


def _stack(parts: list):
    """CSR blocks with the same columns stacked into one CSR matrix, its arrays joined
    directly (scipy's vstack passes through COO: three more arrays of nonzeros)."""
    import scipy.sparse as sp

    offsets = np.cumsum([0] + [b.nnz for b in parts])
    indptr = np.concatenate([[0]] + [b.indptr[1:] + o for b, o in zip(parts, offsets)])
    return sp.csr_matrix((np.concatenate([b.data for b in parts]),
                          np.concatenate([b.indices for b in parts]), indptr),
                         shape=(sum(b.shape[0] for b in parts), parts[0].shape[1]))


def _gram_factor(J, shift: float | None) -> np.ndarray:
    """Upper Cholesky factor R of JᵀJ + s · I (J's columns of unit norm), in one dense
    P × P array (from the upper triangle alone, which is all :func:`_gram` forms).
    ``shift`` None: s starts at 100 · ε · the Gershgorin bound on JᵀJ's largest eigenvalue
    (the size of the rounding errors in forming and factoring it, so a Gram matrix that
    is singular to rounding still factors) and grows 100-fold while the factorisation
    fails; a given ``shift`` is tried alone."""
    G = _gram(J)
    if shift is None:
        bound = _gershgorin(G)
        shifts = [100 * np.finfo(np.float64).eps * bound * 100.0**k for k in range(6)]
    else:
        shifts = [shift]
    for n, s in enumerate(shifts):
        G = G if n == 0 else _gram(J)  # a failed factorisation overwrote it
        G.diagonal().add_(s)
        # torch's Cholesky on every thread (scipy's took 1.5 × as long here), in place:
        # Gᵀ is column-major, so LAPACK needs no copy (G itself would cost a second P × P
        # array); Gᵀ's lower triangle is G's upper, and L = Rᵀ lands there as R.
        _, info = torch.linalg.cholesky_ex(G.mT, upper=False,
                                           out=(G.mT, torch.empty((), dtype=torch.int32)))
        if not int(info):
            return G.numpy()
        del G
    raise GMNMError("the Gram matrix of the sparse system could not be factored (tried "
                    f"shifts up to {shifts[-1]:.1e}); use solver 'dense' or 'streamed'")


def _gram(J) -> Tensor:
    """The upper triangle of JᵀJ in a dense P × P tensor (zeros below the diagonal),
    formed :data:`GRAM_GROUP` rows at a time: the columns the group touches (few, when its
    rows are near each other in space, see :func:`spatial_order`), the group's rows on them
    as a small dense matrix B, and BᵀB (BLAS's symmetric rank-k update, upper triangle)
    added into those columns. Dense products where scipy's sparse product (one thread,
    symbolic pass first) took 120 s at P = 5 000, N = 60 000 (benchmarks/ls_target.py)."""
    from scipy.linalg.blas import dsyrk

    P = J.shape[1]
    G = torch.zeros(P, P, dtype=torch.float64)
    touched, position = np.zeros(P, dtype=bool), np.zeros(P, dtype=np.int64)
    for start in range(0, J.shape[0], GRAM_GROUP):
        B = J[start:start + GRAM_GROUP]
        if B.nnz == 0:
            continue
        touched[B.indices] = True
        cols = np.flatnonzero(touched)  # ascending: B's upper triangle lands in G's
        touched[cols] = False
        position[cols] = np.arange(len(cols))
        D = np.zeros((B.shape[0], len(cols)), order="F")
        D[np.repeat(np.arange(B.shape[0]), np.diff(B.indptr)), position[B.indices]] = B.data
        at = torch.from_numpy(cols)
        G.index_put_((at[:, None], at[None, :]), torch.from_numpy(dsyrk(1.0, D, trans=1)),
                     accumulate=True)
    return G


def _gershgorin(upper: Tensor) -> float:
    """Gershgorin's bound on the largest eigenvalue of the symmetric matrix whose upper
    triangle ``upper`` holds (zeros below): the largest absolute row sum."""
    sums = upper.new_zeros(len(upper))
    for start in range(0, len(upper), 1024):  # chunks: no second P × P array
        part = upper[start:start + 1024].abs()
        sums[start:start + 1024] += part.sum(dim=1)
        sums += part.sum(dim=0)
    return float((sums - upper.diagonal().abs()).max())


def _solve(R: np.ndarray, v: np.ndarray, transposed: bool = False) -> np.ndarray:
    """R⁻¹ v, or R⁻ᵀ v."""
    from scipy.linalg import solve_triangular

    return solve_triangular(R, v, trans="T" if transposed else "N", lower=False,
                            check_finite=False)
