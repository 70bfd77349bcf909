"""A problem's linear elliptic (or parabolic) PDE by finite elements (scikit-fem on a
gmsh mesh; Crank–Nicolson in time, see :func:`solve_parabolic`).

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

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..conditions import Condition, Dirichlet, Initial, Neumann, Robin, evaluate_value
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
    boundaries), ``values`` (N,), or (T, N) at the ``times`` (T,) of a time-dependent
    problem. A system's ``values`` are its outputs' in turn, output k of element order
    ``orders[k]`` (order 1 below ``order``: one value per vertex, the vertices being
    nodes 0, 1, … of ``nodes``)."""

    nodes: np.ndarray
    cells: np.ndarray
    values: np.ndarray
    order: int
    triangles: int
    times: np.ndarray | None = None
    orders: tuple[int, ...] | None = None


class _Assembly:
    """The finite-element system of a problem on one mesh: K u = F(t) for a steady
    problem, m M u' = K u − F(t) for a parabolic one (t the time, None when steady)."""

    def __init__(self, problem: Problem, order: int, size: float,
                 refine: Sequence[Refinement]) -> None:
        if order not in ORDERS:
            raise GMNMError(f"finite-element order must be 1 or 2, got {order!r}")
        skfem = self.skfem = require("skfem")
        g = problem.geometry
        self.problem, self.order = problem, order
        self.t0 = g.bbox[0][-1] if g.time_dependent else None
        self.mesh = mesh_geometry(g.space if g.time_dependent else g, size, order, refine=refine)
        self.element = skfem.ElementTriP1() if order == 1 else skfem.ElementTriP2()
        self.basis = skfem.Basis(self.mesh, self.element, intorder=2 * order + 1)
        op = self.op = operator(problem, self._points(self.basis, self.t0))
        shape = np.asarray(self.basis.global_coordinates()).shape[1:]
        bx, by = (op.b[:, i].reshape(shape) for i in range(2))

        @skfem.BilinearForm
        def stiffness(u, v, w):
            return op.a * (u.grad[0] * v.grad[0] + u.grad[1] * v.grad[1]) \
                - (w.bx * u.grad[0] + w.by * u.grad[1] + w.c * u) * v

        self.K = skfem.asm(stiffness, self.basis, bx=bx, by=by, c=op.c.reshape(shape))
        self.pieces = _boundary_pieces(problem, self.mesh, order, self.t0)
        self.natural = []
        for cond, facets in self.pieces:
            if isinstance(cond, Dirichlet) or len(facets) == 0:
                continue
            fb = skfem.FacetBasis(self.mesh, self.element, facets=facets, intorder=2 * order + 1)
            self.natural.append((cond, fb))
            _, alpha, beta = _natural(cond, self._points(fb, self.t0))
            if alpha is not None:  # Robin: α/β taken at the first time
                self.K = self.K + skfem.asm(skfem.BilinearForm(lambda u, v, w: w.k * u * v), fb,
                                            k=self._shaped(fb, op.a * alpha / beta))

    def _points(self, basis: Any, t: float | None) -> torch.Tensor:
        """A basis's quadrature points as (n, 2), or (n, 3) with the time ``t``."""
        x = _points(basis)
        return x if t is None else torch.cat([x, torch.full_like(x[:, :1], t)], dim=1)

    @staticmethod
    def _shaped(basis: Any, values: np.ndarray) -> np.ndarray:
        return values.reshape(np.asarray(basis.global_coordinates()).shape[1:])

    def load(self, t: float | None) -> Any:
        """F(t): the source and the Neumann and Robin data at time ``t``."""
        skfem = self.skfem
        load = skfem.LinearForm(lambda v, w: w.f * v)
        r0 = operator(self.problem, self._points(self.basis, t)).r0 if t is not None else self.op.r0
        F = skfem.asm(load, self.basis, f=self._shaped(self.basis, r0))
        for cond, fb in self.natural:
            g, _, beta = _natural(cond, self._points(fb, t))
            F = F + skfem.asm(load, fb, f=self._shaped(fb, self.op.a * g / beta))
        return F

    def dirichlet(self, t: float | None) -> tuple[np.ndarray, np.ndarray]:
        """The Dirichlet degrees of freedom and the full vector with their values at ``t``."""
        values = np.zeros(self.basis.N)
        fixed = []
        for c, facets in self.pieces:
            if not isinstance(c, Dirichlet) or len(facets) == 0:
                continue
            dofs = self.basis.get_dofs(facets=facets).all()
            values[dofs] = evaluate_value(c.value, self._nodes(dofs, t)).numpy()
            fixed.append(dofs)
        return (np.unique(np.concatenate(fixed)) if fixed else np.zeros(0, dtype=np.int64)), values

    def _nodes(self, dofs: np.ndarray | slice, t: float | None) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(self.basis.doflocs[:, dofs].T))
        return x if t is None else torch.cat([x, torch.full_like(x[:, :1], t)], dim=1)

    def solution(self, values: np.ndarray, times: np.ndarray | None = None) -> FEMSolution:
        return FEMSolution(np.ascontiguousarray(self.basis.doflocs.T),
                           np.ascontiguousarray(self.basis.element_dofs.T),
                           np.asarray(values, dtype=np.float64), self.order,
                           self.mesh.t.shape[1], times)


def solve_elliptic(problem: Problem, *, order: int = 2, size: float = 0.05,
                   refine: Sequence[Refinement] = ()) -> FEMSolution:
    """The order-``order`` Lagrange finite-element solution of ``problem`` (a linear
    elliptic problem on a 2-D domain, see :data:`~.operator.SUPPORTED`) on a gmsh mesh
    with triangle sides of at most ``size``, graded towards the points of ``refine``.
    A time-dependent problem is solved by :func:`solve_parabolic`."""
    if problem.geometry.time_dependent:
        return solve_parabolic(problem, order=order, size=size, refine=refine)
    system = _Assembly(problem, order, size, refine)
    skfem = system.skfem
    K, F = system.K, system.load(None)
    fixed, values = system.dirichlet(None)
    u = skfem.solve(*skfem.condense(K, F, x=values, D=fixed)) if len(fixed) else skfem.solve(K, F)
    return system.solution(u)


def solve_parabolic(problem: Problem, *, order: int = 2, size: float = 0.05,
                    refine: Sequence[Refinement] = ()) -> FEMSolution:
    """A problem m u_t + a Δu + b·∇u + c u + r₀ = 0 on a space-time domain Ω × [t0, t1]:
    finite elements in space as :func:`solve_elliptic`, Crank–Nicolson in time,

        (m M − Δt/2 K) uⁿ⁺¹ = (m M + Δt/2 K) uⁿ − Δt/2 (Fⁿ + Fⁿ⁺¹),

    with Δt = (t1 − t0) / ⌈(t1 − t0) / size^((order+1)/2)⌉, so that the time error, of
    order Δt², matches the space error (h² for P1, h³ for P2) on unit time scales. The
    initial value is interpolated at the nodes; Dirichlet values are imposed at every
    step; the matrix is factorised once."""
    from scipy.sparse.linalg import splu

    skfem = require("skfem")
    system = _Assembly(problem, order, size, refine)
    g = problem.geometry
    t0, t1 = g.bbox[0][-1], g.bbox[1][-1]
    steps = max(1, math.ceil((t1 - t0) / size ** ((order + 1) / 2)))
    times = np.linspace(t0, t1, steps + 1)
    dt = times[1] - times[0]
    mass = skfem.asm(skfem.BilinearForm(lambda u, v, w: u * v), system.basis) * system.op.m
    left, right = (mass - dt / 2 * system.K).tocsr(), (mass + dt / 2 * system.K).tocsr()
    (initial,) = [c for c in problem.conditions if isinstance(c, Initial)]
    u = evaluate_value(initial.value, system._nodes(slice(None), t0)).numpy()
    fixed, values = system.dirichlet(t0)
    u[fixed] = values[fixed]
    free = np.setdiff1d(np.arange(system.basis.N), fixed)
    solver = splu(left[free][:, free].tocsc())
    out = [u]
    F = system.load(t0)
    for t in times[1:]:
        F_next = system.load(t)
        fixed, values = system.dirichlet(t)
        rhs = right @ u - dt / 2 * (F + F_next) - left[:, fixed] @ values[fixed]
        u = values.copy()
        u[free] = solver.solve(rhs[free])
        out.append(u)
        F = F_next
    return system.solution(np.stack(out), times)


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


def _boundary_pieces(problem: Problem, mesh: Any, order: int, t: float | None,
                     conditions: Sequence[Condition] | None = None
                     ) -> list[tuple[Condition, np.ndarray]]:
    """The boundary facets of each of ``conditions`` (by default the problem's Dirichlet,
    Neumann and Robin conditions; Dirichlet first: a facet two conditions select is
    Dirichlet); every boundary facet must belong to one."""
    facets = mesh.boundary_facets()
    ends = mesh.p[:, mesh.facets[:, facets]]                  # (2, 2, F)
    if order == 2:  # the edge's node on the (curved) boundary
        mid = mesh.doflocs[:, mesh.t.max() + 1:][:, facets]
    else:
        mid = ends.mean(axis=1)
    points = np.concatenate([ends, mid[:, None]], axis=1)     # (2, 3, F)
    x = torch.from_numpy(np.ascontiguousarray(points.reshape(2, -1).T))
    if t is not None:  # conditions of a space-time problem take (x, y, t)
        x = torch.cat([x, torch.full_like(x[:, :1], t)], dim=1)
    chosen: list[tuple[Condition, np.ndarray]] = []
    taken = np.zeros(len(facets), dtype=bool)
    boundary = [c for c in problem.conditions if isinstance(c, (Dirichlet, Neumann, Robin))] \
        if conditions is None else conditions
    ordered = sorted(boundary, key=lambda c: not isinstance(c, Dirichlet))
    for c in ordered:
        hits = np.ones(len(facets), dtype=bool) if c.on is None else \
            torch.as_tensor(c.on(x)).numpy().reshape(3, -1).sum(axis=0) >= 2
        mine = hits & ~taken
        chosen.append((c, facets[mine]))
        taken |= mine
    if not taken.all():
        where = mid[:, ~taken][:, 0]
        kinds = "Dirichlet, Neumann or Robin condition" if conditions is None else \
            f"condition on {', '.join(sorted({c.output or problem.outputs[0] for c in conditions}))}"
        raise GMNMError(f"{problem.name}: {int((~taken).sum())} boundary edges (one at "
                        f"({where[0]:.3g}, {where[1]:.3g})) are covered by no {kinds}; the "
                        "finite-element path needs one on every part of the boundary")
    return chosen
