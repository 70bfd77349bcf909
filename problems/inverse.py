"""Inverse problems: a coefficient of the PDE recovered from noisy observations of u."""

from __future__ import annotations

import math

import torch

from pinn_gmnm import Data, Dirichlet, GMNMError, Problem, Rectangle, Unknown, register
from pinn_gmnm.sampling import Sobol

PI = math.pi


@register("poisson-inverse", group="inverse")
def poisson_inverse(a: float = 2.0, noise: float = 0.01, observations: int = 200,
                    seed: int = 0) -> Problem:
    """Recover the diffusivity a of a Poisson problem from noisy measurements of u.

    PDE:        −a Δu = f,  f = 2a*π² sin(πx) sin(πy)   on [−1, 1]²,  a unknown
    Boundary:   u = 0 on ∂Ω
    Data:       u at ``observations`` Sobol' points plus Gaussian noise of standard
                deviation ``noise`` (fixed by ``seed``)
    Solution:   u = sin(πx) sin(πy) and a = a* (reported as unknown_a and its error)
    Parameters: a, the true coefficient a* (default 2); noise; observations; seed.
    """
    if noise < 0:
        raise GMNMError(f"poisson-inverse: noise must be >= 0, got {noise!r}")

    def exact(x):
        return torch.sin(PI * x[:, 0]) * torch.sin(PI * x[:, 1])

    points = -1 + 2 * torch.from_numpy(Sobol().unit(observations, 2, seed))
    g = torch.Generator().manual_seed(seed)
    values = exact(points) + noise * torch.randn(observations, generator=g, dtype=torch.float64)
    coefficient = Unknown("a", 1.0, true=a, positive=True)

    def residual(u, x):
        return -coefficient * u.laplacian() - 2 * a * PI**2 * exact(x)

    return Problem(Rectangle((-1, -1), (1, 1)), residual,
                   [Dirichlet(0.0, name="boundary"),
                    Data(points=points, values=values, name="data")],
                   exact=exact, unknowns=[coefficient], linear=True)
