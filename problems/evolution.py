"""Time-dependent problems: heat, waves, advection, and nonlinear reaction terms."""

from __future__ import annotations

import math

import numpy as np
import torch

from pinn_gmnm import (Dirichlet, Initial, Interval, Periodic, Problem, Rectangle, SpaceTime,
                       register)
from pinn_gmnm.references import cached
from pinn_gmnm.references.evolution import (allen_cahn_periodic, heat_parabolic_bump,
                                            square_evolution)

PI = math.pi


@register("heat-1d", group="time-dependent")
def heat_1d(alpha: float = 0.1) -> Problem:
    """Heat equation on a bar with cold ends, two Fourier modes decaying.

    PDE:        u_t = α u_xx   on [0, 1] × [0, 1]   (x, t)
    Initial:    u(x, 0) = sin(πx) + ½ sin(3πx)
    Boundary:   u(0, t) = u(1, t) = 0
    Solution:   u = e^(−απ²t) sin(πx) + ½ e^(−9απ²t) sin(3πx)
    Parameters: alpha, the diffusivity α (default 0.1).
    """

    def exact(x):
        X, T = x.T
        return (torch.exp(-alpha * PI**2 * T) * torch.sin(PI * X)
                + 0.5 * torch.exp(-9 * alpha * PI**2 * T) * torch.sin(3 * PI * X))

    return Problem(SpaceTime(Interval(0, 1), (0, 1)),
                   lambda u, x: u.d("t") - alpha * u.d("xx"),
                   [Dirichlet(0.0, name="ends"), Initial(exact, name="initial")],
                   exact=exact, linear=True)


@register("heat-2d", group="time-dependent")
def heat_2d(alpha: float = 0.05) -> Problem:
    """Heat equation on a square plate from a parabolic initial bump.

    PDE:        u_t = α Δu   on [0, 1]² × [0, 1]   (x, y, t)
    Initial:    u(x, y, 0) = 16 x(1 − x) y(1 − y)
    Boundary:   u = 0 on the edges
    Solution:   a Fourier series (every odd mode decays); the reference sums it (50 000
                odd modes per axis, error below 1e-10) at the nodes of a 65 × 65 × 21 grid
                (cached). (The method of lines with 64 cells, used before, was 1e-4 off.)
    Parameters: alpha, the diffusivity α (default 0.05).
    """

    def u0(x):
        return 16 * x[:, 0] * (1 - x[:, 0]) * x[:, 1] * (1 - x[:, 1])

    return Problem(SpaceTime(Rectangle((0, 0), (1, 1)), (0, 1)),
                   lambda u, x: u.d("t") - alpha * u.laplacian(),
                   [Dirichlet(0.0, name="edges"), Initial(u0, name="initial")],
                   reference=lambda: cached("heat-2d", {"alpha": alpha, "n": 64, "nt": 21,
                                                        "series": True},
                                            lambda: heat_parabolic_bump(alpha, 1.0)
                                            .stating("error below 1e-10")),
                   linear=True)


@register("wave-1d", group="time-dependent")
def wave_1d(c: float = 2.0) -> Problem:
    """Wave equation on a string fixed at both ends, released from rest.

    PDE:        u_tt = c² u_xx   on [0, 1] × [0, 1]   (x, t)
    Initial:    u(x, 0) = sin(πx) + ½ sin(4πx),  u_t(x, 0) = 0
    Boundary:   u(0, t) = u(1, t) = 0
    Solution:   u = sin(πx) cos(cπt) + ½ sin(4πx) cos(4cπt)
    Parameters: c, the wave speed (default 2).
    """

    def exact(x):
        X, T = x.T
        return (torch.sin(PI * X) * torch.cos(c * PI * T)
                + 0.5 * torch.sin(4 * PI * X) * torch.cos(4 * c * PI * T))

    return Problem(SpaceTime(Interval(0, 1), (0, 1)),
                   lambda u, x: u.d("tt") - c**2 * u.d("xx"),
                   [Dirichlet(0.0, name="ends"), Initial(exact, name="initial"),
                    Initial(0.0, order=1, name="velocity")],
                   exact=exact, linear=True)


@register("advection-1d", group="time-dependent")
def advection_1d(a: float = 1.0) -> Problem:
    """Linear advection of a periodic wave.

    PDE:        u_t + a u_x = 0   on [0, 2π] × [0, 1]   (x, t)
    Initial:    u(x, 0) = sin(x) + ½ sin(2x)
    Boundary:   periodic in x
    Solution:   u = sin(x − at) + ½ sin(2(x − at))
    Parameters: a, the speed (default 1).
    """

    def exact(x):
        s = x[:, 0] - a * x[:, 1]
        return torch.sin(s) + 0.5 * torch.sin(2 * s)

    return Problem(SpaceTime(Interval(0, 2 * PI), (0, 1)),
                   lambda u, x: u.d("t") + a * u.d("x"),
                   [Periodic("x", name="periodic"), Initial(exact, name="initial")],
                   exact=exact, linear=True)


@register("advection-diffusion-2d", group="time-dependent")
def advection_diffusion_2d(eps: float = 0.005) -> Problem:
    """A Gaussian pulse carried across a square while it spreads.

    PDE:        u_t + ½ u_x + ½ u_y = ε Δu   on [0, 1]² × [0, 1]   (x, y, t)
    Initial:    u(x, y, 0) = exp(−((x − ¼)² + (y − ¼)²) / s²),  s = 0.1
    Boundary:   u = the solution on the edges
    Solution:   u = s²/w · exp(−((x − ¼ − t/2)² + (y − ¼ − t/2)²) / w),  w = s² + 4εt
                (the pulse moves from (¼, ¼) to (¾, ¾), its width growing from 0.1 to 0.17)
    Parameters: eps, the diffusivity ε (default 0.005).
    """
    s2 = 0.1**2

    def exact(x):
        X, Y, T = x.T
        w = s2 + 4 * eps * T
        return s2 / w * torch.exp(-((X - 0.25 - 0.5 * T) ** 2 + (Y - 0.25 - 0.5 * T) ** 2) / w)

    return Problem(SpaceTime(Rectangle((0, 0), (1, 1)), (0, 1)),
                   lambda u, x: u.d("t") + 0.5 * u.d("x") + 0.5 * u.d("y") - eps * u.laplacian(),
                   [Dirichlet(exact, name="edges"), Initial(exact, name="initial")],
                   exact=exact, linear=True)


def _lib(x):
    """numpy for numpy points (a reference's solver), torch for tensors (the problem's)."""
    return np if isinstance(x, np.ndarray) else torch


def _spot(x):
    """exp(−((x − ½)² + (y − ½)²) / 0.01): a spot 0.07 wide (standard deviation) at the
    centre of the unit square."""
    return _lib(x).exp(-((x[:, 0] - 0.5) ** 2 + (x[:, 1] - 0.5) ** 2) / 0.01)


def _bump(x):
    """sin(πx) sin(πy)."""
    return _lib(x).sin(PI * x[:, 0]) * _lib(x).sin(PI * x[:, 1])


@register("fisher-2d", group="time-dependent")
def fisher_2d(d: float = 0.01) -> Problem:
    """Fisher–KPP: a spot of a population that spreads as a ring-shaped front.

    PDE:        u_t = d Δu + u(1 − u)   on [0, 1]² × [0, 2]   (x, y, t)
    Initial:    u(x, y, 0) = exp(−((x − ½)² + (y − ½)²) / 0.01)
    Boundary:   u = 0 on the edges
    Solution:   no closed form; the reference is the method of lines on 64² and 128²
                cells, Richardson-extrapolated (its stated error below 2e-4), at the nodes
                of a 65 × 65 × 11 grid (cached).
    Parameters: d, the diffusivity (default 0.01).
    """

    def source(u, ux, uy):
        zero = np.zeros_like(u)
        return u * (1 - u), 1 - 2 * u, zero, zero

    return Problem(SpaceTime(Rectangle((0, 0), (1, 1)), (0, 2)),
                   lambda u, x: u.d("t") - d * u.laplacian() - u() * (1 - u()),
                   [Dirichlet(0.0, name="edges"), Initial(_spot, name="initial")],
                   reference=lambda: cached("fisher-2d", {"d": d, "n": 64, "nt": 11},
                                            lambda: square_evolution(d, source, _spot, 2.0)),
                   linear=False)


@register("burgers-2d", group="time-dependent")
def burgers_2d(nu: float = 0.01) -> Problem:
    """Viscous Burgers in two dimensions: a bump steepening into a front along the diagonal.

    PDE:        u_t + u (u_x + u_y) = ν Δu   on [0, 1]² × [0, 1]   (x, y, t)
    Initial:    u(x, y, 0) = sin(πx) sin(πy)
    Boundary:   u = 0 on the edges
    Solution:   no closed form; the reference is the method of lines on 64² and 128²
                cells, Richardson-extrapolated (its stated error below 3e-3; 4e-4 against
                the same on 128² and 256²), at the nodes of a 65 × 65 × 11 grid (cached).
    Parameters: nu, the viscosity ν (default 0.01).
    """

    def source(u, ux, uy):
        return -u * (ux + uy), -(ux + uy), -u, -u

    return Problem(SpaceTime(Rectangle((0, 0), (1, 1)), (0, 1)),
                   lambda u, x: u.d("t") + u() * (u.d("x") + u.d("y")) - nu * u.laplacian(),
                   [Dirichlet(0.0, name="edges"), Initial(_bump, name="initial")],
                   reference=lambda: cached("burgers-2d", {"nu": nu, "n": 64, "nt": 11},
                                            lambda: square_evolution(nu, source, _bump, 1.0)),
                   linear=False)


@register("klein-gordon", group="time-dependent")
def klein_gordon() -> Problem:
    """Nonlinear Klein–Gordon equation with a manufactured solution.

    PDE:        u_tt − u_xx + u³ = f   on [0, 1] × [0, 1]   (x, t), f from the solution
    Initial:    u(x, 0) = x,  u_t(x, 0) = 0
    Boundary:   u = exact at x = 0 and x = 1
    Solution:   u = x cos(5πt) + (xt)³
    """

    def exact(x):
        X, T = x.T
        return X * torch.cos(5 * PI * T) + (X * T) ** 3

    def source(x):
        X, T = x.T
        utt = -25 * PI**2 * X * torch.cos(5 * PI * T) + 6 * X**3 * T
        uxx = 6 * X * T**3
        return utt - uxx + exact(x) ** 3

    return Problem(SpaceTime(Interval(0, 1), (0, 1)),
                   lambda u, x: u.d("tt") - u.d("xx") + u() ** 3 - source(x),
                   [Dirichlet(exact, name="ends"), Initial(exact, name="initial"),
                    Initial(0.0, order=1, name="velocity")],
                   exact=exact, linear=False)


@register("allen-cahn", group="time-dependent")
def allen_cahn(d: float = 1e-4, rate: float = 5.0) -> Problem:
    """Allen–Cahn reaction–diffusion: sharp interfaces form between u = ±1 phases.

    PDE:        u_t = d u_xx + rate (u − u³)   on [−1, 1] × [0, 1]   (x, t)
    Initial:    u(x, 0) = x² cos(πx)
    Boundary:   periodic in x (value and slope)
    Solution:   no closed form; the reference is a Fourier spectral solution (2048 modes,
                ETDRK4 time steps) on a 513 × 201 grid, within about 3e-4 of one with
                twice the modes (cached on disk).
    Parameters: d, the diffusion (default 1e-4); rate, the reaction rate (default 5).
    """

    def u0(x):
        return x[:, 0] ** 2 * torch.cos(PI * x[:, 0])

    def u0_np(x):
        return x[:, 0] ** 2 * np.cos(np.pi * x[:, 0])

    return Problem(SpaceTime(Interval(-1, 1), (0, 1)),
                   lambda u, x: u.d("t") - d * u.d("xx") - rate * (u() - u() ** 3),
                   [Periodic("x", name="periodic"), Periodic("x", order=1, name="periodic-slope"),
                    Initial(u0, name="initial")],
                   reference=lambda: cached("allen-cahn", {"d": d, "rate": rate, "n": 2048},
                                            lambda: allen_cahn_periodic(d, rate, u0_np, 1.0)
                                            .stating("within about 3e-4 of the solution with "
                                                     "twice the modes")),
                   linear=False)
