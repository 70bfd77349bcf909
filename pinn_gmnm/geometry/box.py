"""Axis-aligned boxes: :class:`Interval` (1D), :class:`Rectangle` (2D), :class:`Box` (any d)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from .._types import Mask, Points
from ..errors import GMNMError
from ..sampling import Grid, Sampler
from .base import DEFAULT_TOL, Corner, Geometry


class Box(Geometry):
    """The box [lo_1, hi_1] × … × [lo_d, hi_d].

    Boundary points are spread over the faces in proportion to their areas; in 1D the
    boundary is the two end points, which share the boundary points equally.
    """

    def __init__(self, lo: Sequence[float], hi: Sequence[float]) -> None:
        lo, hi = tuple(float(v) for v in lo), tuple(float(v) for v in hi)
        if len(lo) != len(hi) or not lo:
            raise GMNMError(f"box corners must have the same, non-zero length: {lo} and {hi}")
        if any(h <= l for l, h in zip(lo, hi)):
            raise GMNMError(f"box needs lo < hi on every axis, got lo={lo}, hi={hi}")
        self.lo, self.hi, self.dim = lo, hi, len(lo)
        self.tol = DEFAULT_TOL * max(h - l for l, h in zip(lo, hi))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self.lo)}, {list(self.hi)})"

    @property
    def bbox(self):
        return self.lo, self.hi

    @property
    def is_box(self) -> bool:
        return True

    def corners(self) -> list[Corner]:
        if self.dim != 2:
            return []
        (x0, y0), (x1, y1) = self.lo, self.hi
        w, h = x1 - x0, y1 - y0
        return [Corner((x0, y0), ((w, 0.0), (0.0, h)), math.pi / 2),
                Corner((x1, y0), ((0.0, h), (-w, 0.0)), math.pi / 2),
                Corner((x1, y1), ((-w, 0.0), (0.0, -h)), math.pi / 2),
                Corner((x0, y1), ((0.0, -h), (w, 0.0)), math.pi / 2)]

    @property
    def _lo(self) -> torch.Tensor:
        return torch.tensor(self.lo, dtype=torch.float64)

    @property
    def _hi(self) -> torch.Tensor:
        return torch.tensor(self.hi, dtype=torch.float64)

    def inside(self, x: Points) -> Mask:
        lo, hi = self._lo.to(x), self._hi.to(x)
        return ((x >= lo - self.tol) & (x <= hi + self.tol)).all(dim=1)

    def _face_distance(self, x: Points) -> torch.Tensor:
        """Distance to each face, shape (n, 2d): the low faces, then the high faces."""
        lo, hi = self._lo.to(x), self._hi.to(x)
        return torch.cat([(x - lo).abs(), (x - hi).abs()], dim=1)

    def on_boundary(self, x: Points) -> Mask:
        return self.inside(x) & (self._face_distance(x).amin(dim=1) <= self.tol)

    def normal(self, x: Points) -> Points:
        face = self._face_distance(x).argmin(dim=1)
        axis, high = face % self.dim, face >= self.dim
        n = torch.zeros_like(x)
        n[torch.arange(len(x)), axis] = torch.where(high, 1.0, -1.0).to(x)
        return n

    @property
    def volume(self) -> float:
        return float(np.prod(np.subtract(self.hi, self.lo)))

    def _face_areas(self) -> np.ndarray:
        sides = np.subtract(self.hi, self.lo)
        areas = np.array([np.prod(np.delete(sides, a)) for a in range(self.dim)])
        return np.concatenate([areas, areas])  # low faces then high faces

    @property
    def boundary_measure(self) -> float:
        return float(self._face_areas().sum())

    def sample_interior(self, n: int, sampler: Sampler, seed: int) -> Points:
        return self.sample_bbox(n, sampler, seed)

    def sample_boundary(self, n: int, sampler: Sampler, seed: int) -> Points:
        lo, hi = self._lo, self._hi
        if self.dim == 1:
            ends = torch.stack([lo, hi])
            return ends[torch.arange(n) % 2]
        if isinstance(sampler, Grid):
            return self._face_grids(n)
        # The first unit coordinate picks a face (in proportion to face area, so the
        # low-discrepancy structure is kept), the other d - 1 place the point on it.
        u = torch.from_numpy(sampler.unit(n, self.dim, seed))
        cum = np.cumsum(self._face_areas())
        cum /= cum[-1]
        face = torch.from_numpy(np.searchsorted(cum, u[:, 0].numpy(), side="right")).clamp(
            max=2 * self.dim - 1
        )
        x = torch.empty(n, self.dim, dtype=torch.float64)
        for f in range(2 * self.dim):
            rows = face == f
            if not rows.any():
                continue
            axis = f % self.dim
            others = [a for a in range(self.dim) if a != axis]
            pos = u[rows][:, 1:]
            x_f = torch.empty(int(rows.sum()), self.dim, dtype=torch.float64)
            x_f[:, others] = lo[others] + (hi[others] - lo[others]) * pos
            x_f[:, axis] = hi[axis] if f >= self.dim else lo[axis]
            x[rows] = x_f
        return x


    def _face_grids(self, n: int) -> Points:
        """A regular grid on every face, the faces sharing about n points by area."""
        areas = self._face_areas()
        lo, hi = self._lo, self._hi
        parts = []
        for f, area in enumerate(areas):
            axis = f % self.dim
            others = [a for a in range(self.dim) if a != axis]
            pos = torch.from_numpy(Grid().unit(max(1, round(n * area / areas.sum())), self.dim - 1, 0))
            x_f = torch.empty(len(pos), self.dim, dtype=torch.float64)
            x_f[:, others] = lo[others] + (hi[others] - lo[others]) * pos
            x_f[:, axis] = hi[axis] if f >= self.dim else lo[axis]
            parts.append(x_f)
        return torch.cat(parts)


class Interval(Box):
    """The interval [a, b]."""

    def __init__(self, a: float, b: float) -> None:
        super().__init__((a,), (b,))

    def __repr__(self) -> str:
        return f"Interval({self.lo[0]}, {self.hi[0]})"


class Rectangle(Box):
    """The rectangle [x0, x1] × [y0, y1], given by its lower-left and upper-right corners."""

    def __init__(self, lo: Sequence[float], hi: Sequence[float]) -> None:
        if len(lo) != 2 or len(hi) != 2:
            raise GMNMError(f"a rectangle needs 2-D corners, got {lo} and {hi}")
        super().__init__(lo, hi)

    def __repr__(self) -> str:
        return f"Rectangle({list(self.lo)}, {list(self.hi)})"
