"""Poisson problems with product-of-sines solutions: the paper's 2D problem and its
1D and 3D analogues."""

from __future__ import annotations

import math

import torch

from pinn_gmnm import Box, Dirichlet, Interval, Problem, Rectangle, register


def _sine_product(x: torch.Tensor, k: float) -> torch.Tensor:
    """Π_a sin(kπ x_a), shape (n,)."""
    return torch.sin(k * math.pi * x).prod(dim=1)


def _sine_poisson(geometry, dim: int, k: float) -> Problem:
    """−Δu = d k²π² Π sin(kπx_a) with u = 0 on the boundary of [−1, 1]^d."""

    def exact(x):
        return _sine_product(x, k)

    def residual(u, x):
        return -u.laplacian() - dim * (k * math.pi) ** 2 * exact(x)

    return Problem(geometry, residual, [Dirichlet(0.0)], exact=exact, linear=True)


@register("poisson", group="elliptic")
def poisson(k: float = 1.0) -> Problem:
    """2D Poisson on [−1, 1]² with u = sin(πx) sin(πy), the GMNM paper's problem.

    PDE:        −Δu = 2k²π² sin(kπx) sin(kπy)   on Ω = [−1, 1]²
    Boundary:   u = 0 on ∂Ω  (k a whole number)
    Solution:   u(x, y) = sin(kπx) sin(kπy)
    Parameters: k, the wave number (default 1, the paper's setting).
    """
    return _sine_poisson(Rectangle((-1, -1), (1, 1)), 2, k)


@register("poisson-1d", group="elliptic")
def poisson_1d(k: float = 1.0) -> Problem:
    """1D Poisson on [−1, 1] with u = sin(kπx).

    PDE:        −u'' = k²π² sin(kπx)   on Ω = [−1, 1]
    Boundary:   u(−1) = u(1) = 0  (k a whole number)
    Solution:   u(x) = sin(kπx)
    """
    return _sine_poisson(Interval(-1, 1), 1, k)


@register("poisson-3d", group="elliptic")
def poisson_3d(k: float = 1.0) -> Problem:
    """3D Poisson on [−1, 1]³ with u = sin(πx) sin(πy) sin(πz).

    PDE:        −Δu = 3k²π² sin(kπx) sin(kπy) sin(kπz)   on Ω = [−1, 1]³
    Boundary:   u = 0 on ∂Ω  (k a whole number)
    Solution:   u = sin(kπx) sin(kπy) sin(kπz)
    """
    return _sine_poisson(Box((-1, -1, -1), (1, 1, 1)), 3, k)
