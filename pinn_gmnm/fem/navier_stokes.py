"""Steady incompressible Navier–Stokes in the unit square by Taylor–Hood finite elements:
the reference solution of the lid-driven cavity.

    (u·∇)u + ∇p − (1/Re) Δu = 0,   ∇·u = 0   in Ω = (0, 1)²,
    u = (g(x), 0) on the lid y = 1,   u = 0 on the other walls,   p(½, ½) = 0.

Velocity in continuous P2, pressure in continuous P1 (the Taylor–Hood pair, stable for
the saddle point) on the uniform n × n square grid cut into 2n² triangles; scikit-fem
assembles, scipy's sparse LU solves. Newton's method from the Stokes solution: the
Jacobian at U adds ((U·∇)δu + (δu·∇)U, v) to the Stokes operator, and at Re = 100 the
steps fall quadratically to round-off in five iterations. The P2 nodes of this mesh are
exactly the (2n + 1)² grid of spacing 1/(2n) (vertices, edge midpoints, the midpoints of
the diagonals), so the velocity is returned there as computed and the pressure at the
same nodes by evaluating the P1 field.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import GMNMError, require_positive
from ..references import Reference
from .deps import require

NEWTON_TOL = 1e-12
"""Newton stops when a step changes the solution by less than this, relatively."""


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
    from scipy.sparse.linalg import spsolve
    from skfem.helpers import ddot, div, dot, grad

    s = np.linspace(0.0, 1.0, n + 1)
    mesh = skfem.MeshTri.init_tensor(s, s)
    ub = skfem.Basis(mesh, skfem.ElementVector(skfem.ElementTriP2()), intorder=4)
    pb = ub.with_element(skfem.ElementTriP1())
    nu = 1.0 / re

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
        return dot(transport(u, w["U"]) + transport(w["U"], u), v)

    @skfem.LinearForm
    def convection(v, w):
        return dot(transport(w["U"], w["U"]), v)

    A, B = skfem.asm(viscous, ub), skfem.asm(divergence, ub, pb)
    N, M = ub.N, pb.N
    stokes = skfem.bmat([[A, B.T], [B, None]], "csr")
    x = np.zeros(N + M)
    wall = ub.get_dofs()
    horizontal = wall.all("u^1")
    top = horizontal[np.isclose(ub.doflocs[1, horizontal], 1.0)]
    x[top] = lid(ub.doflocs[0, top])
    centre = int(np.argmin(np.hypot(mesh.p[0] - 0.5, mesh.p[1] - 0.5)))
    fixed = np.concatenate([wall.all(), [N + centre]])
    free = np.setdiff1d(np.arange(N + M), fixed)
    x = skfem.solve(*skfem.condense(stokes, np.zeros(N + M), x=x, D=fixed))
    for _ in range(max_newton):
        U = ub.interpolate(x[:N])
        jac = skfem.bmat([[A + skfem.asm(linearised, ub, U=U), B.T], [B, None]], "csr")
        F = stokes @ x
        F[:N] += skfem.asm(convection, ub, U=U)
        step = spsolve(jac[free][:, free].tocsc(), -F[free])
        x[free] += step
        if np.linalg.norm(step) <= NEWTON_TOL * np.linalg.norm(x):
            break
    else:
        raise GMNMError(f"cavity reference: Newton's method did not converge in {max_newton} "
                        f"steps at Re = {re:g}; use a finer mesh or a smaller Re")
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
