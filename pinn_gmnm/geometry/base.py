"""The geometry interface and constructive solid geometry (union, difference, intersection).

Every shape answers ``inside``, ``on_boundary`` and ``normal`` for points of shape (n, d),
and samples its interior and boundary from a :class:`~pinn_gmnm.sampling.Sampler`.
Shapes combine with ``|`` (union), ``-`` (difference) and ``&`` (intersection).
All coordinates are float64 tensors; the trainer casts them to the run's dtype.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from torch import Tensor

from .._types import Mask, Points
from ..errors import GMNMError
from ..sampling import Sampler

DEFAULT_TOL = 1e-7


def near(a: Tensor, b: float | Tensor, tol: float = 1e-6) -> Mask:
    """``|a - b| <= tol``: the way to select a boundary piece such as ``near(x[:, 0], -1)``."""
    return (a - b).abs() <= tol


def as_points(x: Tensor | np.ndarray, dim: int) -> Points:
    """Coordinates as a float64 tensor of shape (n, dim), with a clear error otherwise."""
    x = torch.as_tensor(x, dtype=torch.float64)
    if x.ndim == 1 and dim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] != dim:
        raise GMNMError(f"expected points of shape (n, {dim}), got {tuple(x.shape)}")
    return x


@dataclass(frozen=True)
class Corner:
    """A vertex of a 2-D shape's boundary: its ``point``, the vectors ``edges`` from it to
    the next vertices along the boundary either way, and the ``angle`` the shape fills
    there (π/2 at a rectangle's corner, 3π/2 at an L-shape's re-entrant one)."""

    point: tuple[float, float]
    edges: tuple[tuple[float, float], tuple[float, float]]
    angle: float

    @property
    def reentrant(self) -> bool:
        """Whether the shape fills more than a half-plane here: the solution of an
        elliptic problem is singular at such a corner (u ~ r^(π/angle))."""
        return self.angle > math.pi * (1 + 1e-9)


class Geometry(ABC):
    """A closed region of R^d.

    Subclasses give ``dim``, ``bbox``, ``inside``, ``on_boundary``, ``normal``,
    ``sample_interior`` and ``sample_boundary``; ``volume`` and ``boundary_measure`` are
    used to share boundary points between pieces in proportion to their size.
    """

    dim: int
    time_dependent: bool = False
    """True for space × time domains (:class:`~pinn_gmnm.geometry.SpaceTime`): the last
    coordinate is time."""

    @property
    @abstractmethod
    def bbox(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Lower and upper corners of an axis-aligned box that contains the shape."""

    @abstractmethod
    def inside(self, x: Points) -> Mask:
        """True for points in the closed region (boundary included)."""

    @abstractmethod
    def on_boundary(self, x: Points) -> Mask:
        """True for points on the boundary (within a small tolerance)."""

    @abstractmethod
    def normal(self, x: Points) -> Points:
        """Outward unit normals at boundary points, shape (n, d)."""

    @abstractmethod
    def sample_interior(self, n: int, sampler: Sampler, seed: int) -> Points:
        """``n`` points inside the region, shape (n, d)."""

    @abstractmethod
    def sample_boundary(self, n: int, sampler: Sampler, seed: int) -> Points:
        """``n`` points on the boundary, spread in proportion to its measure."""

    @property
    @abstractmethod
    def volume(self) -> float:
        """Length, area or volume of the region."""

    @property
    @abstractmethod
    def boundary_measure(self) -> float:
        """Measure of the boundary (perimeter in 2D, area in 3D, count of ends in 1D)."""

    # -- helpers shared by all shapes -------------------------------------------------
    def interior(self, x: Points) -> Mask:
        """Strictly inside: in the region and not on its boundary."""
        return self.inside(x) & ~self.on_boundary(x)

    @property
    def diameter(self) -> float:
        lo, hi = self.bbox
        return math.dist(lo, hi)

    def corners(self) -> list[Corner]:
        """The vertices of a 2-D shape's boundary that it knows (polygons, rectangles and
        any union, difference or intersection of them); none for curved and
        higher-dimensional shapes."""
        return []

    @property
    def is_box(self) -> bool:
        """True when the shape is exactly its bounding box (metrics then use a grid)."""
        return False

    def __or__(self, other: Geometry) -> Geometry:
        return Union(self, other)

    def __sub__(self, other: Geometry) -> Geometry:
        return Difference(self, other)

    def __and__(self, other: Geometry) -> Geometry:
        return Intersection(self, other)

    def sample_bbox(self, n: int, sampler: Sampler, seed: int) -> Points:
        """``n`` points of the bounding box (not only of the shape), shape (n, d) in
        float64: for rejection sampling, and for probing what covers a face."""
        lo, hi = (torch.tensor(c, dtype=torch.float64) for c in self.bbox)
        u = torch.from_numpy(sampler.unit(n, self.dim, seed))
        return lo + (hi - lo) * u

    def _rejection_interior(self, n: int, sampler: Sampler, seed: int) -> Points:
        """Sample the bounding box and keep points inside, oversampling until n remain."""
        fraction = max(self.volume / _box_volume(self.bbox), 1e-3)
        m = math.ceil(1.3 * n / fraction) + 16
        for _ in range(8):
            x = self.sample_bbox(m, sampler, seed)
            x = x[self.interior(x)]
            if len(x) >= n:
                return x[:n]
            m *= 2
        raise GMNMError(
            f"could not place {n} interior points in {self!r}: the region looks empty"
        )


def _box_volume(bbox: tuple[tuple[float, ...], tuple[float, ...]]) -> float:
    return float(np.prod(np.subtract(bbox[1], bbox[0])))


def _shared(p: Geometry, q: Geometry, x: Points, *, facing: bool) -> Mask:
    """Which of ``p``'s boundary points ``x`` lie on an edge ``q``'s boundary runs along:
    on q's boundary with the outward normals opposite (``facing``: q touches p from
    outside) or the same (q lines p from inside). Where the boundaries only cross (a
    corner of the combined shape) the normals are neither."""
    if len(x) == 0:
        return torch.zeros(0, dtype=torch.bool)
    on = q.on_boundary(x)
    cos = (p.normal(x) * q.normal(x)).sum(dim=1)
    return on & ((cos < -1 + 1e-6) if facing else (cos > 1 - 1e-6))


def _crossing(a: np.ndarray, v: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray | None:
    """Where the segments a + s v and b + t w (s, t in [0, 1]) cross at one point, if
    they do (None when parallel)."""
    den = v[0] * w[1] - v[1] * w[0]
    if abs(den) <= 1e-12 * float(np.linalg.norm(v) * np.linalg.norm(w)):
        return None
    d = b - a
    s = (d[0] * w[1] - d[1] * w[0]) / den
    t = (d[0] * v[1] - d[1] * v[0]) / den
    if -1e-12 <= s <= 1 + 1e-12 and -1e-12 <= t <= 1 + 1e-12:
        return a + s * v
    return None


class _CSG(Geometry):
    """Shared machinery of the set operations: boundary samples come from the pieces'
    boundaries, each kept where it lies on the combined boundary, so every piece gets
    points in proportion to the length of it that remains."""

    _op = "?"

    def __init__(self, a: Geometry, b: Geometry) -> None:
        if a.dim != b.dim:
            raise GMNMError(f"cannot combine a {a.dim}-D shape with a {b.dim}-D shape")
        self.a, self.b, self.dim = a, b, a.dim

    def __repr__(self) -> str:
        return f"({self.a!r} {self._op} {self.b!r})"

    @abstractmethod
    def _from_a(self, x: Points) -> Mask:
        """Points of a's boundary that are on this shape's boundary."""

    @abstractmethod
    def _from_b(self, x: Points) -> Mask:
        """Points of b's boundary that are on this shape's boundary."""

    _flip_b = False  # difference: b's boundary faces the other way

    def corners(self) -> list[Corner]:
        """The pieces' corners and the points where their edges cross, those where this
        shape's boundary turns: each with the two edges along which it leaves (an edge
        has the shape on one side only: a shared edge inside a union is none) and the
        angle the shape fills there (measured on a small circle around it)."""
        if self.dim != 2:
            return []
        pieces = [c for g in (self.a, self.b) for c in g.corners()]
        if not pieces:
            return []
        scale = self.diameter
        tol = 1e-9 * scale
        # every edge as a segment (start, vector), each once
        segments: list[tuple[np.ndarray, np.ndarray]] = []
        for c in pieces:
            for e in c.edges:
                a, v = np.asarray(c.point, dtype=np.float64), np.asarray(e, dtype=np.float64)
                if not any(np.allclose(a, b + w, atol=tol) and np.allclose(-v, w, atol=tol)
                           or np.allclose(a, b, atol=tol) and np.allclose(v, w, atol=tol)
                           for b, w in segments):
                    segments.append((a, v))
        points = [np.asarray(c.point, dtype=np.float64) for c in pieces]
        for i, (a, v) in enumerate(segments):
            for b, w in segments[i + 1:]:
                cross = _crossing(a, v, b, w)
                if cross is not None:
                    points.append(cross)
        unique: list[np.ndarray] = []
        for q in points:
            if not any(np.allclose(q, u, atol=tol) for u in unique):
                unique.append(q)
        out = []
        for q in unique:
            others = [float(np.linalg.norm(u - q)) for u in unique if u is not q]
            nearest = min(others, default=scale)
            rho = 1e-4 * nearest
            rays = []
            for a, v in segments:  # the edges through q, each way, that stay on the boundary
                length = float(np.linalg.norm(v))
                s = float(np.dot(q - a, v)) / length**2
                if float(np.linalg.norm(a + s * v - q)) > tol or not -tol <= s * length <= length + tol:
                    continue
                for direction, room in ((v / length, (1 - s) * length), (-v / length, s * length)):
                    if room <= tol or any(np.allclose(direction, r, atol=1e-9) for r, _ in rays):
                        continue
                    normal = np.array([-direction[1], direction[0]])
                    sides = torch.tensor(np.array([q + rho * (direction + 0.5 * normal),
                                                   q + rho * (direction - 0.5 * normal)]))
                    inside = self.inside(sides)
                    if bool(inside[0]) != bool(inside[1]):  # the shape on one side only
                        rays.append((direction, min(room, nearest)))
            if len(rays) != 2:
                continue
            turn = (torch.arange(720, dtype=torch.float64) + 0.5) * (math.pi / 360)
            circle = torch.tensor(q) + rho * torch.stack([turn.cos(), turn.sin()], dim=1)
            angle = 2 * math.pi * float(self.inside(circle).double().mean())
            edges = tuple(tuple((d * n).tolist()) for d, n in rays)
            out.append(Corner(tuple(q.tolist()), edges, angle))  # type: ignore[arg-type]
        return out

    def on_boundary(self, x: Points) -> Mask:
        return (self.a.on_boundary(x) & self._from_a(x)) | (self.b.on_boundary(x) & self._from_b(x))

    def normal(self, x: Points) -> Points:
        use_b = self.b.on_boundary(x) & self._from_b(x) & ~(self.a.on_boundary(x) & self._from_a(x))
        nb = self.b.normal(x)
        if self._flip_b:
            nb = -nb
        return torch.where(use_b[:, None], nb, self.a.normal(x))

    def sample_interior(self, n: int, sampler: Sampler, seed: int) -> Points:
        return self._rejection_interior(n, sampler, seed)

    def _pieces(self, n: int, sampler: Sampler, seed: int) -> Points:
        la, lb = self.a.boundary_measure, self.b.boundary_measure
        na = max(1, round(n * la / (la + lb)))
        nb = max(1, n - na)
        xa = self.a.sample_boundary(na, sampler, seed)
        xb = self.b.sample_boundary(nb, sampler, seed + 7919)
        return torch.cat([xa[self._from_a(xa)], xb[self._from_b(xb)]])

    def sample_boundary(self, n: int, sampler: Sampler, seed: int) -> Points:
        fraction = max(self.boundary_measure / (self.a.boundary_measure + self.b.boundary_measure), 1e-3)
        m = math.ceil(1.3 * n / fraction) + 16
        for _ in range(8):
            x = self._pieces(m, sampler, seed)
            if len(x) >= n:
                keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
                return x[keep.sort().values]
            m *= 2
        raise GMNMError(f"could not place {n} boundary points on {self!r}")

    @cached_property
    def _measures(self) -> tuple[float, float]:
        """Monte Carlo estimates of (volume, boundary measure), fixed seed."""
        from ..sampling import Uniform

        m = 200_000
        x = self.sample_bbox(m, Uniform(), 12345)
        vol = _box_volume(self.bbox) * float(self.inside(x).double().mean())
        la, lb = self.a.boundary_measure, self.b.boundary_measure
        k = 20_000
        xa = self.a.sample_boundary(k, Uniform(), 1)
        xb = self.b.sample_boundary(k, Uniform(), 2)
        fa = float(self._from_a(xa).double().mean())
        fb = float(self._from_b(xb).double().mean())
        return vol, la * fa + lb * fb

    @property
    def volume(self) -> float:
        return self._measures[0]

    @property
    def boundary_measure(self) -> float:
        return self._measures[1]


class Union(_CSG):
    """Points in either shape. Where the two touch along an edge (an L-shape from two
    rectangles), that edge is inside the union, not on its boundary."""

    _op = "|"

    @property
    def bbox(self):
        (alo, ahi), (blo, bhi) = self.a.bbox, self.b.bbox
        return tuple(map(min, alo, blo)), tuple(map(max, ahi, bhi))

    def inside(self, x: Points) -> Mask:
        return self.a.inside(x) | self.b.inside(x)

    def _from_a(self, x: Points) -> Mask:  # not inside b, nor on an edge b shares
        return ~self.b.interior(x) & ~_shared(self.a, self.b, x, facing=True)

    def _from_b(self, x: Points) -> Mask:
        return ~self.a.interior(x) & ~_shared(self.b, self.a, x, facing=True)


class Difference(_CSG):
    """Points in the first shape and not strictly inside the second (a shape with a hole)."""

    _op = "-"
    _flip_b = True

    @property
    def bbox(self):
        return self.a.bbox

    def inside(self, x: Points) -> Mask:
        return self.a.inside(x) & ~self.b.interior(x)

    def _from_a(self, x: Points) -> Mask:  # not inside b, nor on an edge b lines from inside
        return ~self.b.interior(x) & ~_shared(self.a, self.b, x, facing=False)

    def _from_b(self, x: Points) -> Mask:
        return self.a.interior(x)


class Intersection(_CSG):
    """Points in both shapes."""

    _op = "&"

    @property
    def bbox(self):
        (alo, ahi), (blo, bhi) = self.a.bbox, self.b.bbox
        lo, hi = tuple(map(max, alo, blo)), tuple(map(min, ahi, bhi))
        if any(l >= h for l, h in zip(lo, hi)):
            raise GMNMError(f"the intersection {self!r} is empty")
        return lo, hi

    def inside(self, x: Points) -> Mask:
        return self.a.inside(x) & self.b.inside(x)

    def _from_a(self, x: Points) -> Mask:
        return self.b.inside(x)

    def _from_b(self, x: Points) -> Mask:
        return self.a.inside(x)
