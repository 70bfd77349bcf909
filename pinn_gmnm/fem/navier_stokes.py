"""Steady incompressible flows by Taylor–Hood finite elements (P2 velocity, P1 pressure,
the stable pair for the saddle point): a problem's flow on a gmsh mesh of its domain
(the fem model, :func:`solve_flow`) and the lid-driven cavity's reference on a uniform
square grid (:func:`cavity_reference`). Both solve

    c (u·∇)u + ∇p − ν Δu = f,   ∇·u = 0   in Ω,   u = g on ∂Ω,   p(x₀) = p₀

in the weak form: for every v zero on ∂Ω and every q,

    c ((u·∇)u, v) + ν (∇u, ∇v) − (p, ∇·v) = (f, v),     −(∇·u, q) = 0.

scikit-fem assembles, scipy's sparse LU solves. The velocity is given on the whole
boundary, so the equations fix p only up to a constant: the pressure at the vertex
nearest x₀ is held while solving, and p is shifted afterwards so that p(x₀) = p₀ (the
constant is in the kernel of the discrete gradient on the free velocity degrees of
freedom, so the shift is exact). Stokes (c = 0) is one solve. With convection, Newton's
method from the Stokes solution: the Jacobian at U adds c ((U·∇)δu + (δu·∇)U, v); a
step that does not reduce the residual is halved (at most ten times). In the cavity at
Re = 100 the steps fall quadratically to round-off in five iterations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..conditions import Dirichlet, evaluate_value
from ..errors import GMNMError, require_positive
from ..problem import Problem
from ..references import Reference
from .deps import require
from .elliptic import FEMSolution, _boundary_pieces
from .flow_operator import flow, output_of, pinned_pressure
from .mesh import mesh_geometry

NEWTON_TOL = 1e-12
"""Newton stops when a step changes the solution by less than this, relatively."""

ORDER = ("a flow's finite elements are Taylor–Hood, velocity order 2 and pressure order 1; "
         "use --fem-order 2")
"""Why a flow cannot take another --fem-order."""


def taylor_hood(ub: Any, pb: Any, *, nu: float, convection: float, force: np.ndarray | None,
                fixed: np.ndarray, boundary: np.ndarray, pin: np.ndarray, pin_value: float,
                label: str, max_newton: int = 30) -> np.ndarray:
    """The Taylor–Hood solution (velocity degrees of freedom of the vector P2 basis
    ``ub``, then the pressure's of the P1 basis ``pb``) of the flow with viscosity ``nu``,
    convection coefficient ``convection``, body force ``force`` (2, elements, quadrature
    points of ``ub``; None: zero), the velocity degrees of freedom ``fixed`` at their
    values in ``boundary`` (length ``ub.N``) and the pressure ``pin_value`` at the point
    ``pin`` (2,)."""
    skfem = require("skfem")
    from scipy.sparse.linalg import spsolve
    from skfem.helpers import ddot, div, dot, grad

    def transport(a, b):  # (b·∇)a for vector fields: Σ_j b_j ∂a_i/∂x_j
        return np.einsum("ij...,j...->i...", grad(a), b)

    @skfem.BilinearForm
    def viscous(u, v, w):
        return nu * ddot(grad(u), grad(v))

    @skfem.BilinearForm
    def divergence(u, q, w):
        return -div(u) * q

    @skfem.BilinearForm
    def linearised(u, v, w):
        return convection * dot(transport(u, w["U"]) + transport(w["U"], u), v)

    @skfem.LinearForm
    def convected(v, w):
        return convection * dot(transport(w["U"], w["U"]), v)

    @skfem.LinearForm
    def body(v, w):
        return w["fx"] * v[0] + w["fy"] * v[1]

    A, B = skfem.asm(viscous, ub), skfem.asm(divergence, ub, pb)
    N, M = ub.N, pb.N
    stokes = skfem.bmat([[A, B.T], [B, None]], "csr")
    load = np.zeros(N + M)
    if force is not None:
        load[:N] = skfem.asm(body, ub, fx=force[0], fy=force[1])
    x = np.zeros(N + M)
    x[fixed] = boundary[fixed]
    held = N + int(np.argmin(np.hypot(*(pb.doflocs - pin[:, None]))))
    free = np.setdiff1d(np.arange(N + M), np.append(fixed, held))
    x = skfem.solve(*skfem.condense(stokes, load, x=x, D=np.append(fixed, held)))

    def residual(x: np.ndarray) -> np.ndarray:
        F = stokes @ x - load
        F[:N] += skfem.asm(convected, ub, U=ub.interpolate(x[:N]))
        return F[free]

    if convection != 0:
        F = residual(x)
        for _ in range(max_newton):
            U = ub.interpolate(x[:N])
            jac = skfem.bmat([[A + skfem.asm(linearised, ub, U=U), B.T], [B, None]], "csr")
            step = spsolve(jac[free][:, free].tocsc(), -F)
            if np.linalg.norm(step) <= NEWTON_TOL * np.linalg.norm(x):
                x[free] += step
                break
            for halvings in range(11):
                trial = x.copy()
                trial[free] += 0.5**halvings * step
                F_trial = residual(trial)
                if np.linalg.norm(F_trial) < np.linalg.norm(F):
                    break
            x, F = trial, F_trial
        else:
            raise GMNMError(f"{label}: Newton's method did not converge in {max_newton} steps "
                            f"(ν = {nu:g}); use a finer mesh or a larger viscosity")
    p = x[N:]
    p += pin_value - _pressure_at(ub, p, pin)
    return x


def _pressure_at(ub: Any, p: np.ndarray, point: np.ndarray) -> float:
    """The P1 pressure of vertex values ``p`` at ``point`` (2,), located as the fem model
    locates points (scikit-fem's own finder does not take curved meshes)."""
    from skfem import ElementTriP2

    from .model import _Locator, shape_functions

    scalar = ub.with_element(ElementTriP2())
    cells = scalar.element_dofs
    cell, xi, _ = _Locator(scalar.doflocs.T, cells.T, 2)(point[None])
    return float(shape_functions(xi, 1)[0] @ p[cells[:3, cell[0]]])


def solve_flow(problem: Problem, *, order: int = 2, size: float = 0.05) -> FEMSolution:
    """The Taylor–Hood solution of ``problem``, a steady flow (see
    :mod:`.flow_operator`), on a gmsh mesh of its domain with triangle sides of at most
    ``size`` (curved along curved boundaries). Its values are each output's nodal values
    in turn: the velocity's at the P2 nodes, the pressure's at the vertices."""
    if order != 2:
        raise GMNMError(ORDER)
    skfem = require("skfem")
    mesh = mesh_geometry(problem.geometry, size, 2)
    ub = skfem.Basis(mesh, skfem.ElementVector(skfem.ElementTriP2()), intorder=4)
    pb, scalar = ub.with_element(skfem.ElementTriP1()), ub.with_element(skfem.ElementTriP2())
    at = np.asarray(ub.global_coordinates())                            # (2, E, Q)
    fl = flow(problem, torch.from_numpy(np.ascontiguousarray(at.reshape(2, -1).T)))
    boundary, fixed = np.zeros(ub.N), []
    for i, k in enumerate(fl.velocity):
        conditions = [c for c in problem.conditions
                      if isinstance(c, Dirichlet) and output_of(problem, c) == problem.outputs[k]]
        for c, facets in _boundary_pieces(problem, mesh, 2, None, conditions):
            dofs = ub.get_dofs(facets=facets).all(f"u^{i + 1}")
            where = torch.from_numpy(np.ascontiguousarray(ub.doflocs[:, dofs].T))
            boundary[dofs] = evaluate_value(c.value, where).numpy()
            fixed.append(dofs)
    pin, value = pinned_pressure(problem, fl.pressure)
    x = taylor_hood(ub, pb, nu=fl.nu, convection=fl.convection,
                    force=fl.force.T.reshape(at.shape), fixed=np.unique(np.concatenate(fixed)),
                    boundary=boundary, pin=pin, pin_value=value, label=problem.name)
    u, v = ub.split_indices()
    blocks = {fl.velocity[0]: x[u], fl.velocity[1]: x[v], fl.pressure: x[ub.N:]}
    return FEMSolution(np.ascontiguousarray(scalar.doflocs.T),
                       np.ascontiguousarray(scalar.element_dofs.T),
                       np.concatenate([blocks[k] for k in range(3)]), 2, mesh.t.shape[1],
                       orders=tuple(1 if k == fl.pressure else 2 for k in range(3)))


def cavity_reference(re: float, lid: Callable[[np.ndarray], np.ndarray], *, n: int = 64,
                     max_newton: int = 30) -> Reference:
    """The cavity flow (u, v, p) at Reynolds number ``re`` with lid velocity ``lid(x)``
    (x an array of points along y = 1, corners included), on the (2n + 1)² grid of the
    P2 nodes of an n × n mesh (``n`` even, so that the pressure is pinned at the vertex
    (½, ½)), as a :class:`~pinn_gmnm.references.Reference`."""
    require_positive("re", re)
    require_positive("cells per side n", n, integer=True)
    if n % 2:
        raise GMNMError(f"cells per side n must be even (a vertex at the centre), got {n}")
    skfem = require("skfem")
    s = np.linspace(0.0, 1.0, n + 1)
    mesh = skfem.MeshTri.init_tensor(s, s)
    ub = skfem.Basis(mesh, skfem.ElementVector(skfem.ElementTriP2()), intorder=4)
    pb = ub.with_element(skfem.ElementTriP1())
    boundary = np.zeros(ub.N)
    wall = ub.get_dofs()
    horizontal = wall.all("u^1")
    top = horizontal[np.isclose(ub.doflocs[1, horizontal], 1.0)]
    boundary[top] = lid(ub.doflocs[0, top])
    x = taylor_hood(ub, pb, nu=1.0 / re, convection=1.0, force=None, fixed=wall.all(),
                    boundary=boundary, pin=np.array([0.5, 0.5]), pin_value=0.0,
                    label=f"cavity reference at Re = {re:g}", max_newton=max_newton)
    N = ub.N
    k = 2 * n
    grid = np.full((k + 1, k + 1, 3), np.nan)
    for c, idx in enumerate(ub.split_indices()):
        at = np.rint(ub.doflocs[:, idx] * k).astype(np.int64)
        grid[at[0], at[1], c] = x[idx]
    X, Y = np.meshgrid(np.linspace(0, 1, k + 1), np.linspace(0, 1, k + 1), indexing="ij")
    probes = pb.probes(np.stack([X.ravel(), Y.ravel()]))
    grid[..., 2] = (probes @ x[N:]).reshape(k + 1, k + 1)
    axis = np.linspace(0.0, 1.0, k + 1)
    return Reference.on_grid([axis, axis], grid, source=f"Taylor–Hood P2/P1 finite elements "
                             f"(scikit-fem), {n} × {n} squares, Newton")
