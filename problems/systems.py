"""Time-dependent systems: two species that react and diffuse (Gray–Scott), and a complex
field written as two real ones (the nonlinear Schrödinger equation). Both are periodic in
x, with Fourier spectral references."""

from __future__ import annotations

import math

import numpy as np
import torch

from pinn_gmnm import GMNMError, Initial, Interval, Periodic, Problem, SpaceTime, register
from pinn_gmnm.references import cached
from pinn_gmnm.references.evolution import gray_scott_periodic, schrodinger_split_step


def _periodic(outputs: tuple[str, ...]) -> list[Periodic]:
    """Value and slope periodic in x, for every output."""
    return [Periodic("x", order=order, output=name, name=f"{name}-periodic{'-slope' * order}")
            for name in outputs for order in (0, 1)]


def _positive(problem: str, **values: float) -> None:
    for name, value in values.items():
        if not (math.isfinite(value) and value > 0):
            raise GMNMError(f"{problem}: {name} must be a positive number, got {value!r}")


@register("gray-scott", group="time-dependent")
def gray_scott(du: float = 1e-3, dv: float = 5e-4, feed: float = 0.04, kill: float = 0.06,
               t_end: float = 300.0) -> Problem:
    """Gray–Scott reaction–diffusion: a spot of the autocatalyst v grows and splits in two.

    PDE:        u_t = d_u u_xx − u v² + F (1 − u)
                v_t = d_v v_xx + u v² − (F + k) v      on [−1, 1] × [0, T]   (x, t)
    Initial:    u(x, 0) = 1 − ½ g(x),  v(x, 0) = ¼ g(x),  g(x) = exp(−(x/0.15)²)
    Boundary:   periodic in x (values and slopes of u and v)
    Solution:   no closed form; the reference is a Fourier spectral solution (512 modes,
                ETDRK4 steps of 0.1) on a 257 × 201 grid, within 5e-11 of one with twice
                the modes and half the step (cached on disk).
    Parameters: du, dv, the diffusivities (default 1e-3, 5e-4); feed, kill, the feed rate
                F and removal rate k (default 0.04, 0.06); t_end, the final time T
                (default 300: the spot has split into two fronts moving apart).
    """
    _positive("gray-scott", du=du, dv=dv, feed=feed, kill=kill, t_end=t_end)

    def spot(x):
        return torch.exp(-(x[:, 0] / 0.15) ** 2)

    def residual(f, x):
        u, v = f["u"], f["v"]
        r = u() * v() ** 2
        return [u.d("t") - du * u.d("xx") + r - feed * (1 - u()),
                v.d("t") - dv * v.d("xx") - r + (feed + kill) * v()]

    def uv0(x):
        s = torch.from_numpy(x)
        return torch.stack([1 - 0.5 * spot(s), 0.25 * spot(s)], dim=1).numpy()

    params = {"du": du, "dv": dv, "feed": feed, "kill": kill, "t_end": t_end, "n": 512}
    return Problem(SpaceTime(Interval(-1, 1), (0, t_end)), residual,
                   [*_periodic(("u", "v")),
                    Initial(lambda x: 1 - 0.5 * spot(x), output="u", name="u-initial"),
                    Initial(lambda x: 0.25 * spot(x), output="v", name="v-initial")],
                   reference=lambda: cached("gray-scott", params, lambda: gray_scott_periodic(
                       du, dv, feed, kill, uv0, t_end, dt=t_end / 3000).stating(
                       "within 5e-11 of the solution with twice the modes and half the step")),
                   outputs=("u", "v"), linear=False)


@register("schrodinger", group="time-dependent")
def schrodinger(t_end: float = math.pi / 2) -> Problem:
    """Nonlinear Schrödinger equation: a two-soliton breathes (Raissi et al. 2019).

    PDE:        i h_t + ½ h_xx + |h|² h = 0   on [−5, 5] × [0, T]   (x, t),
                as a real system for h = u + i v:
                u_t + ½ v_xx + (u² + v²) v = 0
                v_t − ½ u_xx − (u² + v²) u = 0
    Initial:    h(x, 0) = 2 sech x   (u = 2 sech x, v = 0)
    Boundary:   periodic in x (values and slopes of u and v)
    Solution:   no closed form here (the initial data is the N = 2 soliton: |h| peaks at 4
                at t = π/4 and returns to 2 sech x at t = π/2); the reference is the
                split-step Fourier method (512 modes, Strang steps of π/20000) on a
                257 × 201 grid, within 2e-6 (relative L2) of fourth-order exponential time
                differencing (cached on disk).
    Parameters: t_end, the final time T (default π/2).
    """
    _positive("schrodinger", t_end=t_end)

    def residual(f, x):
        u, v = f["u"], f["v"]
        m = u() ** 2 + v() ** 2
        return [u.d("t") + 0.5 * v.d("xx") + m * v(),
                v.d("t") - 0.5 * u.d("xx") - m * u()]

    def h0(x):
        return 2 / np.cosh(x[:, 0])

    steps = 10_000
    return Problem(SpaceTime(Interval(-5, 5), (0, t_end)), residual,
                   [*_periodic(("u", "v")),
                    Initial(lambda x: 2 / torch.cosh(x[:, 0]), output="u", name="u-initial"),
                    Initial(0.0, output="v", name="v-initial")],
                   reference=lambda: cached("schrodinger", {"t_end": t_end, "n": 512,
                                                            "steps": steps},
                                            lambda: schrodinger_split_step(
                                                h0, t_end, dt=t_end / steps).stating(
                                                "within 2e-6 of fourth-order exponential time "
                                                "differencing")),
                   outputs=("u", "v"), linear=False)
