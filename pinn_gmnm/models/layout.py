"""Where a GMNM's Gaussians sit and how many there are by default.

All of this works in the model's normalised coordinates, where the domain's bounding box is
[−1, 1]^d.

**Margin.** Centres are spread over the box enlarged by ``MARGIN`` on every side, not over
the box itself: a solution's boundary layers, corners and rims are shaped by Gaussians
whose centres lie past the boundary. (With least squares on the default 2D GMNM, margins
of 0, 0.1, 0.2, 0.3 gave ``poisson`` 3.2e-8 → 7.6e-9 at 0.3, ``poisson-neumann`` 3.1e-7 →
1.1e-8, ``helmholtz`` 5.9e-5 → 1.9e-6.)

**Culling.** On a domain that fills its box poorly (an L-shape, a disk, a thin annulus) the
enlarged box holds places far from any point of the domain, where a Gaussian would only
add a useless column. :func:`spread_centres` keeps only places within the margin of the
domain, as represented by sample points of it, and spreads the m centres over those.

**Width.** Every Gaussian starts isotropic with standard deviation ``width_factor`` × h,
h = (2^d / m)^(1/d) the spacing the m centres would have over the domain's box alone (for a
culled layout, over the part of the box the kept places cover): broad, overlapping
Gaussians, the regime where the least-squares solve is most accurate.

**Isotropy.** Normalising each axis of an elongated box to [−1, 1] stretches whatever is
isotropic there: the default 32 × 32 grid over the 2.2 × 0.41 channel of ``cylinder`` had
a spacing of 0.069 along the channel and 0.013 across it, and Gaussians 5 times as wide
along as across. A steady problem's model is therefore laid out in the box's own
proportions (``aspect``, the half-widths over the largest): as many centres along each
axis as its length allows at one spacing (:func:`grid_shape`), every Gaussian round in the
problem's own units. The margin is then one length on every side, ``MARGIN`` × the shortest
half-width: as a share of each half-width it reached 0.33 past the channel's inlet and
outlet, 8 columns of Gaussians there held only by the boundary's points, and a Stokes
flow's least-squares fit met its collocation equations to 1.3e-6 while its held-out
residual was 5.8e-4 (continuity residuals up to 59 between the points near the inlet; 5.5e-6
with one margin, the error 0.16 → 0.09). The grid is kept (a Sobol' set of 1023 gave the
strip below 1.1e-5 and the channel 3.6e-3). Measured with the defaults (seed 0, 60 s), the
normalised layout → round with a margin per axis → round with one margin: a Poisson problem on
[0, 5] × [0, 1] 6.7e-5 → 9.9e-9 → 3.4e-8, Laplace on [0, 3] × [0, 0.5] around a hole of radius
0.08 1.2e-2 → 4.7e-5 → 1.2e-5, untuned ``cylinder`` 0.25 → 0.20 → 0.18, ``poisson-holes``
5.4e-6 → 5.0e-6 → 3.9e-6, ``kovasznay`` 4.5e-7 → 8.3e-7 → 7.5e-7 (see
``results/catalogue-history.md``). The strip alone lost with one margin; at that level the
result moves with the grid (63 × 16 Gaussians with one margin gave it 1.4e-9, 64 × 16 3.4e-8). (A time axis has no common unit with space: problems
that evolve are laid out round in space, time as a mean axis of space: their single
block by :func:`space_time_proportions`, a march's slabs by
:func:`~.slabs.round_spatial_grid`.)

**Count.** :func:`default_components` ties the default number of Gaussians to the number of
collocation equations and to the dimension, so that the least-squares solve always has
``OVERSAMPLING`` times more equations than unknowns.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ..errors import require_positive
from ..sampling import Sobol

MARGIN = 0.3
"""How far past the domain's bounding box centres may lie, as a fraction of its half-width."""

FIT_MARGIN = 0.1
"""The margin of a problem without conditions (a fit from samples): about one spacing of
the default 2D layout. There a Gaussian centred outside is pinned only by the few samples
near the edge, so a wide margin lets the fit swing between them and the box's edge; no
margin at all leaves the edge to Gaussians centred inside. Measured with the default
``grow`` (2000 samples, relative L2 for margins 0 / 0.1 / 0.3): ``exp-sin`` 1.1e-6 /
2.8e-7 / 3.4e-8, ``sines`` 6.1e-7 / 1.7e-7 / 7.3e-9, ``xy`` 2.1e-6 / 5.6e-7 / 5.4e-8,
``front`` 2.7e-2 / 2.9e-2 / 2.6e-2, ``multiscale`` 0.125 / 0.126 / 0.20 (max error 1.1 /
0.74 / 3.0: the swing at the edge), ``exp-sin-4d`` 0.16 / 0.16 / 0.18."""

DEFAULT_EQUATIONS = 2400
"""Collocation equations a default model is sized for: the default 2000 interior and 400
boundary points (see :class:`~pinn_gmnm.training.Collocation`)."""

OVERSAMPLING = 2.0
"""Equations per unknown of the least-squares solve that :func:`default_components` keeps."""

MAX_COMPONENTS = {1: 64, 2: 1024}
"""Upper limits on the default count by dimension (otherwise ``MAX_COMPONENTS_ANY``). In 1D
64 Gaussians resolve what the points can (``poisson-1d`` 4e-7; 2e-6 with 400: more columns
than the points resolve). In 2D (and 1D + time) 1024 = 32² keeps the model at 7169
parameters, within Gauss–Newton's 8000, so the nonlinear problems keep the method that
solves them (1156 Gaussians would make 8093 and send them to Adam)."""

MAX_COMPONENTS_ANY = 2000

MIN_GRID_AXIS = 5
"""A default count is a whole grid k^d only with k ≥ this; otherwise it is every unknown
the budget allows, which :func:`spread_points` spreads as a scrambled Sobol' set. A grid has only k distinct coordinates per axis, a Sobol' set
m: with the 1024 = 4⁵ default of ``poisson-5d`` the grid gave 4.8e-3, 1024 Sobol' centres
3.1e-4 (1199 Sobol' 2.1e-4; 5⁴ = 625 in 4D: ``exp-sin-4d`` 0.18 on the grid, 0.27 Sobol')."""


def default_components(dim: int, equations: int = DEFAULT_EQUATIONS, outputs: int = 1, *,
                       capped: bool = True, oversampling: float = OVERSAMPLING,
                       aspect: Sequence[float] | None = None) -> int:
    """The default number of Gaussians: the largest whole grid k^d, k ≥ ``MIN_GRID_AXIS``,
    whose least-squares unknowns ((k^d + 1) per output) are at most
    ``equations / OVERSAMPLING``, and at most ``MAX_COMPONENTS`` (unless not ``capped``:
    the caps keep a default within Gauss–Newton's reach, which a uniform refinement of a
    linear problem does not need) (1 when not even 1 fits);
    when no such grid fits, the largest count that does (spread as a Sobol' set).

    With the default 2400 equations: 64 in 1D (the cap), 1024 (32², the cap) in 2D, 1000
    (10³) in 3D, 625 (5⁴) in 4D, 1199 in 5D. Measured with least squares (2D at the margin
    and width of the defaults): ``poisson`` 7.3e-9 with 400, 1.1e-9 with 900, 5.0e-10
    with 1156; ``poisson-holes`` 4.4e-2, 1.1e-2, 4.6e-3; ``poisson-3d`` 1.8e-3 with 729,
    1.6e-4 with 1000.

    With ``aspect`` (the sides of the box the centres are spread over, in a common unit,
    see :func:`grid_shape`) the grid is the largest of one spacing along every axis within
    the budget, each axis at least ``MIN_GRID_AXIS`` (:func:`even_count`): 1020 = 68 × 15
    over the 2.2 × 0.41 channel of ``cylinder`` and its margin.
    """
    require_positive("dimension", dim, integer=True)
    require_positive("equations", equations, integer=True)
    budget = equations / oversampling / outputs - 1
    if capped:
        budget = min(budget, MAX_COMPONENTS.get(dim, MAX_COMPONENTS_ANY))
    if budget < 1:
        return 1
    if aspect is not None and elongated(aspect):
        return even_count(math.floor(budget), aspect, MIN_GRID_AXIS) or max(1, math.floor(budget))
    k = math.floor(budget ** (1.0 / dim) + 1e-9)
    while k > 1 and k**dim > budget:  # guard the rounding of the root
        k -= 1
    if k < MIN_GRID_AXIS:  # too coarse for a grid: every unknown the budget allows
        return max(1, math.floor(budget))
    return k**dim


def spread_points(m: int, lo: Sequence[float], hi: Sequence[float], seed: int, *,
                  grid: bool = True) -> Tensor:
    """m points spread evenly over the box [lo, hi]: a cell-centred grid when m is a
    perfect d-th power (and ``grid``), a scrambled Sobol' set otherwise. Shape (m, d),
    float64. (Default counts are whole grids only when fine enough, see
    :func:`default_components`.)"""
    d = len(lo)
    k = round(m ** (1.0 / d))
    if grid and k**d == m:
        return cell_grid(lo, hi, (k,) * d)
    lo_t, hi_t = torch.tensor(lo, dtype=torch.float64), torch.tensor(hi, dtype=torch.float64)
    return lo_t + (hi_t - lo_t) * torch.from_numpy(Sobol().unit(m, d, seed))


def cell_grid(lo: Sequence[float], hi: Sequence[float], shape: Sequence[int]) -> Tensor:
    """The cell centres of a grid of ``shape`` (counts along each axis) over the box
    [lo, hi], shape (∏ shape, d), float64."""
    lo_t, hi_t = torch.tensor(lo, dtype=torch.float64), torch.tensor(hi, dtype=torch.float64)
    axes = [(torch.arange(k, dtype=torch.float64) + 0.5) / k for k in shape]
    unit = torch.cartesian_prod(*axes).reshape(math.prod(shape), len(shape))
    return lo_t + (hi_t - lo_t) * unit


SPACING_TOLERANCE = 1.05
"""How far apart (as a ratio) the spacings along the axes of an even grid may be."""


def _even_shapes(side: Sequence[float], spacing: float) -> list[tuple[int, ...]]:
    """Every grid over a box with sides ``side`` whose spacings (side / count) lie within
    ``SPACING_TOLERANCE`` of ``spacing`` either way."""
    tol = SPACING_TOLERANCE
    ranges = [range(max(1, math.ceil(s / (spacing * tol) - 1e-9)),
                    math.floor(s * tol / spacing + 1e-9) + 1) for s in side]
    return list(itertools.product(*ranges))


def _ratio(side: Sequence[float], shape: Sequence[int]) -> float:
    spacings = [s / k for s, k in zip(side, shape)]
    return max(spacings) / min(spacings)


def grid_shape(m: int, side: Sequence[float]) -> tuple[int, ...] | None:
    """The counts along each axis of a grid of m points over a box with sides ``side``
    (any common unit) whose spacings (side / count) are the most nearly equal, or None
    when even those are more than ``SPACING_TOLERANCE`` apart. On a cube: (k, …, k) when
    m = k^d; on the 2.2 × 0.41 channel of ``cylinder``, 1022 = 73 × 14."""
    # spacings within the tolerance of each other are within it of their geometric mean
    mean = (math.prod(side) / m) ** (1.0 / len(side))
    shapes = [k for k in _even_shapes(side, mean) if math.prod(k) == m]
    best = min(shapes, key=lambda k: _ratio(side, k), default=None)
    return best if best is not None and _ratio(side, best) <= SPACING_TOLERANCE else None


def even_count(most: int, aspect: Sequence[float], fewest: int = 1) -> int | None:
    """The largest count up to ``most`` that makes a :func:`grid_shape` over a box of
    proportions ``aspect`` with at least ``fewest`` along every axis (None if none does)."""
    counts: set[int] = set()
    k = 1
    while True:  # the longest axis's count, k, sets the spacing; the others follow it
        spacing = max(aspect) / k
        fewest_cells = math.prod(max(1, math.ceil(a / (spacing * SPACING_TOLERANCE) - 1e-9))
                                 for a in aspect)
        if fewest_cells > most:
            break
        counts.update(c for c in map(math.prod, _even_shapes(aspect, spacing)) if c <= most)
        k += 1
    for count in sorted(counts, reverse=True):
        shape = grid_shape(count, aspect)
        if shape is not None and min(shape) >= fewest:
            return count
    return None


def spread_evenly(m: int, lo: Sequence[float], hi: Sequence[float], seed: int) -> Tensor:
    """m points over the box [lo, hi] at one spacing along every axis: the cell-centred
    grid of :func:`grid_shape` when there is one, a scrambled Sobol' set otherwise (the
    same as :func:`spread_points` on a cube). Shape (m, d), float64."""
    shape = grid_shape(m, [h - l for l, h in zip(lo, hi)])
    if shape is None:
        return spread_points(m, lo, hi, seed, grid=False)
    return cell_grid(lo, hi, shape)


def proportions(lo: Sequence[float], hi: Sequence[float]) -> tuple[float, ...]:
    """The half-widths of the box [lo, hi] over the largest: the scale of each normalised
    axis in a common unit (all 1 on a cube)."""
    side = [h - l for l, h in zip(lo, hi)]
    return tuple(s / max(side) for s in side)


def space_time_proportions(lo: Sequence[float], hi: Sequence[float]) -> tuple[float, ...]:
    """:func:`proportions` of a space-time box [lo, hi] (time last), whose time axis shares
    no unit with space: it is given the geometric mean of the spatial sides, so that a
    layout has as many centres along time as along a mean axis of space (on a square or
    a cube in space: all 1, the normalised layout)."""
    side = [h - l for l, h in zip(lo[:-1], hi[:-1])]
    side.append(math.prod(side) ** (1.0 / len(side)))
    return proportions([0.0] * len(side), side)


def elongated(aspect: Sequence[float]) -> bool:
    """Whether a layout of proportions ``aspect`` is round in other units than the
    normalised ones (its axes' scales not all equal)."""
    return len(set(aspect)) > 1


def enlarged(dim: int, margin: float = MARGIN, aspect: Sequence[float] | None = None
             ) -> tuple[list[float], list[float]]:
    """The normalised box [−1, 1]^d enlarged by ``margin`` on every side; with ``aspect``
    in the common unit, [−a_i − margin · min a, a_i + margin · min a] along axis i: one
    margin on every side, a share of the shortest half-width."""
    a = [1.0] * dim if aspect is None else list(aspect)
    pad = margin * min(a)
    return [-s - pad for s in a], [s + pad for s in a]


def near_points(candidates: Tensor, points: Tensor, reach: float, chunk: int = 4096) -> Tensor:
    """Which candidates lie within ``reach`` (max-norm) of at least one of ``points``."""
    keep = torch.zeros(len(candidates), dtype=torch.bool)
    for i in range(0, len(candidates), chunk):
        c = candidates[i:i + chunk]
        dist = torch.cdist(c, points, p=math.inf).amin(dim=1)
        keep[i:i + chunk] = dist <= reach
    return keep


def spread_centres(m: int, points: Tensor, seed: int, margin: float = MARGIN,
                   aspect: Sequence[float] | None = None) -> tuple[Tensor, float]:
    """m centres spread over the places of the enlarged box within reach of ``points``
    (normalised sample points of the domain, interior and boundary), and the fraction of
    the enlarged box those places fill. The reach is the margin plus the spacing n points
    would have over the box, (2^d / n)^(1/d) (max-norm), so that the gaps between sample
    points do not cull places the domain reaches.

    When every place is kept (a box) the centres are those of :func:`spread_points`, a
    grid when m is a whole power. Otherwise they are the first m kept points of a scrambled
    Sobol' sequence over the enlarged box (its prefixes stay evenly spread in any region).

    With ``aspect`` (:func:`proportions`) all of this is done in the box's common unit,
    the margin one length on every side (:func:`enlarged`), the centres spread evenly
    (:func:`spread_evenly`) and returned in normalised coordinates as always.
    """
    n, d = points.shape
    a = torch.ones(d, dtype=torch.float64) if aspect is None else torch.tensor(
        aspect, dtype=torch.float64)
    lo, hi = enlarged(d, margin, a.tolist())
    points = points.to(torch.float64) * a  # (in the common unit)
    reach = margin * float(a.min()) + 2.0 / n ** (1.0 / d) * float(torch.prod(a)) ** (1.0 / d)
    probe = spread_points(max(4096, 16 * m), lo, hi, seed + 1, grid=False)
    fraction = float(near_points(probe, points, reach).double().mean())
    if fraction >= 0.999:
        even = spread_points(m, lo, hi, seed) if aspect is None else spread_evenly(m, lo, hi, seed)
        return even / a, 1.0
    tries = max(2 * m, math.ceil(1.5 * m / max(fraction, 1e-3)))
    while True:
        candidates = spread_points(tries, lo, hi, seed, grid=False)
        kept = candidates[near_points(candidates, points, reach)]
        if len(kept) >= m:
            return kept[:m] / a, fraction
        tries *= 2
