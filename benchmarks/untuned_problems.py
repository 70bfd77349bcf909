"""Problems written to test the defaults, not in the catalogue and not tuned for: each is
solved with every option at its default (see ``untuned.py``). Each factory's docstring
states the problem; each has an exact solution, but for ``cylinder``, measured against
finite elements (the ``fem`` extra), and ``allen_cahn_2d``, against the method of lines."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from pinn_gmnm import (Box, Condition, Data, Difference, Dirichlet, Disk, Initial, Interval, Neumann,
                       Polygon, Problem, Rectangle, Robin, SpaceTime, Sphere)
from pinn_gmnm.geometry.base import near

PI = math.pi


def wave_square() -> Problem:
    """u_tt = Δu on [0, 1]² × [0, 1], u = 0 on the edges, released from rest: two modes."""
    def exact(x):
        X, Y, T = x.T
        return (torch.sin(PI * X) * torch.sin(PI * Y) * torch.cos(PI * math.sqrt(2) * T)
                + 0.5 * torch.sin(2 * PI * X) * torch.sin(PI * Y) * torch.cos(PI * math.sqrt(5) * T))

    return Problem(SpaceTime(Rectangle((0, 0), (1, 1)), (0, 1)),
                   lambda u, x: u.d("tt") - u.laplacian(),
                   [Dirichlet(0.0, name="edges"), Initial(exact, name="initial"),
                    Initial(0.0, order=1, name="velocity")], exact=exact, linear=True)


def wave_pulse() -> Problem:
    """u_tt = u_xx on [0, 1] × [0, 1], fixed ends: a Gaussian pulse 0.08 wide released from
    rest at x = 0.4 splits and reflects (d'Alembert's solution)."""
    s = 0.08

    def odd(z):  # the pulse's odd, 2-periodic extension
        return sum(torch.exp(-((z - 0.4 - 2 * n) / s) ** 2) - torch.exp(-((z + 0.4 - 2 * n) / s) ** 2)
                   for n in range(-3, 4))

    def exact(x):
        X, T = x.T
        return 0.5 * (odd(X - T) + odd(X + T))

    return Problem(SpaceTime(Interval(0, 1), (0, 1)), lambda u, x: u.d("tt") - u.d("xx"),
                   [Dirichlet(0.0, name="ends"), Initial(exact, name="initial"),
                    Initial(0.0, order=1, name="velocity")], exact=exact, linear=True)


def heat_disk() -> Problem:
    """u_t = 0.05 Δu on the unit disk × [0, 1], u = 0 on the rim: the first radial mode,
    J₀(j₀₁ r) e^(−0.05 j₀₁² t)."""
    j = 2.404825557695773

    def exact(x):
        r = torch.sqrt(x[:, 0] ** 2 + x[:, 1] ** 2)
        return torch.special.bessel_j0(j * r) * torch.exp(-0.05 * j**2 * x[:, 2])

    return Problem(SpaceTime(Disk((0, 0), 1.0), (0, 1)), lambda u, x: u.d("t") - 0.05 * u.laplacian(),
                   [Dirichlet(0.0, name="rim"), Initial(exact, name="initial")], exact=exact,
                   linear=True)


def heat_cube() -> Problem:
    """u_t = 0.05 Δu in the unit cube × [0, 1], u = 0 on the faces: one mode."""
    def exact(x):
        X, Y, Z, T = x.T
        return (torch.sin(PI * X) * torch.sin(PI * Y) * torch.sin(PI * Z)
                * torch.exp(-0.15 * PI**2 * T))

    return Problem(SpaceTime(Box((0, 0, 0), (1, 1, 1)), (0, 1)), lambda u, x: u.d("t") - 0.05 * u.laplacian(),
                   [Dirichlet(0.0, name="faces"), Initial(exact, name="initial")], exact=exact,
                   linear=True)


def pulse_line() -> Problem:
    """u_t + ½ u_x = 10⁻³ u_xx on [0, 1] × [0, 1]: a Gaussian pulse 0.05 wide carried from
    x = ¼ as it spreads; u = the solution at the ends."""
    eps, s = 1e-3, 0.05

    def exact(x):
        X, T = x.T
        w = s**2 + 4 * eps * T
        return s / torch.sqrt(w) * torch.exp(-(X - 0.25 - 0.5 * T) ** 2 / w)

    return Problem(SpaceTime(Interval(0, 1), (0, 1)),
                   lambda u, x: u.d("t") + 0.5 * u.d("x") - eps * u.d("xx"),
                   [Dirichlet(exact, name="ends"), Initial(exact, name="initial")], exact=exact,
                   linear=True)


def heat_insulated() -> Problem:
    """u_t = 0.2 u_xx on [0, 1] × [0, 1], u(0, t) = 0, u_x(1, t) = 0: two modes."""
    def exact(x):
        X, T = x.T
        return (torch.exp(-0.2 * (PI / 2) ** 2 * T) * torch.sin(PI * X / 2)
                + 0.3 * torch.exp(-0.2 * (3 * PI / 2) ** 2 * T) * torch.sin(3 * PI * X / 2))

    return Problem(SpaceTime(Interval(0, 1), (0, 1)), lambda u, x: u.d("t") - 0.2 * u.d("xx"),
                   [Dirichlet(0.0, on=lambda x: near(x[:, 0], 0.0), name="cold"),
                    Neumann(0.0, on=lambda x: near(x[:, 0], 1.0), name="insulated"),
                    Initial(exact, name="initial")], exact=exact, linear=True)


def annulus() -> Problem:
    """Δu = 0 on 0.5 < r < 1, u = ln r / ln 2 + 1: the value on the outer circle, the flux
    through the inner one."""
    def exact(x):
        return torch.log(torch.sqrt(x[:, 0] ** 2 + x[:, 1] ** 2)) / math.log(2) + 1

    def outer(x):
        return x[:, 0] ** 2 + x[:, 1] ** 2 > 0.5625

    def inner(x):
        return x[:, 0] ** 2 + x[:, 1] ** 2 <= 0.5625

    flux = -1 / (0.5 * math.log(2))  # ∂u/∂n with n pointing to the centre
    return Problem(Difference(Disk((0, 0), 1.0), Disk((0, 0), 0.5)), lambda u, x: u.laplacian(),
                   [Dirichlet(exact, on=outer, name="outer"),
                    Neumann(lambda x: torch.full((len(x),), flux, dtype=x.dtype), on=inner,
                            name="inner")], exact=exact, linear=True)


def helmholtz_144() -> Problem:
    """−Δu − 144 u = f on [0, 1]², u = sin(4πx) sin(πy) + xy (144 is no eigenvalue)."""
    def exact(x):
        return torch.sin(4 * PI * x[:, 0]) * torch.sin(PI * x[:, 1]) + x[:, 0] * x[:, 1]

    def f(x):
        return ((17 * PI**2 - 144) * torch.sin(4 * PI * x[:, 0]) * torch.sin(PI * x[:, 1])
                - 144 * x[:, 0] * x[:, 1])

    return Problem(Rectangle((0, 0), (1, 1)), lambda u, x: -u.laplacian() - 144 * u() - f(x),
                   [Dirichlet(exact, name="edges")], exact=exact, linear=True)


def peak() -> Problem:
    """Δu = f on [0, 1]², u = exp(−|x − (0.6, 0.45)|² / 10⁻³): a peak 0.02 wide."""
    a = 1e-3

    def exact(x):
        return torch.exp(-((x[:, 0] - 0.6) ** 2 + (x[:, 1] - 0.45) ** 2) / a)

    def f(x):
        r2 = (x[:, 0] - 0.6) ** 2 + (x[:, 1] - 0.45) ** 2
        return exact(x) * (4 * r2 / a**2 - 4 / a)

    return Problem(Rectangle((0, 0), (1, 1)), lambda u, x: u.laplacian() - f(x),
                   [Dirichlet(exact, name="edges")], exact=exact, linear=True)


def ball() -> Problem:
    """Δu = 0 in the unit ball, u = sin(x) e^y z + xy on its surface."""
    def exact(x):
        return torch.sin(x[:, 0]) * torch.exp(x[:, 1]) * x[:, 2] + x[:, 0] * x[:, 1]

    return Problem(Sphere((0, 0, 0), 1.0), lambda u, x: u.laplacian(),
                   [Dirichlet(exact, name="surface")], exact=exact, linear=True)


def beam() -> Problem:
    """u'''' = 24 on [0, 1], clamped (u = u' = 0) at both ends: u = x²(1 − x)²."""
    def exact(x):
        return x[:, 0] ** 2 * (1 - x[:, 0]) ** 2

    return Problem(Interval(0, 1), lambda u, x: u.d("xxxx") - 24.0,
                   [Dirichlet(0.0, name="ends"), Neumann(0.0, name="clamped")], exact=exact,
                   linear=True)


def quasilinear() -> Problem:
    """−∇·((1 + u²)∇u) = f on [0, 1]², u = sin(πx) sin(πy), u = 0 on the edges."""
    def exact(x):
        return torch.sin(PI * x[:, 0]) * torch.sin(PI * x[:, 1])

    def f(x):
        X, Y = x[:, 0], x[:, 1]
        u = exact(x)
        ux, uy = PI * torch.cos(PI * X) * torch.sin(PI * Y), PI * torch.sin(PI * X) * torch.cos(PI * Y)
        return -((1 + u**2) * (-2 * PI**2 * u) + 2 * u * (ux**2 + uy**2))

    def residual(u, x):
        g = u.grad()
        return -((1 + u() ** 2) * u.laplacian() + 2 * u() * (g[:, 0] ** 2 + g[:, 1] ** 2)) - f(x)

    return Problem(Rectangle((0, 0), (1, 1)), residual, [Dirichlet(0.0, name="edges")],
                   exact=exact, linear=False)


def layer_1d(eps: float = 0.02) -> Problem:
    """−ε²u'' + u³ + u = f on [−1, 1], u = tanh(x/(√2 ε)) + x/2: a layer 0.03 wide."""
    w = math.sqrt(2) * eps

    def exact(x):
        return torch.tanh(x[:, 0] / w) + 0.5 * x[:, 0]

    def f(x):
        t = torch.tanh(x[:, 0] / w)
        return 2 * eps**2 * t * (1 - t**2) / w**2 + exact(x) ** 3 + exact(x)

    return Problem(Interval(-1, 1), lambda u, x: -eps**2 * u.d("xx") + u() ** 3 + u() - f(x),
                   [Dirichlet(exact, name="ends")], exact=exact, linear=False)


def layer_2d(eps: float = 0.03) -> Problem:
    """−ε²Δu + u³ + u = f on [0, 1]², u = tanh((x + y − 1)/(√2 ε)): a diagonal layer."""
    w = math.sqrt(2) * eps

    def exact(x):
        return torch.tanh((x[:, 0] + x[:, 1] - 1) / w)

    def f(x):
        t = exact(x)
        return 4 * eps**2 * t * (1 - t**2) / w**2 + t**3 + t

    return Problem(Rectangle((0, 0), (1, 1)),
                   lambda u, x: -eps**2 * u.laplacian() + u() ** 3 + u() - f(x),
                   [Dirichlet(exact, name="edges")], exact=exact, linear=False)


def kdv_soliton() -> Problem:
    """u_t + 6uu_x + u_xxx = 0 on [−10, 10] × [0, 2]: a soliton of speed 4 from x = −4; the
    solution at both ends and its slope at the right one."""
    c, x0, k = 4.0, -4.0, 1.0

    def exact(x):
        X, T = x.T
        return c / 2 / torch.cosh(k * (X - c * T - x0)) ** 2

    def slope(x):
        X, T = x.T
        s = k * (X - c * T - x0)
        return -c * k * torch.tanh(s) / torch.cosh(s) ** 2

    return Problem(SpaceTime(Interval(-10, 10), (0, 2)),
                   lambda u, x: u.d("t") + 6 * u() * u.d("x") + u.d("xxx"),
                   [Dirichlet(exact, name="ends"),
                    Neumann(slope, on=lambda x: near(x[:, 0], 10.0), name="right slope"),
                    Initial(exact, name="initial")], exact=exact, linear=False)


def outflow_layers(eps: float = 0.05) -> Problem:
    """−εΔu + u_x + u_y = f on [0, 1]², u = 0 on the edges, ε = 0.05: u = p(x) p(y) with
    p(s) = s (1 − e^((s−1)/ε)), layers of width ε at the outflow edges x = 1 and y = 1."""
    def p(s):
        return s * (1 - torch.exp((s - 1) / eps))

    def dp(s):
        e = torch.exp((s - 1) / eps)
        return 1 - e - s * e / eps

    def d2p(s):
        e = torch.exp((s - 1) / eps)
        return -2 * e / eps - s * e / eps**2

    def exact(x):
        return p(x[:, 0]) * p(x[:, 1])

    def f(x):
        X, Y = x[:, 0], x[:, 1]
        return (-eps * (d2p(X) * p(Y) + p(X) * d2p(Y)) + dp(X) * p(Y) + p(X) * dp(Y))

    return Problem(Rectangle((0, 0), (1, 1)),
                   lambda u, x: -eps * u.laplacian() + u.d("x") + u.d("y") - f(x),
                   [Dirichlet(0.0, name="edges")], exact=exact, linear=True)


def heat_lshape() -> Problem:
    """u_t = Δu + f on the L-shape [−1, 1]² minus its fourth quadrant, × [0, ½], u = 0 on
    the edges: u = e^(−t) sin(πx) sin(πy) (zero on every edge; f = (2π² − 1) u)."""
    shape = Polygon([(-1, -1), (0, -1), (0, 0), (1, 0), (1, 1), (-1, 1)])

    def exact(x):
        return torch.exp(-x[:, 2]) * torch.sin(PI * x[:, 0]) * torch.sin(PI * x[:, 1])

    return Problem(SpaceTime(shape, (0, 0.5)),
                   lambda u, x: u.d("t") - u.laplacian() - (2 * PI**2 - 1) * exact(x),
                   [Dirichlet(0.0, name="edges"), Initial(exact, name="initial")],
                   exact=exact, linear=True)


def rotating_blob() -> Problem:
    """u_t − 2πy u_x + 2πx u_y = 0 on the unit disk × [0, 1]: a Gaussian blob
    exp(−|x − (½, 0)|²/0.15²) turned once around the centre (the exact solution on the
    rim)."""
    def exact(x):
        X, Y, T = x.T
        a = -2 * PI * T  # the point the flow carried here started at R(−2πt) x
        x0 = X * torch.cos(a) - Y * torch.sin(a)
        y0 = X * torch.sin(a) + Y * torch.cos(a)
        return torch.exp(-((x0 - 0.5) ** 2 + y0**2) / 0.15**2)

    return Problem(SpaceTime(Disk((0, 0), 1.0), (0, 1)),
                   lambda u, x: u.d("t") + 2 * PI * (-x[:, 1] * u.d("x") + x[:, 0] * u.d("y")),
                   [Dirichlet(exact, name="rim"), Initial(exact, name="initial")],
                   exact=exact, linear=True)


def cylinder() -> Problem:
    """Steady Navier–Stokes past a cylinder in a channel (Schäfer–Turek's geometry, Re =
    20): [0, 2.2] × [0, 0.41] minus the disk of radius 0.05 at (0.2, 0.2), ν = 10⁻³; u the
    parabola 4·0.3·y(0.41 − y)/0.41² and v = 0 at the inlet and the outlet, u = v = 0 on
    the walls and the cylinder; p = 0 at (2.1, 0.205). Against Taylor–Hood finite elements
    with h = 0.01 (cached; h = 0.02 differs from it by 1.5e-3 in velocity)."""
    H, L, U, nu = 0.41, 2.2, 0.3, 1e-3

    def u_wall(x):
        ends = (x[:, 0] <= 1e-9) | (x[:, 0] >= L - 1e-9)
        y = x[:, 1]
        return torch.where(ends, 4 * U * y * (H - y) / H**2, torch.zeros_like(y))

    def residual(f, x):
        u, v, p = f["u"], f["v"], f["p"]
        return [u() * u.d("x") + v() * u.d("y") + p.d("x") - nu * u.laplacian(),
                u() * v.d("x") + v() * v.d("y") + p.d("y") - nu * v.laplacian(),
                u.d("x") + v.d("y")]

    def reference():  # (of `problem`, built below)
        from pinn_gmnm.fem.model import FEM
        from pinn_gmnm.fem.navier_stokes import solve_flow
        from pinn_gmnm.references import Reference, cached
        from pinn_gmnm.sampling import Sobol

        def solve():
            fem = solve_flow(problem, size=0.01)
            model = FEM(2, 3, fem_order=2, fem_size=0.01)
            model.set_solution(fem.nodes, fem.cells, fem.values, orders=fem.orders)
            x = problem.geometry.sample_interior(32768, Sobol(), 2024).double()
            with torch.no_grad():
                values = model(x)
            return Reference(x, values, source=(
                f"Taylor–Hood finite elements (scikit-fem), {len(fem.values)} degrees of "
                f"freedom on {fem.triangles} triangles, h <= 0.01")).stating(
                "velocity within about 1.5e-3 (h = 0.02 against h = 0.01)")

        return cached("untuned-cylinder", {"re": 20, "h": 0.01, "points": 32768}, solve)

    point = torch.tensor([[2.1, 0.205]], dtype=torch.float64)
    problem = Problem(Rectangle((0, 0), (L, H)) - Disk((0.2, 0.2), 0.05), residual,
                      [Dirichlet(u_wall, output="u", name="u-walls"),
                       Dirichlet(0.0, output="v", name="v-walls"),
                       Data(points=point, values=torch.zeros(1, dtype=torch.float64), output="p",
                            name="pressure")],
                      outputs=("u", "v", "p"), groups={"velocity": ("u", "v")}, linear=False,
                      reference=reference)
    return problem


def plate() -> Problem:
    """Δ²u = f on [0, 1]², clamped (u = ∂u/∂n = 0 on the edges): u = sin²(πx) sin²(πy)."""
    def exact(x):
        return (torch.sin(PI * x[:, 0]) * torch.sin(PI * x[:, 1])) ** 2

    def f(x):  # a = sin²(πx): a₂ = a_xx = 2π² cos 2πx, a_xxxx = −4π² a₂; b likewise in y
        a, b = torch.sin(PI * x[:, 0]) ** 2, torch.sin(PI * x[:, 1]) ** 2
        a2, b2 = 2 * PI**2 * torch.cos(2 * PI * x[:, 0]), 2 * PI**2 * torch.cos(2 * PI * x[:, 1])
        return -4 * PI**2 * (a2 * b + a * b2) + 2 * a2 * b2

    return Problem(Rectangle((0, 0), (1, 1)),
                   lambda u, x: u.d("xxxx") + 2 * u.d("xxyy") + u.d("yyyy") - f(x),
                   [Dirichlet(0.0, name="edges"), Neumann(0.0, name="clamped")], exact=exact,
                   linear=True)


def anisotropic() -> Problem:
    """−∇·(A∇u) = f on [0, 1]², A = R diag(1, 0.01) Rᵀ with R a turn by 30°, u = sin(πx)
    sin(2πy) + x on the edges and inside."""
    c, s = math.cos(PI / 6), math.sin(PI / 6)
    a11, a22, a12 = c * c + 0.01 * s * s, s * s + 0.01 * c * c, 0.99 * c * s

    def exact(x):
        return torch.sin(PI * x[:, 0]) * torch.sin(2 * PI * x[:, 1]) + x[:, 0]

    def f(x):
        X, Y = x[:, 0], x[:, 1]
        wave = torch.sin(PI * X) * torch.sin(2 * PI * Y)
        uxy = 2 * PI**2 * torch.cos(PI * X) * torch.cos(2 * PI * Y)
        return a11 * PI**2 * wave - 2 * a12 * uxy + a22 * 4 * PI**2 * wave

    return Problem(Rectangle((0, 0), (1, 1)),
                   lambda u, x: -(a11 * u.d("xx") + 2 * a12 * u.d("xy") + a22 * u.d("yy")) - f(x),
                   [Dirichlet(exact, name="edges")], exact=exact, linear=True)


@dataclass(frozen=True)
class Traction(Condition):
    """Plane linear elasticity: component ``axis`` of the traction σ(u)·n equals ``value``
    (σ = λ tr ε I + 2μ ε, n the geometry's outward normal: into a hole on its rim)."""

    axis: int = 0
    lam: float = 1.0
    mu: float = 1.0
    value: Callable[[Tensor], Tensor] | None = None
    kind = "traction"

    def residual(self, u, x, geometry):  # type: ignore[no-untyped-def]
        gu, gv = u["u"].grad(), u["v"].grad()
        n = geometry.normal(x).to(x)
        return _traction(gu[..., 0], gu[..., 1], gv[..., 0], gv[..., 1], n, self.axis, self.lam,
                         self.mu) - (self.value(x) if self.value is not None else 0.0)


def _traction(ux, uy, vx, vy, n, axis, lam, mu):  # type: ignore[no-untyped-def]
    shear = mu * (uy + vx)
    if axis == 0:
        return (lam * (ux + vy) + 2 * mu * ux) * n[:, 0] + shear * n[:, 1]
    return shear * n[:, 0] + (lam * (ux + vy) + 2 * mu * vy) * n[:, 1]


def elastic_hole() -> Problem:
    """Plane elasticity μΔu + (λ + μ)∇(∇·u) + f = 0 on [−1, 1]² minus the disk r < 0.3
    (λ = 1.5, μ = 1): u = (0.1 sin(πx/2) cos y, 0.1 x y²) on the outer edges, its traction
    σ(u)·n on the hole's rim (a user-written ``Traction`` condition)."""
    lam, mu = 1.5, 1.0

    def ex_u(x):
        return 0.1 * torch.sin(PI * x[:, 0] / 2) * torch.cos(x[:, 1])

    def ex_v(x):
        return 0.1 * x[:, 0] * x[:, 1] ** 2

    def traction(axis):  # of the solution, on the rim
        def value(x):
            X, Y = x[:, 0], x[:, 1]
            ux = 0.05 * PI * torch.cos(PI * X / 2) * torch.cos(Y)
            uy = -0.1 * torch.sin(PI * X / 2) * torch.sin(Y)
            n = -x / x.norm(dim=1, keepdim=True)  # out of the plate: into the hole
            return _traction(ux, uy, 0.1 * Y**2, 0.2 * X * Y, n, axis, lam, mu)
        return value

    def residual(f, x):
        u, v = f["u"], f["v"]
        X, Y = x[:, 0], x[:, 1]
        sxc = 0.1 * torch.sin(PI * X / 2) * torch.cos(Y)
        uxx, uyy = -(PI / 2) ** 2 * sxc, -sxc
        uxy = -0.05 * PI * torch.cos(PI * X / 2) * torch.sin(Y)
        vyy, vxy = 0.2 * X, 0.2 * Y
        fx = -(mu * (uxx + uyy) + (lam + mu) * (uxx + vxy))
        fy = -(mu * vyy + (lam + mu) * (uxy + vyy))
        return [mu * u.laplacian() + (lam + mu) * (u.d("xx") + v.d("xy")) + fx,
                mu * v.laplacian() + (lam + mu) * (u.d("xy") + v.d("yy")) + fy]

    def rim(x):
        return x[:, 0] ** 2 + x[:, 1] ** 2 < 0.3**2 + 1e-6

    def edges(x):
        return ~rim(x)

    return Problem(Rectangle((-1, -1), (1, 1)) - Disk((0, 0), 0.3), residual,
                   [Dirichlet(ex_u, output="u", on=edges, name="u-edges"),
                    Dirichlet(ex_v, output="v", on=edges, name="v-edges"),
                    Traction(axis=0, lam=lam, mu=mu, value=traction(0), on=rim, name="rim-x"),
                    Traction(axis=1, lam=lam, mu=mu, value=traction(1), on=rim, name="rim-y")],
                   exact=lambda x: torch.stack([ex_u(x), ex_v(x)], 1), outputs=("u", "v"),
                   groups={"displacement": ("u", "v")}, linear=True)


def cube_hole() -> Problem:
    """Δu = 0 in [0, 1]³ minus the ball of radius 0.25 at its centre, u = 1/|x − (1.3, ½,
    ½)| (a point source outside) on the walls and on the ball's surface."""
    def exact(x):
        return 1 / (x - torch.tensor([1.3, 0.5, 0.5], dtype=x.dtype)).norm(dim=1)

    return Problem(Box((0, 0, 0), (1, 1, 1)) - Sphere((0.5, 0.5, 0.5), 0.25),
                   lambda u, x: u.laplacian(), [Dirichlet(exact, name="walls")], exact=exact,
                   linear=True)


def allen_cahn_2d() -> Problem:
    """u_t = 10⁻³ Δu + u − u³ on [0, 1]² × [0, 1], u = 0 on the edges, from
    u_0 = ½ sin 2πx sin 2πy: four phases of u = ±1 form, parted by a cross of interfaces
    about 0.03 wide and held at 0 on the edges. Against the method of lines on 64² and 128²
    cells, Richardson-extrapolated (cached). Written (2026-12-03) as the third problem on
    which the slabs of a Newton march in two space dimensions were first measured."""
    import numpy as np

    from pinn_gmnm.references import cached
    from pinn_gmnm.references.evolution import square_evolution

    def u0(x):
        lib = torch if isinstance(x, Tensor) else np
        return 0.5 * lib.sin(2 * PI * x[:, 0]) * lib.sin(2 * PI * x[:, 1])

    def source(u, ux, uy):
        zero = np.zeros_like(u)
        return u - u**3, 1 - 3 * u**2, zero, zero

    return Problem(SpaceTime(Rectangle((0, 0), (1, 1)), (0, 1)),
                   lambda u, x: u.d("t") - 1e-3 * u.laplacian() - u() + u() ** 3,
                   [Dirichlet(0.0, name="edges"), Initial(u0, name="initial")],
                   reference=lambda: cached("untuned-allen-cahn-2d", {"n": 64, "nt": 11},
                                            lambda: square_evolution(1e-3, source, u0, 1.0)),
                   linear=False)


def ellipse_pulse() -> Problem:
    """u_t + 0.4 u_x + 0.2 u_y = 10⁻³ Δu on the unit disk × [0, 1.5]: an elongated Gaussian
    pulse (standard deviations 0.15 and 0.04, turned by 30°) carried from (−½, −0.2) while
    it spreads (its covariance grows by 2·10⁻³ t); the exact solution on the rim. Written
    (2026-12-03) after the compact march's points came to be focused, to check that
    change on a transport it was not developed on, and run once."""
    c, s = math.cos(PI / 6), math.sin(PI / 6)
    a2, b2, diff, vx, vy = 0.15**2, 0.04**2, 1e-3, 0.4, 0.2
    s11, s12, s22 = c * c * a2 + s * s * b2, c * s * (a2 - b2), s * s * a2 + c * c * b2

    def exact(x):
        X, Y, T = x.T
        p11, p22 = s11 + 2 * diff * T, s22 + 2 * diff * T
        det = p11 * p22 - s12**2
        dx, dy = X + 0.5 - vx * T, Y + 0.2 - vy * T
        q = (p22 * dx * dx - 2 * s12 * dx * dy + p11 * dy * dy) / det
        return torch.sqrt((s11 * s22 - s12**2) / det) * torch.exp(-0.5 * q)

    return Problem(SpaceTime(Disk((0, 0), 1.0), (0, 1.5)),
                   lambda u, x: u.d("t") + vx * u.d("x") + vy * u.d("y") - diff * u.laplacian(),
                   [Dirichlet(exact, name="rim"), Initial(exact, name="initial")],
                   exact=exact, linear=True)


def robin_disk() -> Problem:
    """−Δu = f on the unit disk with a Robin condition ∂u/∂n + 2u = g on the circle;
    u = eˣ cos 2y + xy. Written (2026-12-03) with the two below, before any run, as a user
    would, to check conditions and nonlinearities the set had not had; each run once."""
    def exact(x):
        X, Y = x.T
        return torch.exp(X) * torch.cos(2 * Y) + X * Y

    def flux(x):  # ∂u/∂n + 2u, n = (x, y) on the unit circle
        X, Y = x.T
        ux = torch.exp(X) * torch.cos(2 * Y) + Y
        uy = -2 * torch.exp(X) * torch.sin(2 * Y) + X
        return X * ux + Y * uy + 2 * exact(x)

    def f(x):
        return 3 * torch.exp(x[:, 0]) * torch.cos(2 * x[:, 1])

    return Problem(Disk((0, 0), 1.0), lambda u, x: -u.laplacian() - f(x),
                   [Robin(a=2.0, b=1.0, value=flux, name="robin")], exact=exact, linear=True)


def bratu_type() -> Problem:
    """−Δu − eᵘ = f on [0, 1]², u = 0 on the edges; u = 2 sin(πx) sin(πy): a Bratu-type
    exponential nonlinearity (written with ``robin_disk``)."""
    def exact(x):
        return 2 * torch.sin(PI * x[:, 0]) * torch.sin(PI * x[:, 1])

    def f(x):
        u = exact(x)
        return 2 * PI**2 * u - torch.exp(u)

    return Problem(Rectangle((0, 0), (1, 1)), lambda u, x: -u.laplacian() - torch.exp(u()) - f(x),
                   [Dirichlet(0.0, name="edges")], exact=exact, linear=False)


def heat_driven() -> Problem:
    """u_t = 0.1 Δu + f on [0, 1]² × [0, 1] with boundary values that change in time;
    u = e⁻ᵗ sin(2x + y) + t x, kept by a source (written with ``robin_disk``)."""
    def exact(x):
        X, Y, T = x.T
        return torch.exp(-T) * torch.sin(2 * X + Y) + T * X

    def f(x):  # u_t − 0.1 Δu = −e⁻ᵗ sin + x + 0.5 e⁻ᵗ sin
        X, Y, T = x.T
        return -0.5 * torch.exp(-T) * torch.sin(2 * X + Y) + X

    return Problem(SpaceTime(Rectangle((0, 0), (1, 1)), (0, 1)),
                   lambda u, x: u.d("t") - 0.1 * u.laplacian() - f(x),
                   [Dirichlet(exact, name="edges"), Initial(exact, name="initial")],
                   exact=exact, linear=True)


def strip_bump() -> Problem:
    """−Δu = f on the strip [0, 5] × [0, 1]; u = sin(πx) sin(πy) + exp(−|x − (2, ½)|²/0.05),
    its value on the edges. Written (2026-12-04) with ``channel_hole`` to check a layout
    round in the problem's own units on elongated domains: the change was measured on
    these two and ``cylinder``, so they test it less independently than the others."""
    def bump(X, Y):
        return torch.exp(-((X - 2) ** 2 + (Y - 0.5) ** 2) / 0.05)

    def exact(x):
        X, Y = x.T
        return torch.sin(PI * X) * torch.sin(PI * Y) + bump(X, Y)

    def f(x):  # −Δ of exact
        X, Y = x.T
        r2 = (X - 2) ** 2 + (Y - 0.5) ** 2
        return (2 * PI**2 * torch.sin(PI * X) * torch.sin(PI * Y)
                - bump(X, Y) * (4 * r2 / 0.05**2 - 4 / 0.05))

    return Problem(Rectangle((0, 0), (5, 1)), lambda u, x: -u.laplacian() - f(x),
                   [Dirichlet(exact, name="edges")], exact=exact, linear=True)


def channel_hole() -> Problem:
    """Δu = 0 in the channel [0, 3] × [0, ½] around a hole of radius 0.08 at (½, ¼);
    u = log |x − (½, ¼)|, its value on the walls and the rim (see ``strip_bump``)."""
    def exact(x):
        return torch.log(torch.hypot(x[:, 0] - 0.5, x[:, 1] - 0.25))

    return Problem(Rectangle((0, 0), (3, 0.5)) - Disk((0.5, 0.25), 0.08),
                   lambda u, x: u.laplacian(), [Dirichlet(exact, name="walls")], exact=exact,
                   linear=True)


def channel_pulse() -> Problem:
    """u_t + u_x = 0.005 Δu in the channel [0, 4] × [0, 1], t in [0, 2]: a Gaussian spot
    exp(−|x − (½, ½)|² / 0.01) carried two units down the channel as it spreads; u = the
    free-space solution on the walls and at t = 0 (a time-dependent problem on a box four
    times as long as wide)."""
    kappa, s0 = 0.005, 0.01

    def exact(x):
        X, Y, T = x.T
        s = s0 + 4 * kappa * T
        return s0 / s * torch.exp(-((X - 0.5 - T) ** 2 + (Y - 0.5) ** 2) / s)

    return Problem(SpaceTime(Rectangle((0, 0), (4, 1)), (0, 2)),
                   lambda u, x: u.d("t") + u.d("x") - kappa * u.laplacian(),
                   [Dirichlet(exact, name="walls"), Initial(exact, name="initial")],
                   exact=exact, linear=True)


def heat_strip() -> Problem:
    """u_t = 0.05 Δu on the plate [0, 4] × [0, 1], t in [0, 1], held at 0 on its edges:
    three modes sin(aπx/4) sin(bπy), (a, b) = (1, 1), (6, 1), (9, 2), each decaying at its
    own rate (a time-dependent problem on a box four times as long as wide, whose state
    is not a few Gaussians)."""
    kappa, modes = 0.05, [(1, 1, 1.0), (6, 1, 0.5), (9, 2, 0.3)]

    def exact(x):
        X, Y, T = x.T
        return sum(c * torch.exp(-kappa * PI**2 * (a**2 / 16 + b**2) * T)
                   * torch.sin(a * PI * X / 4) * torch.sin(b * PI * Y) for a, b, c in modes)

    return Problem(SpaceTime(Rectangle((0, 0), (4, 1)), (0, 1)),
                   lambda u, x: u.d("t") - kappa * u.laplacian(),
                   [Dirichlet(0.0, name="edges"), Initial(exact, name="initial")],
                   exact=exact, linear=True)


def fisher_channel() -> Problem:
    """Fisher–KPP u_t = 0.002 Δu + 5u(1 − u) in the channel [0, 4] × [0, 1], t in [0, 4]: a
    front about 0.05 wide running down the channel at 0.2 (Ablowitz and Zeppetella's exact
    travelling wave, 1/(1 + e^{a x − b t})², a = √(5/0.012), b = 25/6, started at x = 1); u =
    that wave on the walls and at t = 0 (a nonlinear time-dependent problem on a box four
    times as long as wide)."""
    D, r = 0.002, 5.0
    a, b, x0 = math.sqrt(r / (6 * D)), 5 * r / 6, 1.0

    def exact(x):
        X, T = x[:, 0], x[:, 2]
        return 1.0 / (1.0 + torch.exp(a * (X - x0) - b * T)) ** 2

    return Problem(SpaceTime(Rectangle((0, 0), (4, 1)), (0, 4)),
                   lambda u, x: u.d("t") - D * u.laplacian() - r * u() * (1 - u()),
                   [Dirichlet(exact, name="walls"), Initial(exact, name="initial")],
                   exact=exact, linear=False)


PROBLEMS = ["wave_square", "wave_pulse", "heat_disk", "heat_cube", "pulse_line",
            "heat_insulated", "annulus", "helmholtz_144", "peak", "ball", "beam", "quasilinear",
            "layer_1d", "layer_2d", "kdv_soliton", "outflow_layers", "heat_lshape", "rotating_blob",
            "cylinder", "plate", "anisotropic", "elastic_hole", "cube_hole", "allen_cahn_2d",
            "ellipse_pulse", "robin_disk", "bratu_type", "heat_driven", "strip_bump",
            "channel_hole", "channel_pulse", "heat_strip", "fisher_channel"]
