"""Viscous Burgers' equation, the classic PINN benchmark with a steep front at x = 0."""

from __future__ import annotations

import math

import torch

from pinn_gmnm import Dirichlet, Initial, Interval, Problem, SpaceTime, register
from pinn_gmnm.references.burgers import cole_hopf_points


@register("burgers", group="time-dependent")
def burgers(nu: float = 0.01 / math.pi) -> Problem:
    """Viscous Burgers' equation: a sine wave steepens into a front at x = 0.

    PDE:        u_t + u u_x = ν u_xx   on [−1, 1] × [0, 1]   (x, t)
    Initial:    u(x, 0) = −sin(πx)
    Boundary:   u(−1, t) = u(1, t) = 0
    Solution:   the Cole–Hopf transform's integral formula, evaluated by quadrature at
                every point asked for (accurate to ~1e-12; no grid, no interpolation).
    Parameters: nu, the viscosity ν (default 0.01/π: |u_x| peaks at 152 near t = 0.51).
    """
    if not nu > 0:
        from pinn_gmnm import GMNMError

        raise GMNMError(f"burgers: nu must be positive, got {nu!r}")

    def residual(u, x):
        return u.d("t") + u() * u.d("x") - nu * u.d("xx")

    return Problem(
        SpaceTime(Interval(-1, 1), (0, 1)),
        residual,
        [Dirichlet(0.0, name="boundary"),
         Initial(lambda x: -torch.sin(math.pi * x[:, 0]), name="initial")],
        exact=lambda x: cole_hopf_points(x, nu),
        linear=False,
    )
