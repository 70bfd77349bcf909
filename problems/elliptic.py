"""Elliptic problems beyond the sine Poisson family: high dimension, Helmholtz, mixed
boundary conditions, an L-shaped domain and a plate with holes."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch

from pinn_gmnm import (Box, Dirichlet, Disk, GMNMError, Neumann, Polygon, Problem, Rectangle, near,
                       register)
from pinn_gmnm.references import Reference, cached
from pinn_gmnm.references.elliptic import solve_dirichlet, solve_dirichlet_extrapolated

PI = math.pi


@register("poisson-5d", group="elliptic")
def poisson_5d(dim: int = 5) -> Problem:
    """Poisson in five (or ``dim``) dimensions with a smooth, coupled solution.

    PDE:        −Δu = (π²/4) Σ_a sin(πx_a/2)   on Ω = [0, 1]^d
    Boundary:   u = exact on ∂Ω
    Solution:   u = Σ_a sin(πx_a/2) + Π_a x_a   (the product is harmonic and couples
                every coordinate through the boundary data)
    Parameters: dim, the dimension d (default 5).
    """
    if not (isinstance(dim, int) and dim >= 2):
        raise GMNMError(f"poisson-5d: dim must be an integer >= 2, got {dim!r}")

    def exact(x):
        return torch.sin(PI * x / 2).sum(dim=1) + x.prod(dim=1)

    def residual(u, x):
        return -u.laplacian() - PI**2 / 4 * torch.sin(PI * x / 2).sum(dim=1)

    return Problem(Box((0.0,) * dim, (1.0,) * dim), residual, [Dirichlet(exact)], exact=exact,
                   linear=True)


@register("helmholtz", group="elliptic")
def helmholtz(k: float = 1.0, a1: float = 1.0, a2: float = 4.0) -> Problem:
    """Helmholtz equation on [−1, 1]² with a manufactured oscillatory solution.

    PDE:        −Δu − k²u = f,  f = ((a1² + a2²)π² − k²) sin(a1πx) sin(a2πy)   on [−1, 1]²
    Boundary:   u = 0 on ∂Ω   (a1, a2 whole numbers)
    Solution:   u = sin(a1πx) sin(a2πy)
    Parameters: k, the wave number (default 1); a1, a2, the frequencies (default 1, 4).
    """

    def exact(x):
        return torch.sin(a1 * PI * x[:, 0]) * torch.sin(a2 * PI * x[:, 1])

    def residual(u, x):
        return -u.laplacian() - k**2 * u() - ((a1**2 + a2**2) * PI**2 - k**2) * exact(x)

    return Problem(Rectangle((-1, -1), (1, 1)), residual, [Dirichlet(exact)], exact=exact,
                   linear=True)


@register("poisson-neumann", group="elliptic")
def poisson_neumann(k: float = 1.0) -> Problem:
    """Poisson on the unit square with Dirichlet sides and Neumann top and bottom.

    PDE:        −Δu = 2k²π² sin(kπx) cos(kπy) − 2x   on [0, 1]²
    Boundary:   u = exact on x = 0 and x = 1; ∂u/∂n = ±u_y on y = 1 and y = 0
    Solution:   u = sin(kπx) cos(kπy) + x y²
    Parameters: k, the wave number (default 1).
    """

    def exact(x):
        X, Y = x.T
        return torch.sin(k * PI * X) * torch.cos(k * PI * Y) + X * Y**2

    def flux(x):  # ∂u/∂n = n_y u_y with n_y = +1 on top, −1 at the bottom
        X, Y = x.T
        uy = -k * PI * torch.sin(k * PI * X) * torch.sin(k * PI * Y) + 2 * X * Y
        return torch.where(Y > 0.5, uy, -uy)

    def residual(u, x):
        X, Y = x.T
        return -u.laplacian() - 2 * (k * PI) ** 2 * torch.sin(k * PI * X) * torch.cos(k * PI * Y) + 2 * X

    sides = lambda x: near(x[:, 0], 0.0) | near(x[:, 0], 1.0)  # noqa: E731
    return Problem(Rectangle((0, 0), (1, 1)), residual,
                   [Dirichlet(exact, on=sides, name="sides"),
                    Neumann(flux, on=lambda x: ~sides(x), name="flux")],
                   exact=exact, linear=True)


L_SHAPE = [(-1, -1), (0, -1), (0, 0), (1, 0), (1, 1), (-1, 1)]


@register("poisson-lshape", group="elliptic")
def poisson_lshape(f: float = 1.0) -> Problem:
    """Poisson on an L-shaped domain (a re-entrant corner makes u singular there).

    PDE:        −Δu = f   on Ω = [−1, 1]² minus [0, 1] × [−1, 0]
    Boundary:   u = 0 on ∂Ω
    Solution:   no closed form (u ~ r^(2/3) near the corner at the origin). The reference
                is a P2 finite-element solution (``pinn_gmnm.fem``, the ``fem`` extra) on a
                gmsh mesh with h <= 0.02, graded to 2e-4 at the corner (91 000 degrees of
                freedom), sampled on a 513 × 513 grid and cached on disk. Its own error,
                estimated by refinement (h = 0.08, 0.04, 0.02 differ by 7.1e-5 and 1.1e-5,
                relative L2, converging at order ~2.7), is about 2e-6 relative L2 and 3e-6
                max. It replaced a finite-difference solution on the same grid that was 2e-4
                off (relative L2; 5e-4 max, next to the corner), which remains the
                reference without the ``fem`` extra.
    Parameters: f, the constant source (default 1).
    """
    geometry = Polygon(L_SHAPE)
    problem = Problem(geometry, lambda u, x: -u.laplacian() - f, [Dirichlet(0.0)], linear=True)

    def fem():
        from pinn_gmnm.fem.mesh import Refinement
        from pinn_gmnm.fem.reference import fem_reference

        return fem_reference(problem, size=0.02, refine=[Refinement((0.0, 0.0), 2e-4, 0.5)]
                             ).stating("relative L2 error about 2e-6, max 3e-6")

    def finite_differences():
        return solve_dirichlet(geometry, f, 0.0, n=512).stating(
            "relative L2 error about 2e-4, max 5e-4 near the corner")

    return dataclasses.replace(problem, reference=lambda: _best_reference(
        "poisson-lshape", {"f": f}, fem, {"fem": "P2", "size": 0.02, "corner": 2e-4, "grid": 512},
        finite_differences, {"n": 512}))


def _best_reference(name: str, params: dict, fem: Callable[[], Reference], fem_key: dict,
                    fallback: Callable[[], Reference], fallback_key: dict) -> Reference:
    """The finite-element reference when the ``fem`` extra is installed, else the
    fallback; each cached under the problem's parameters and its solver's settings."""
    from pinn_gmnm.fem.deps import available

    if available():
        return cached(name, {**params, **fem_key}, fem)
    return cached(name, {**params, **fallback_key}, fallback)


HOLES = [((-0.5, -0.4), 0.25), ((0.5, 0.4), 0.3), ((0.6, -0.5), 0.15)]


def plate_with_holes() -> tuple:
    """The rectangle [−1, 1] × [−0.9, 0.9] minus three disks, and the disks."""
    holes = [Disk(c, r) for c, r in HOLES]
    shape = Rectangle((-1, -0.9), (1, 0.9))
    for h in holes:
        shape = shape - h
    return shape, holes


@register("poisson-holes", group="elliptic")
def poisson_holes(inner: float = 1.0, outer: float = 0.0, f: float = 0.0) -> Problem:
    """Steady heat in a plate with three round holes held at another temperature.

    PDE:        −Δu = f   on Ω = [−1, 1] × [−0.9, 0.9] minus three disks
    Boundary:   u = inner on the rims of the holes, u = outer on the outer edge
    Solution:   no closed form; the reference is a finite-difference solution with the
                Shortley–Weller stencil at the curved rims (second order) on 257 × 257 and
                513 × 513 grids, Richardson-extrapolated to the coarser grid's nodes:
                relative L2 error about 2e-7, max 3e-6 next to the rims (measured at the
                default parameters against the extrapolation from 513² and 1025² grids;
                the 257² solution alone was 1.8e-5 off). Cached on disk. It stays the
                reference because it is more accurate than finite elements at a comparable
                cost: P2 elements with curved rims at h = 0.04, 0.02 and 0.01 are 4.4e-5,
                5.7e-6 and 7.5e-7 from it, falling as h³, as their own error does.
    Parameters: inner, outer, the boundary values (default 1, 0); f, a constant source.
    """
    shape, holes = plate_with_holes()

    def on_holes(x):
        return torch.stack([h.on_boundary(x) for h in holes]).any(dim=0)

    def g(x):
        return torch.where(on_holes(x), inner, outer).to(x.dtype)

    return Problem(
        shape, lambda u, x: -u.laplacian() - f,
        [Dirichlet(inner, on=on_holes, name="holes"),
         Dirichlet(outer, on=lambda x: ~on_holes(x), name="outer")],
        reference=lambda: cached(
            "poisson-holes", {"inner": inner, "outer": outer, "f": f, "n": 256, "extrapolated": True},
            lambda: solve_dirichlet_extrapolated(shape, f, g, n=256).stating(
                "relative L2 error about 2e-7, max 3e-6 (at the default parameters)")),
        linear=True,
    )
