"""Incompressible flows: steady Navier–Stokes with an exact solution (Kovasznay), Stokes
(manufactured), unsteady Navier–Stokes (the Taylor–Green vortex), and the lid-driven
cavity, whose reference is a finite-element solution.

Each is a system in the velocity (u, v) and the pressure p, one residual per equation:
the two momentum equations, then continuity. Velocity takes its exact values on the
boundary. The equations fix the pressure only up to a constant (a function of time,
for unsteady flows), so each problem pins it with a ``Data`` condition: the exact
pressure at one point (at one point for a column of times for Taylor–Green). Metrics
report each field (``rel_l2_u``, ``rel_l2_v``, ``rel_l2_p``), the pressure measured
against the exact one, the constant included, and the velocity as one vector field
(``rel_l2_velocity`` = ‖(u − u*, v − v*)‖ / ‖(u*, v*)‖; the problems declare the group).
"""

from __future__ import annotations

import math

import torch

from pinn_gmnm import (Data, Dirichlet, GMNMError, Initial, Problem, Profile, Rectangle,
                       SpaceTime, register)
from pinn_gmnm.references import ghia
from pinn_gmnm.references import cached

PI = math.pi
FLOW = ("u", "v", "p")
VELOCITY = {"velocity": ("u", "v")}


def _pinned_pressure(exact, points: list[list[float]]) -> Data:
    """The exact pressure at ``points``: what fixes the constant the equations leave free."""
    x = torch.tensor(points, dtype=torch.float64)
    return Data(points=x, values=exact(x)[:, 2], output="p", name="pressure")


def _velocity_conditions(exact) -> list[Dirichlet]:
    """u and v equal to the exact velocity on the (lateral) boundary."""
    return [Dirichlet(lambda x: exact(x)[:, 0], output="u", name="u-boundary"),
            Dirichlet(lambda x: exact(x)[:, 1], output="v", name="v-boundary")]


def kovasznay_lambda(re: float) -> float:
    """λ = Re/2 − √(Re²/4 + 4π²), the decay rate of Kovasznay's wake."""
    return re / 2 - math.sqrt(re**2 / 4 + 4 * PI**2)


@register("kovasznay", group="flows")
def kovasznay(re: float = 20.0) -> Problem:
    """Kovasznay flow: steady Navier–Stokes behind a grid, with an exact solution.

    PDE:        u u_x + v u_y + p_x − (1/Re) Δu = 0
                u v_x + v v_y + p_y − (1/Re) Δv = 0
                u_x + v_y = 0                       on [−0.5, 1] × [−0.5, 1.5]
    Boundary:   (u, v) = exact on ∂Ω; p = exact at (−0.5, −0.5) (fixes the constant)
    Solution:   u = 1 − e^(λx) cos(2πy),  v = λ/(2π) e^(λx) sin(2πy),  p = ½(1 − e^(2λx)),
                λ = Re/2 − √(Re²/4 + 4π²)   (Kovasznay 1948)
    Parameters: re, the Reynolds number Re (default 20; 40 is the other usual choice).
    """
    if not (math.isfinite(re) and re > 0):
        raise GMNMError(f"kovasznay: re must be a positive number, got {re!r}")
    lam, nu = kovasznay_lambda(re), 1 / re

    def exact(x):
        X, Y = x.T
        e = torch.exp(lam * X)
        return torch.stack([1 - e * torch.cos(2 * PI * Y),
                            lam / (2 * PI) * e * torch.sin(2 * PI * Y),
                            0.5 * (1 - e**2)], dim=1)

    def residual(f, x):
        u, v, p = f["u"], f["v"], f["p"]
        return [u() * u.d("x") + v() * u.d("y") + p.d("x") - nu * u.laplacian(),
                u() * v.d("x") + v() * v.d("y") + p.d("y") - nu * v.laplacian(),
                u.d("x") + v.d("y")]

    return Problem(Rectangle((-0.5, -0.5), (1.0, 1.5)), residual,
                   [*_velocity_conditions(exact), _pinned_pressure(exact, [[-0.5, -0.5]])],
                   exact=exact, outputs=FLOW, groups=VELOCITY, linear=False)


@register("stokes", group="flows")
def stokes(nu: float = 1.0) -> Problem:
    """Stokes flow in a closed box with a manufactured exact solution.

    PDE:        −ν Δu + p_x = f₁,  −ν Δv + p_y = f₂,  u_x + v_y = 0   on [0, 1]²
    Boundary:   u = v = 0 on ∂Ω; p = exact at (0.5, 0.5) (fixes the constant)
    Solution:   u = π sin²(πx) sin(2πy),  v = −π sin(2πx) sin²(πy)  (from the stream
                function ψ = sin²(πx) sin²(πy): divergence-free, zero on ∂Ω),
                p = cos(πx) cos(πy)  (mean zero over Ω); f = −νΔ(u, v) + ∇p:
                f₁ = −2νπ³ sin(2πy)(2cos(2πx) − 1) − π sin(πx) cos(πy)
                f₂ =  2νπ³ sin(2πx)(2cos(2πy) − 1) − π cos(πx) sin(πy)
    Parameters: nu, the viscosity ν (default 1).
    """
    if not (math.isfinite(nu) and nu > 0):
        raise GMNMError(f"stokes: nu must be a positive number, got {nu!r}")

    def exact(x):
        X, Y = x.T
        return torch.stack([PI * torch.sin(PI * X) ** 2 * torch.sin(2 * PI * Y),
                            -PI * torch.sin(2 * PI * X) * torch.sin(PI * Y) ** 2,
                            torch.cos(PI * X) * torch.cos(PI * Y)], dim=1)

    def force(x):
        X, Y = x.T
        f1 = (-2 * nu * PI**3 * torch.sin(2 * PI * Y) * (2 * torch.cos(2 * PI * X) - 1)
              - PI * torch.sin(PI * X) * torch.cos(PI * Y))
        f2 = (2 * nu * PI**3 * torch.sin(2 * PI * X) * (2 * torch.cos(2 * PI * Y) - 1)
              - PI * torch.cos(PI * X) * torch.sin(PI * Y))
        return f1, f2

    def residual(f, x):
        u, v, p = f["u"], f["v"], f["p"]
        f1, f2 = force(x)
        return [-nu * u.laplacian() + p.d("x") - f1,
                -nu * v.laplacian() + p.d("y") - f2,
                u.d("x") + v.d("y")]

    return Problem(Rectangle((0, 0), (1, 1)), residual,
                   [Dirichlet(0.0, output="u", name="u-boundary"),
                    Dirichlet(0.0, output="v", name="v-boundary"),
                    _pinned_pressure(exact, [[0.5, 0.5]])],
                   exact=exact, outputs=FLOW, groups=VELOCITY, linear=True)


@register("taylor-green", group="flows")
def taylor_green(nu: float = 0.1, t_end: float = 1.0) -> Problem:
    """The Taylor–Green vortex: unsteady Navier–Stokes, an array of vortices decaying.

    PDE:        u_t + u u_x + v u_y + p_x − ν Δu = 0
                v_t + u v_x + v v_y + p_y − ν Δv = 0
                u_x + v_y = 0                 on [0, 2π]² × [0, T]   (x, y, t)
    Initial:    (u, v) = exact at t = 0
    Boundary:   (u, v) = exact on the sides; p = exact at (π, π) at 11 times from 0 to T
                (the equations fix p only up to a function of time)
    Solution:   u = −cos x sin y F,  v = sin x cos y F,  p = −¼ (cos 2x + cos 2y) F²,
                F = e^(−2νt)
    Parameters: nu, the viscosity ν (default 0.1); t_end, the final time T (default 1).
    """
    if not (math.isfinite(nu) and nu > 0):
        raise GMNMError(f"taylor-green: nu must be a positive number, got {nu!r}")
    if not (math.isfinite(t_end) and t_end > 0):
        raise GMNMError(f"taylor-green: t_end must be a positive number, got {t_end!r}")

    def exact(x):
        X, Y, T = x.T
        F = torch.exp(-2 * nu * T)
        return torch.stack([-torch.cos(X) * torch.sin(Y) * F,
                            torch.sin(X) * torch.cos(Y) * F,
                            -0.25 * (torch.cos(2 * X) + torch.cos(2 * Y)) * F**2], dim=1)

    def residual(f, x):
        u, v, p = f["u"], f["v"], f["p"]
        return [u.d("t") + u() * u.d("x") + v() * u.d("y") + p.d("x") - nu * u.laplacian(),
                v.d("t") + u() * v.d("x") + v() * v.d("y") + p.d("y") - nu * v.laplacian(),
                u.d("x") + v.d("y")]

    times = [t_end * k / 10 for k in range(11)]
    return Problem(SpaceTime(Rectangle((0, 0), (2 * PI, 2 * PI)), (0, t_end)), residual,
                   [*_velocity_conditions(exact),
                    Initial(lambda x: exact(x)[:, 0], output="u", name="u-initial"),
                    Initial(lambda x: exact(x)[:, 1], output="v", name="v-initial"),
                    _pinned_pressure(exact, [[PI, PI, t] for t in times])],
                   exact=exact, outputs=FLOW, groups=VELOCITY, linear=False)


def lid_velocity(x: torch.Tensor, ramp: float) -> torch.Tensor:
    """The lid's speed at abscissae ``x``: 1, brought to 0 at the corners over ``ramp``
    by the smooth step φ(t) = t³(10 − 15t + 6t²) (φ, φ′ and φ″ match 0 and 1 at both
    ends): g(x) = φ(x/δ) φ((1 − x)/δ). ``ramp`` = 0 is the classic lid: 1 on the open
    edge, 0 at the two corners."""
    if ramp == 0:
        return ((x > 0) & (x < 1)).to(x.dtype)

    def step(t):
        t = t.clamp(0.0, 1.0)
        return t**3 * (10 - 15 * t + 6 * t**2)

    return step(x / ramp) * step((1 - x) / ramp)


CAVITY_MESH = 64
"""Squares per side of the finite-element reference of the cavity."""


@register("lid-driven-cavity", group="flows")
def lid_driven_cavity(re: float = 100.0, ramp: float = 0.2) -> Problem:
    """The lid-driven cavity: steady Navier–Stokes in a square box whose lid slides.

    PDE:        u u_x + v u_y + p_x − (1/Re) Δu = 0
                u v_x + v v_y + p_y − (1/Re) Δv = 0
                u_x + v_y = 0                       on [0, 1]²
    Boundary:   u = g(x), v = 0 on the lid y = 1; u = v = 0 on the other walls;
                p(½, ½) = 0 (fixes the constant)
    Lid:        g(x) = φ(x/δ) φ((1 − x)/δ), φ(t) = t³(10 − 15t + 6t²) on [0, 1], 1 beyond:
                speed 1 over the lid, brought smoothly to rest at the corners within δ
                (the regularised cavity). The classic lid (δ = 0: u = 1 up to the
                corners) makes the velocity jump at the two top corners and the pressure
                infinite there; no smooth model represents that, and finite-element
                solutions on meshes h and h/2 then differ by 2e-2 (relative L2) near the
                corners alone. With δ = 0.2 the centreline profiles differ from the
                classic lid's by at most 1.2e-2 (at Re = 100), as much as Ghia's table
                differs from spectral solutions; a default GMNM (361 Gaussians) then fits
                the velocity to 7e-3 by least squares (1.5e-2 with δ = 0.1).
    Solution:   no closed form; the reference is a Taylor–Hood (P2 velocity, P1 pressure)
                finite-element solution on a 64 × 64-square mesh by Newton's method
                (scikit-fem), cached on disk. Velocities on 16, 32 and 64 squares differ
                by 7.8e-3 and 9.0e-4 (relative L2): about h³, so the reference is within
                about 1.2e-4 of the exact solution. For the classic lid at Re = 100 its
                centreline velocities are within 1e-2 of Ghia, Ghia & Shin (1982), whose
                second-order 129² finite differences are themselves that far from spectral
                solutions. Each run writes the centreline profiles (u along x = ½, v along
                y = ½) of the model and the reference, with Ghia's values at Re = 100, to
                profiles.csv and profiles.png.
    Parameters: re, the Reynolds number Re (default 100); ramp, the width δ over which
                the lid comes to rest at each corner (default 0.2; 0: the classic lid).
    """
    if not (math.isfinite(re) and re > 0):
        raise GMNMError(f"lid-driven-cavity: re must be a positive number, got {re!r}")
    if not (math.isfinite(ramp) and 0 <= ramp <= 0.5):
        raise GMNMError(f"lid-driven-cavity: ramp must be between 0 and 0.5, got {ramp!r}")
    nu = 1 / re

    def residual(f, x):
        u, v, p = f["u"], f["v"], f["p"]
        return [u() * u.d("x") + v() * u.d("y") + p.d("x") - nu * u.laplacian(),
                u() * v.d("x") + v() * v.d("y") + p.d("y") - nu * v.laplacian(),
                u.d("x") + v.d("y")]

    def lid(x):
        return torch.where(x[:, 1] >= 1, lid_velocity(x[:, 0], ramp), torch.zeros_like(x[:, 0]))

    def reference():
        from pinn_gmnm.fem.navier_stokes import cavity_reference

        def solve():
            g = lambda s: lid_velocity(torch.from_numpy(s), ramp).numpy()  # noqa: E731
            return cavity_reference(re, g, n=CAVITY_MESH).stating(
                "velocity within about 1.2e-4 (relative L2), by refinement")

        return cached("lid-driven-cavity", {"re": re, "ramp": ramp, "n": CAVITY_MESH}, solve)

    # Ghia's values are for Re = 100 and the classic lid (within 1.2e-2 of the ramped one's)
    source = ghia.SOURCE + ("" if ramp == 0 else ", classic lid")
    profiles = [Profile("u", (0.5, 0.0), (0.5, 1.0), along="y", source=source,
                        published=ghia.U_ALONG_X_HALF if re == 100 else ()),
                Profile("v", (0.0, 0.5), (1.0, 0.5), along="x", source=source,
                        published=ghia.V_ALONG_Y_HALF if re == 100 else ())]
    centre = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    return Problem(Rectangle((0, 0), (1, 1)), residual,
                   [Dirichlet(lid, output="u", name="u-walls"),
                    Dirichlet(0.0, output="v", name="v-walls"),
                    Data(points=centre, values=torch.zeros(1, dtype=torch.float64), output="p",
                         name="pressure")],
                   reference=reference, outputs=FLOW, groups=VELOCITY, linear=False,
                   profiles=profiles)
