"""Simple polygons in the plane, such as an L-shape."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from .._types import Mask, Points
from ..errors import GMNMError
from ..sampling import Sampler
from .base import DEFAULT_TOL, Corner, Geometry


def _segments_cross(p1: np.ndarray, p2: np.ndarray, q1: np.ndarray, q2: np.ndarray) -> bool:
    """Whether the closed segments p1p2 and q1q2 intersect (touching counts)."""
    def orient(a, b, c):
        v = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        return 0 if abs(v) < 1e-14 else (1 if v > 0 else -1)

    def on_seg(a, b, c):  # c collinear with ab: is it between them?
        return min(a[0], b[0]) - 1e-14 <= c[0] <= max(a[0], b[0]) + 1e-14 and \
            min(a[1], b[1]) - 1e-14 <= c[1] <= max(a[1], b[1]) + 1e-14

    o1, o2 = orient(p1, p2, q1), orient(p1, p2, q2)
    o3, o4 = orient(q1, q2, p1), orient(q1, q2, p2)
    if o1 != o2 and o3 != o4:
        return True
    return ((o1 == 0 and on_seg(p1, p2, q1)) or (o2 == 0 and on_seg(p1, p2, q2))
            or (o3 == 0 and on_seg(q1, q2, p1)) or (o4 == 0 and on_seg(q1, q2, p2)))


class Polygon(Geometry):
    """The closed region bounded by a simple polygon with the given vertices (in order,
    either orientation; the last vertex connects back to the first).

    ``inside`` uses the crossing-number rule; boundary points are spread over the edges
    in proportion to their length; normals are the edges' outward normals (at a vertex,
    those of the nearest edge).

    Example, the L-shape [−1, 1]² minus [0, 1] × [−1, 0]::

        Polygon([(-1, -1), (0, -1), (0, 0), (1, 0), (1, 1), (-1, 1)])
    """

    def __init__(self, vertices: Sequence[Sequence[float]]) -> None:
        v = np.asarray(vertices, dtype=np.float64)
        if v.ndim != 2 or v.shape[1] != 2 or len(v) < 3:
            raise GMNMError(f"a polygon needs at least 3 vertices (x, y), got shape {v.shape}")
        if not np.isfinite(v).all():
            raise GMNMError("polygon vertices must be finite numbers")
        self.vertices = v
        self.dim = 2
        area2 = float(np.sum(v[:, 0] * np.roll(v[:, 1], -1) - np.roll(v[:, 0], -1) * v[:, 1]))
        if abs(area2) < 1e-14:
            raise GMNMError("the polygon has zero area")
        self._check_simple()
        if area2 < 0:  # store counter-clockwise so that (dy, −dx) points outward
            v = self.vertices = v[::-1].copy()
        self._a = v
        self._b = np.roll(v, -1, axis=0)
        self._lengths = np.linalg.norm(self._b - self._a, axis=1)
        if (self._lengths < 1e-14).any():
            raise GMNMError("polygon has repeated consecutive vertices")
        self._area = abs(area2) / 2
        self.tol = DEFAULT_TOL * float(np.ptp(v, axis=0).max())

    def _check_simple(self) -> None:
        v, m = self.vertices, len(self.vertices)
        for i in range(m):
            for j in range(i + 1, m):
                if j == i + 1 or (i == 0 and j == m - 1):
                    continue  # neighbouring edges share a vertex
                if _segments_cross(v[i], v[(i + 1) % m], v[j], v[(j + 1) % m]):
                    raise GMNMError(
                        f"the polygon is not simple: edge {i} crosses edge {j}; give the "
                        "vertices in order around the boundary"
                    )

    def __repr__(self) -> str:
        return f"Polygon({self.vertices.tolist()})"

    @property
    def bbox(self):
        return tuple(self.vertices.min(axis=0).tolist()), tuple(self.vertices.max(axis=0).tolist())

    def _edges(self, x: Points) -> tuple[torch.Tensor, torch.Tensor]:
        a = torch.as_tensor(self._a, dtype=x.dtype, device=x.device)
        b = torch.as_tensor(self._b, dtype=x.dtype, device=x.device)
        return a, b

    def _edge_distance(self, x: Points) -> torch.Tensor:
        """Distance from each point to each edge, shape (n, m)."""
        a, b = self._edges(x)
        ab = b - a                                         # (m, 2)
        ax = x[:, None, :] - a[None]                       # (n, m, 2)
        s = ((ax * ab).sum(-1) / (ab * ab).sum(-1)).clamp(0, 1)
        return (ax - s[..., None] * ab).norm(dim=-1)

    def on_boundary(self, x: Points) -> Mask:
        return self._edge_distance(x).amin(dim=1) <= self.tol

    def inside(self, x: Points) -> Mask:
        a, b = self._edges(x)
        px, py = x[:, None, 0], x[:, None, 1]
        ay, by = a[None, :, 1], b[None, :, 1]
        straddles = (ay > py) != (by > py)
        x_cross = a[None, :, 0] + (py - ay) * (b[None, :, 0] - a[None, :, 0]) / torch.where(
            by == ay, torch.ones_like(by), by - ay)
        crossings = (straddles & (px < x_cross)).sum(dim=1)
        return (crossings % 2 == 1) | self.on_boundary(x)

    def normal(self, x: Points) -> Points:
        a, b = self._edges(x)
        edge = self._edge_distance(x).argmin(dim=1)
        d = (b - a)[edge]
        n = torch.stack([d[:, 1], -d[:, 0]], dim=1)
        return n / n.norm(dim=1, keepdim=True)

    def corners(self) -> list[Corner]:
        v = self.vertices  # counter-clockwise: the shape fills the turn from next to previous
        out = []
        for i in range(len(v)):
            a, b = v[(i + 1) % len(v)] - v[i], v[i - 1] - v[i]
            angle = math.atan2(a[0] * b[1] - a[1] * b[0], float(a @ b)) % (2 * math.pi)
            out.append(Corner(tuple(v[i].tolist()), (tuple(a.tolist()), tuple(b.tolist())), angle))
        return out

    @property
    def volume(self) -> float:
        return self._area

    @property
    def boundary_measure(self) -> float:
        return float(self._lengths.sum())

    def sample_boundary(self, n: int, sampler: Sampler, seed: int) -> Points:
        # One unit coordinate walks the perimeter: points land on each edge in proportion
        # to its length and keep the sampler's even spread.
        s = sampler.unit(n, 1, seed)[:, 0] * self.boundary_measure
        cum = np.concatenate([[0.0], np.cumsum(self._lengths)])
        edge = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(self._lengths) - 1)
        frac = ((s - cum[edge]) / self._lengths[edge])[:, None]
        return torch.from_numpy(self._a[edge] + frac * (self._b[edge] - self._a[edge]))

    def sample_interior(self, n: int, sampler: Sampler, seed: int) -> Points:
        return self._rejection_interior(n, sampler, seed)
