"""Space × time: a spatial shape and a time interval, for time-dependent problems.

Points have the spatial coordinates first and time last, so a problem on
``SpaceTime(Interval(-1, 1), (0, 1))`` has variables ``("x", "t")``. The *boundary*
that boundary conditions see is the lateral one, ∂Ω × [t0, t1]; the initial slice
Ω × {t0} is sampled separately by initial conditions (:meth:`SpaceTime.sample_initial`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .._types import Mask, Points
from ..errors import GMNMError
from ..sampling import Grid, Sampler
from .base import DEFAULT_TOL, Geometry


class SpaceTime(Geometry):
    """The cylinder Ω × [t0, t1] over a spatial shape Ω.

    ``inside``: x in Ω and t in [t0, t1]. ``on_boundary`` and ``normal`` describe the
    lateral boundary ∂Ω × [t0, t1] (normals have a zero time component); the initial
    and final slices are not part of it.
    """

    time_dependent = True

    def __init__(self, space: Geometry, time: Sequence[float]) -> None:
        if not isinstance(space, Geometry):
            raise GMNMError(f"space must be a Geometry, got {type(space).__name__}")
        if isinstance(space, SpaceTime):
            raise GMNMError("space is already a space-time domain")
        if len(time) != 2:
            raise GMNMError(f"time must be an interval (t0, t1), got {time!r}")
        t0, t1 = float(time[0]), float(time[1])
        if not t1 > t0:
            raise GMNMError(f"time interval needs t0 < t1, got ({t0}, {t1})")
        self.space, self.t0, self.t1 = space, t0, t1
        self.dim = space.dim + 1
        self.tol = DEFAULT_TOL * (t1 - t0)

    def __repr__(self) -> str:
        return f"SpaceTime({self.space!r}, ({self.t0}, {self.t1}))"

    @property
    def bbox(self):
        lo, hi = self.space.bbox
        return tuple(lo) + (self.t0,), tuple(hi) + (self.t1,)

    @property
    def is_box(self) -> bool:
        return self.space.is_box

    def _in_time(self, t: torch.Tensor) -> Mask:
        return (t >= self.t0 - self.tol) & (t <= self.t1 + self.tol)

    def inside(self, x: Points) -> Mask:
        return self.space.inside(x[:, :-1]) & self._in_time(x[:, -1])

    def on_boundary(self, x: Points) -> Mask:
        return self.space.on_boundary(x[:, :-1]) & self._in_time(x[:, -1])

    def on_initial(self, x: Points) -> Mask:
        """True at points of the initial slice Ω × {t0}."""
        return self.space.inside(x[:, :-1]) & ((x[:, -1] - self.t0).abs() <= self.tol)

    def interior(self, x: Points) -> Mask:
        """Inside, off the lateral boundary and off the initial slice."""
        return self.inside(x) & ~self.on_boundary(x) & (x[:, -1] > self.t0 + self.tol)

    def normal(self, x: Points) -> Points:
        n = self.space.normal(x[:, :-1])
        return torch.cat([n, torch.zeros_like(x[:, -1:])], dim=1)

    @property
    def volume(self) -> float:
        return self.space.volume * (self.t1 - self.t0)

    @property
    def boundary_measure(self) -> float:
        return self.space.boundary_measure * (self.t1 - self.t0)

    def _times(self, n: int, sampler: Sampler, seed: int) -> torch.Tensor:
        u = torch.from_numpy(sampler.unit(n, 1, seed))[:, 0]
        return self.t0 + (self.t1 - self.t0) * u

    def _with_times(self, xs: Points, sampler: Sampler, seed: int) -> Points:
        """Spatial points paired with times, in a random order: the first coordinate of
        two scrambled Sobol' streams is correlated whatever their seeds (0.76 between x
        and t on a square given as a polygon), which left most of space × time without
        points and a heat problem on a polygon solved to errors of order one."""
        times = self._times(len(xs), sampler, seed)
        order = torch.randperm(len(xs), generator=torch.Generator().manual_seed(seed))
        return torch.cat([xs, times[order][:, None]], dim=1)

    def sample_interior(self, n: int, sampler: Sampler, seed: int) -> Points:
        if self.space.is_box:
            return self.sample_bbox(n, sampler, seed)
        if isinstance(sampler, Grid):
            return self._rejection_interior(n, sampler, seed)
        # Spatial points from the shape's own (even) sampling, paired with times drawn
        # from an independent stream of the same sampler.
        return self._with_times(self.space.sample_interior(n, sampler, seed), sampler, seed + 104729)

    def sample_boundary(self, n: int, sampler: Sampler, seed: int) -> Points:
        xs = self.space.sample_boundary(n, sampler, seed)
        return self._with_times(xs, sampler, seed + 104729)

    def sample_initial(self, n: int, sampler: Sampler, seed: int) -> Points:
        """``n`` points of the initial slice Ω × {t0}."""
        xs = self.space.sample_interior(n, sampler, seed)
        return torch.cat([xs, torch.full((len(xs), 1), self.t0, dtype=xs.dtype)], dim=1)
