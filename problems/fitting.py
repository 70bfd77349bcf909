"""Function-fitting targets on [−1, 1]^d: the KAN paper's toy functions (Liu et al.,
2024, §3.1) and a few that stress smoothness, scales and sharp fronts.

Each is fitted from samples by supervised training (see :mod:`pinn_gmnm.fitting`):
`gmnm-pde fit NAME` compares the models on it.
"""

from __future__ import annotations

import math

import torch

from pinn_gmnm import register_target

PI = math.pi


@register_target("bessel", dim=1)
def bessel(x):
    """J0(20x), the Bessel function of the first kind (KAN paper toy, 1D)."""
    return torch.special.bessel_j0(20 * x[:, 0])


@register_target("exp-sin", dim=2)
def exp_sin(x):
    """exp(sin(πx) + y²) (KAN paper toy, 2D)."""
    return torch.exp(torch.sin(PI * x[:, 0]) + x[:, 1] ** 2)


@register_target("xy", dim=2)
def xy(x):
    """x·y (KAN paper toy, 2D)."""
    return x[:, 0] * x[:, 1]


@register_target("exp-sin-4d", dim=4)
def exp_sin_4d(x):
    """exp(½(sin(π(x1² + x2²)) + sin(π(x3² + x4²)))) (KAN paper toy, 4D)."""
    a = torch.sin(PI * (x[:, 0] ** 2 + x[:, 1] ** 2))
    b = torch.sin(PI * (x[:, 2] ** 2 + x[:, 3] ** 2))
    return torch.exp(0.5 * (a + b))


@register_target("sines", dim=2)
def sines(x):
    """sin(πx) sin(πy), the Poisson problem's solution as a fitting target (2D)."""
    return torch.sin(PI * x[:, 0]) * torch.sin(PI * x[:, 1])


@register_target("multiscale", dim=2)
def multiscale(x):
    """sin(2πx) sin(2πy) + 0.1 sin(20πx) sin(20πy): two scales ten times apart (2D)."""
    X, Y = x[:, 0], x[:, 1]
    return torch.sin(2 * PI * X) * torch.sin(2 * PI * Y) + 0.1 * torch.sin(20 * PI * X) * torch.sin(20 * PI * Y)


@register_target("front", dim=2)
def front(x):
    """tanh(20(x + y)): a sharp front along the diagonal (2D)."""
    return torch.tanh(20 * (x[:, 0] + x[:, 1]))
