"""Balls: :class:`Disk` in 2D, :class:`Sphere` in 3D and :class:`Ball` in any dimension."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .._types import Mask, Points
from ..errors import GMNMError
from ..sampling import Sampler
from .base import DEFAULT_TOL, Geometry


class Ball(Geometry):
    """The closed ball ‖x − c‖ ≤ r in R^d."""

    def __init__(self, center: Sequence[float], radius: float) -> None:
        self.center = tuple(float(c) for c in center)
        self.radius = float(radius)
        self.dim = len(self.center)
        if self.dim < 1:
            raise GMNMError("a ball needs a centre with at least one coordinate")
        if not self.radius > 0:
            raise GMNMError(f"radius must be positive, got {radius!r}")
        self.tol = DEFAULT_TOL * self.radius

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self.center)}, {self.radius})"

    @property
    def bbox(self):
        return (tuple(c - self.radius for c in self.center),
                tuple(c + self.radius for c in self.center))

    def _offset(self, x: Points) -> Points:
        return x - torch.tensor(self.center, dtype=x.dtype, device=x.device)

    def inside(self, x: Points) -> Mask:
        return self._offset(x).norm(dim=1) <= self.radius + self.tol

    def on_boundary(self, x: Points) -> Mask:
        return (self._offset(x).norm(dim=1) - self.radius).abs() <= self.tol

    def normal(self, x: Points) -> Points:
        z = self._offset(x)
        return z / z.norm(dim=1, keepdim=True).clamp_min(1e-300)

    @property
    def volume(self) -> float:
        d = self.dim
        return math.pi ** (d / 2) / math.gamma(d / 2 + 1) * self.radius**d

    @property
    def boundary_measure(self) -> float:
        return self.dim * self.volume / self.radius

    def _directions(self, n: int, sampler: Sampler, seed: int) -> Points:
        """Unit vectors spread evenly over the sphere, from n unit-cube points."""
        if self.dim == 2:
            theta = 2 * math.pi * torch.from_numpy(sampler.unit(n, 1, seed))[:, 0]
            return torch.stack([theta.cos(), theta.sin()], dim=1)
        from scipy.special import ndtri  # imported here: slow to import, rarely needed

        u = sampler.unit(n, self.dim, seed).clip(1e-12, 1 - 1e-12)
        g = torch.from_numpy(ndtri(u))  # Gaussian vectors have uniformly spread directions
        return g / g.norm(dim=1, keepdim=True)

    def sample_boundary(self, n: int, sampler: Sampler, seed: int) -> Points:
        if self.dim == 1:
            ends = torch.tensor([[self.center[0] - self.radius], [self.center[0] + self.radius]],
                                dtype=torch.float64)
            return ends[torch.arange(n) % 2]
        c = torch.tensor(self.center, dtype=torch.float64)
        return c + self.radius * self._directions(n, sampler, seed)

    def sample_interior(self, n: int, sampler: Sampler, seed: int) -> Points:
        if self.dim == 2:  # equal-area polar map keeps the sampler's even spread
            u = torch.from_numpy(sampler.unit(n, 2, seed))
            r = self.radius * u[:, 0].sqrt() * (1 - 1e-12)
            theta = 2 * math.pi * u[:, 1]
            c = torch.tensor(self.center, dtype=torch.float64)
            return c + torch.stack([r * theta.cos(), r * theta.sin()], dim=1)
        return self._rejection_interior(n, sampler, seed)


class Disk(Ball):
    """The closed disk of radius r centred at (cx, cy)."""

    def __init__(self, center: Sequence[float], radius: float) -> None:
        if len(center) != 2:
            raise GMNMError(f"a disk needs a 2-D centre, got {center}")
        super().__init__(center, radius)


class Sphere(Ball):
    """The solid sphere (3-D ball) of radius r centred at (cx, cy, cz); its boundary is
    the sphere surface."""

    def __init__(self, center: Sequence[float], radius: float) -> None:
        if len(center) != 3:
            raise GMNMError(f"a sphere needs a 3-D centre, got {center}")
        super().__init__(center, radius)
