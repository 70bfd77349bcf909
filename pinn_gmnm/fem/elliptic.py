"""A problem's linear elliptic PDE by finite elements (scikit-fem on a gmsh mesh).

The residual a Δu + b·∇u + c u + r₀ (read off the user's residual, see
:mod:`.operator`) vanishes weakly: for every test function v that is zero on the
Dirichlet boundary,

    a ∫ ∇u·∇v − ∫ (b·∇u + c u) v − a ∫_Γ ∂u/∂n v = ∫ r₀ v,

where the boundary integral takes the data of the conditions: ∂u/∂n = g (Neumann)
gives a ∫ g v on the right; α u + β ∂u/∂n = g (Robin) gives a ∫ (α/β) u v on the left
and a ∫ (g/β) v on the right. Dirichlet values are interpolated at the boundary's nodes.

Each boundary edge belongs to the condition whose ``on`` predicate selects at least two
of its three points (its ends and its midpoint, on the curve for second-order meshes),
Dirichlet before the others, so that a corner point shared by two pieces never decides
an edge. Lagrange elements of order 1 or 2, quadrature exact for the element's products,
a sparse direct solve.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..conditions import Condition, Dirichlet, Neumann, Robin, evaluate_value
from ..errors import GMNMError
from ..problem import Problem
from .deps import require
from .mesh import Refinement, mesh_geometry
from .operator import operator

ORDERS = (1, 2)


@dataclass
class FEMSolution:
    """Nodal values on a mesh: ``nodes`` (N, 2) the degrees of freedom's locations,
    ``cells`` (E, 3) or (E, 6) each triangle's nodes (vertices, then the midpoints of
    edges 01, 12, 02 for order 2: also the triangle's geometry, curved along curved
    boundaries), ``values`` (N,)."""

    nodes: np.ndarray
    cells: np.ndarray
    values: np.ndarray
    order: int
    triangles: int


def solve_elliptic(problem: Problem, *, order: int = 2, size: float = 0.05,
                   refine: Sequence[Refinement] = ()) -> FEMSolution:
    """The order-``order`` Lagrange finite-element solution of ``problem`` (a linear
    elliptic problem on a 2-D domain, see :data:`~.operator.SUPPORTED`) on a gmsh mesh
    with triangle sides of at most ``size``, graded towards the points of ``refine``."""
    if order not in ORDERS:
        raise GMNMError(f"finite-element order must be 1 or 2, got {order!r}")
    skfem = require("skfem")
    mesh = mesh_geometry(problem.geometry, size, order, refine=refine)
    element = skfem.ElementTriP1() if order == 1 else skfem.ElementTriP2()
    basis = skfem.Basis(mesh, element, intorder=2 * order + 1)
    op = operator(problem, _points(basis))
    shape = np.asarray(basis.global_coordinates()).shape[1:]
    bx, by = (op.b[:, i].reshape(shape) for i in range(2))
    c, r0 = op.c.reshape(shape), op.r0.reshape(shape)

    @skfem.BilinearForm
    def stiffness(u, v, w):
        return op.a * (u.grad[0] * v.grad[0] + u.grad[1] * v.grad[1]) \
            - (w.bx * u.grad[0] + w.by * u.grad[1] + w.c * u) * v

    @skfem.LinearForm
    def load(v, w):
        return w.r0 * v

    K = skfem.asm(stiffness, basis, bx=bx, by=by, c=c)
    F = skfem.asm(load, basis, r0=r0)
    pieces = _boundary_pieces(problem, mesh, order)
    for cond, facets in pieces:
        if isinstance(cond, Dirichlet) or len(facets) == 0:
            continue
        fb = skfem.FacetBasis(mesh, element, facets=facets, intorder=2 * order + 1)
        x = _points(fb)
        fshape = np.asarray(fb.global_coordinates()).shape[1:]
        g, alpha, beta = _natural(cond, x)
        F = F + skfem.asm(load, fb, r0=(op.a * g / beta).reshape(fshape))
        if alpha is not None:
            K = K + skfem.asm(skfem.BilinearForm(lambda u, v, w: w.k * u * v), fb,
                              k=(op.a * alpha / beta).reshape(fshape))
    fixed, values = _dirichlet(pieces, basis)
    u = skfem.solve(*skfem.condense(K, F, x=values, D=fixed)) if len(fixed) else skfem.solve(K, F)
    return FEMSolution(np.ascontiguousarray(basis.doflocs.T), np.ascontiguousarray(basis.element_dofs.T),
                       np.asarray(u, dtype=np.float64), order, mesh.t.shape[1])


def _points(basis: Any) -> torch.Tensor:
    """A basis's quadrature points as (n, 2) float64."""
    x = np.asarray(basis.global_coordinates())
    return torch.from_numpy(np.ascontiguousarray(x.reshape(2, -1).T))


def _natural(cond: Condition, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """A Neumann or Robin condition as data g, α (None for Neumann) and β of
    α u + β ∂u/∂n = g at points ``x``."""
    g = evaluate_value(cond.value, x).numpy()
    if isinstance(cond, Neumann):
        return g, None, np.ones_like(g)
    assert isinstance(cond, Robin)
    alpha, beta = evaluate_value(cond.a, x).numpy(), evaluate_value(cond.b, x).numpy()
    if (np.abs(beta) < 1e-12).any():
        raise GMNMError(f"{cond.label}: the Robin coefficient b vanishes on part of its "
                        "boundary; write that part as a Dirichlet condition")
    return g, alpha, beta


def _boundary_pieces(problem: Problem, mesh: Any, order: int) -> list[tuple[Condition, np.ndarray]]:
    """The boundary facets of each condition (Dirichlet first: a facet two conditions
    select is Dirichlet); every boundary facet must belong to one."""
    facets = mesh.boundary_facets()
    ends = mesh.p[:, mesh.facets[:, facets]]                  # (2, 2, F)
    if order == 2:  # the edge's node on the (curved) boundary
        mid = mesh.doflocs[:, mesh.t.max() + 1:][:, facets]
    else:
        mid = ends.mean(axis=1)
    points = np.concatenate([ends, mid[:, None]], axis=1)     # (2, 3, F)
    x = torch.from_numpy(np.ascontiguousarray(points.reshape(2, -1).T))
    chosen: list[tuple[Condition, np.ndarray]] = []
    taken = np.zeros(len(facets), dtype=bool)
    ordered = sorted(problem.conditions, key=lambda c: not isinstance(c, Dirichlet))
    for c in ordered:
        hits = np.ones(len(facets), dtype=bool) if c.on is None else \
            torch.as_tensor(c.on(x)).numpy().reshape(3, -1).sum(axis=0) >= 2
        mine = hits & ~taken
        chosen.append((c, facets[mine]))
        taken |= mine
    if not taken.all():
        where = mid[:, ~taken][:, 0]
        raise GMNMError(f"{problem.name}: {int((~taken).sum())} boundary edges (one at "
                        f"({where[0]:.3g}, {where[1]:.3g})) are covered by no Dirichlet, Neumann "
                        "or Robin condition; the finite-element path needs one on every part of "
                        "the boundary")
    return chosen


def _dirichlet(pieces: list[tuple[Condition, np.ndarray]], basis: Any) -> tuple[np.ndarray, np.ndarray]:
    """The Dirichlet degrees of freedom and the full vector with their values."""
    values = np.zeros(basis.N)
    fixed = []
    for c, facets in pieces:
        if not isinstance(c, Dirichlet) or len(facets) == 0:
            continue
        dofs = basis.get_dofs(facets=facets).all()
        at = torch.from_numpy(np.ascontiguousarray(basis.doflocs[:, dofs].T))
        values[dofs] = evaluate_value(c.value, at).numpy()
        fixed.append(dofs)
    return (np.unique(np.concatenate(fixed)) if fixed else np.zeros(0, dtype=np.int64)), values
