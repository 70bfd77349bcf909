"""Graded Gaussians and points at re-entrant corners, where an elliptic solution is singular.

At a corner where a 2-D domain fills an angle ω > π (the L-shape's 3π/2), the solution of
an elliptic problem behaves like r^(π/ω) sin(πθ/ω) (u ~ r^(2/3) at the L-shape's), whose
derivatives blow up. Gaussians of one width cannot follow it, and the error that is
left there is not local: the least-squares fit takes the wrong multiple of the singular
function, and that pollutes the whole domain. The residual away from the corner does not
see it, so growth led by the residual goes there one level a round and, measured at 60 s,
``poisson-lshape`` stayed at 2e-2 however the rounds went.

The geometry knows its corners (:meth:`~pinn_gmnm.geometry.Geometry.corners`: polygons,
rectangles and their unions, differences and intersections), so the mixture is graded towards each re-entrant one
from the start, as finite elements grade their meshes: ``LEVELS`` rings of radius
r_l = R · ``RATIO``^l around the corner, R = ``REACH`` × its shorter edge, each with
``PER_RING`` Gaussians of width ``WIDTH`` × r_l (those within half a radius of the
domain), collocation points on three circles per ring (``POINTS_PER_GAUSSIAN`` per
Gaussian, those in the domain) and boundary points along the two edges, graded alike (each
pointwise condition keeps those on its piece). The corner's rows of the least-squares
system then span six orders of magnitude (the Laplacian of a Gaussian of width σ is
∝ 1/σ²), and term scales, which weigh a term by the mean of its rows, leave the broad
Gaussians' rows next to nothing: so a graded task's system has every row scaled to the
same norm (√(u_t / n_t), u_t the user's weight of its term: ``Loss.equal_rows``).

Measured with defaults at a 60 s budget (one thread, the other core busy): ``poisson-lshape``
2.5e-2 → 7.7e-5 relative L2 (1294 Gaussians after grading, then a uniform refinement);
on a U-shaped plate written for this check (two re-entrant corners, Neumann on the notch,
Dirichlet outside; against a P2 finite-element solution with h = 0.005, itself ~1e-5 off)
0.10 → 2.9e-4; on a square plate with a rectangular hole held hot (``Rectangle −
Rectangle``, four re-entrant corners; against P2 with h = 0.005, whose own error is ~5e-5)
4.6e-2 → 7.4e-5; on a plus-shaped plate built as a union of two bars (four re-entrant
corners where their edges cross; P2 with h = 0.005 differs from h = 0.01 by 2e-4)
4.9e-2 → 1.9e-4. The width of a ring's Gaussians traded one against the other (1.0 × the
radius: 7e-5 and 5e-4 after one round; 0.5: 2e-4 and 1e-4); 0.7 serves both.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..geometry.base import Corner, Geometry
from ..models.gmnm import GMNM
from .task import Task

RATIO = 0.6
"""Radius of a ring over the one before it."""

LEVELS = 12
"""Rings at each corner: the innermost at ``REACH`` × ``RATIO``^12 ≈ 9e-4 × its shorter edge."""

REACH = 0.4
"""The outermost ring's radius over the corner's shorter edge."""

PER_RING = 24
"""Gaussians on each ring (around the full turn; those outside the domain's margin go)."""

WIDTH = 0.7
"""A ring's Gaussians' width over its radius."""

POINTS_PER_GAUSSIAN = 12
"""Interior collocation points per ring over its Gaussians (on three circles)."""

EDGE_POINTS = 12
"""Boundary points per ring along each of the corner's two edges."""

MOST_CORNERS = 8
"""Corners graded at most, the sharpest first: each brings about 270 Gaussians and 2900
points (on the L-shape), so that eight make a system of ~25 000 rows and ~3000 columns
more, about 2.5 GB in the solve."""


def reentrant_corners(geometry: Geometry) -> list[Corner]:
    """The corners where ``geometry`` fills more than a half-plane (2-D, known vertices)."""
    if geometry.dim != 2 or geometry.time_dependent:
        return []
    return [c for c in geometry.corners() if c.reentrant]


def graded_corners(geometry: Geometry) -> list[Corner]:
    """The re-entrant corners that are graded: the ``MOST_CORNERS`` sharpest."""
    return sorted(reentrant_corners(geometry), key=lambda c: -c.angle)[:MOST_CORNERS]


def grades(task: Task) -> bool:
    """Whether the task's mixture is graded towards re-entrant corners: a GMNM on a 2-D
    domain that has any (the caller decides for which problems)."""
    return isinstance(task.model, GMNM) and bool(reentrant_corners(task.loss.problem.geometry))


def _rings(corner: Corner) -> list[float]:
    shorter = min(math.hypot(*e) for e in corner.edges)
    return [REACH * shorter * RATIO**level for level in range(1, LEVELS + 1)]


def _near_domain(geometry: Geometry, x: Tensor, reach: Tensor) -> Tensor:
    """Whether each point of ``x`` is in the domain or within ``reach`` of it (tested at
    eight points around it)."""
    a = torch.arange(8, dtype=x.dtype) * (math.pi / 4)
    around = x[:, None, :] + reach[:, None, None] * torch.stack([a.cos(), a.sin()], dim=1)
    tests = torch.cat([x[:, None, :], around], dim=1)
    return geometry.inside(tests.reshape(-1, 2)).reshape(len(x), 9).any(dim=1)


def corner_gaussians(geometry: Geometry) -> tuple[Tensor, Tensor]:
    """The graded Gaussians of every re-entrant corner: centres (n, 2) and widths (n,),
    physical coordinates, float64."""
    centres, widths = [], []
    for corner in graded_corners(geometry):
        p = torch.tensor(corner.point, dtype=torch.float64)
        for level, r in enumerate(_rings(corner)):
            a = (torch.arange(PER_RING, dtype=torch.float64) + 0.5 * (level % 2)) * (
                2 * math.pi / PER_RING)
            c = p + r * torch.stack([a.cos(), a.sin()], dim=1)
            keep = _near_domain(geometry, c, torch.full((len(c),), 0.5 * r, dtype=torch.float64))
            centres.append(c[keep])
            widths.append(torch.full((int(keep.sum()),), WIDTH * r, dtype=torch.float64))
    if not centres:
        return torch.zeros(0, 2, dtype=torch.float64), torch.zeros(0, dtype=torch.float64)
    return torch.cat(centres), torch.cat(widths)


def corner_points(geometry: Geometry) -> tuple[Tensor, Tensor]:
    """The graded collocation points of every re-entrant corner: interior points (n, 2)
    in the domain and boundary points (k, 2) along its edges, physical, float64."""
    interior, boundary = [], []
    n = POINTS_PER_GAUSSIAN * PER_RING // 3
    for corner in graded_corners(geometry):
        p = torch.tensor(corner.point, dtype=torch.float64)
        edges = [torch.tensor(e, dtype=torch.float64) for e in corner.edges]
        for level, r in enumerate(_rings(corner)):
            for j, f in enumerate((0.75, 1.0, 1.3)):
                a = (torch.arange(n, dtype=torch.float64) + (level + j) / 3) * (2 * math.pi / n)
                x = p + f * r * torch.stack([a.cos(), a.sin()], dim=1)
                interior.append(x[geometry.interior(x)])
            t = r * 1.3 * RATIO ** (torch.arange(EDGE_POINTS, dtype=torch.float64) / EDGE_POINTS)
            for e in edges:
                length = float(e.norm())
                s = t[t < length]
                boundary.append(p + s[:, None] * (e / length))
    empty = torch.zeros(0, 2, dtype=torch.float64)
    return (torch.cat(interior) if interior else empty, torch.cat(boundary) if boundary else empty)


def add_corner_gaussians(task: Task) -> int:
    """Append the graded Gaussians (weights 0) to the task's GMNM; returns how many."""
    model = task.model
    assert isinstance(model, GMNM)
    centres, widths = corner_gaussians(task.loss.problem.geometry)
    if not len(centres):
        return 0
    layer = model.layer
    h = torch.tensor(model.normalize.half_width, dtype=torch.float64)
    means = model.normalize(centres)
    scaled = widths[:, None] / h  # each axis's width, normalised coordinates
    d, k = layer.in_features, layer.projections
    if k == d:
        proj = torch.diag_embed(1.0 / scaled)
    else:
        proj = torch.randn(len(means), k, d, dtype=torch.float64) / (scaled[:, None, :] * math.sqrt(k))
    layer.add_components(means.to(layer.means), proj)
    task.sync_params()
    return len(centres)


def add_corner_points(task: Task) -> int:
    """Add the graded points to the task's batch (each pointwise condition keeps the
    boundary points on its piece) and scale the rows of its least-squares system to
    equal norms; returns how many points."""
    loss = task.loss
    problem, x = loss.problem, loss.batch.interior
    interior, boundary = corner_points(problem.geometry)
    conditions = [c.select(problem.geometry, boundary) if c.pointwise else boundary[:0]
                  for c in problem.conditions]
    move = lambda t: t.to(device=x.device, dtype=x.dtype)  # noqa: E731
    loss.batch = loss.batch.extended(move(interior), tuple(map(move, conditions)))
    loss.equal_rows = True
    return len(interior) + sum(len(c) for c in conditions)
