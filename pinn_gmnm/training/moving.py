"""A slab's Gaussians and points moved to where its state is steep (r-adaptivity).

The default march of a nonlinear problem in one space dimension lays each slab's Gaussians
out as a thin grid, k_s centres along x by k_t along time (:func:`~pinn_gmnm.models.slabs.
slab_layout`). Equally spaced, the k_s = 256 centres of a ``burgers`` slab (as the layout
was then) were 0.009 apart and 0.04 wide, and its shock is 0.006 wide: the front was never
resolved (5e-2 after 25 slabs), and halving slabs in time could not help, the limit being
in space.

So, as a moving-mesh method places its nodes by equidistribution, a slab places its k_s
centres by the density

    ρ(x) = clamp(RESOLVE · h · ĝ(x), 1, RATIO),   g = ‖(∂u_j/∂x) / range(u_j)‖,

h the uniform spacing and ĝ the largest g within ``SMOOTH`` spacings, graded over one
(so a front of width w = range/slope gets a spacing of about w / RESOLVE, and a plateau
of that spacing around it: the front moves within the slab). Where the state is resolved
by the uniform spacing ρ = 1, so slowly varying states keep about their equal spacing;
at a front the spacing is down to 1/``RATIO`` of the spacing elsewhere. The centres sit
at the quantiles (i + ½)/k_s of ∫ρ, each Gaussian ``width_factor`` × its local spacing
wide along x, their times kept. The slab's interior points and the points of its initial
state move by the same map (x ↦ the point of equal mass of ρ over the domain), so each
Gaussian keeps its share of equations; the domain's ends stay (periodic pairs keep their
partners). The head starts as the least-squares fit of the state the slab starts from.

Which state: every slab after the first is moved by the previous slab's state at t_k
(the first keeps its equal spacing: the initial state's slope does not say where fronts
will form; ``allen-cahn``'s interfaces form where x² cos πx crosses zero, far from its
steepest parts). Then, as the march's ``MOVE_AGAIN`` says, a slab whose own solution is
steep elsewhere (at its start, middle and end: a front forming or travelling inside it)
is moved by that solution and trained once more, starting from it, when the rest of the
march still fits in the time left. Measured at 60 s (catalogue defaults, 2-core CPU,
alone on the machine; thin slabs of 256 × 4), equally spaced → moved: ``burgers`` 5.0e-2 →
1.0e-3 (without the second pass 3.2e-3: its shock forms inside the slab from t = 0.25),
``allen-cahn`` 4.4e-3 → 8.7e-4 (8.6e-4 without), ``gray-scott`` 1.0e-2 both ways (its
fronts are wide; it was bound by the budget), ``schrodinger`` 0.31 → 0.23. With
``RESOLVE`` and ``RATIO`` 32: ``burgers`` 2.7e-3, ``allen-cahn`` 9.7e-4. An earlier
density, 1 + min(15, smoothed |∂u/∂x| / its mean), moved even resolved fronts and gave
``burgers`` 1.7e-3, ``allen-cahn`` 1.2e-3. Starting the first slab's head from the initial
state held still changed ``allen-cahn`` little (3.8e-4 against 3.9e-4) and let
``gray-scott``'s first slab pass as solved when it was not (4.2e-2): it starts as built.
With the centres moved, time became the limit of a slab (see
:data:`~pinn_gmnm.models.slabs.TIME_DENSITY`: 6 centres along time where there were 4).

Only a thin grid of a plain GMNM over (x, t) is moved (the layout the default march
builds); other slabs keep theirs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._types import Points
from ..conditions import Initial
from ..models.gmnm import GMNM, GMNMLayer
from ..problem import Problem
from .batch import Batch

RATIO = 16.0
"""The finest spacing of the centres is 1/RATIO of their spacing where ρ = 1."""

SMOOTH = 4.0
"""A front's spacing extends this many uniform spacings to either side of it."""

RESOLVE = 16.0
"""A front of width w (an output's range over its largest slope) is given w / RESOLVE
spacing at most (down to 1/``RATIO`` of the uniform one)."""

FINE = 4096
"""Points of the grid on which the density and its integral are tabulated."""


@dataclass(frozen=True)
class Warp:
    """A monotone map of the spatial axis of one slab, tabulated on ``grid`` (the
    piece's normalised coordinate over its box and margin): ``mass`` (the same length)
    is ∫ρ from the box's left end, normalised to 1 at its right end; ``domain`` the
    normalised ends of the domain, and ``center``, ``half`` the piece's scaling of x."""

    grid: Tensor
    mass: Tensor
    domain: tuple[float, float]
    center: float
    half: float

    def centres(self, count: int) -> tuple[Tensor, Tensor]:
        """``count`` centres at the quantiles (i + ½)/count of the mass and the spacing
        around each (between the quantiles i/count and (i + 1)/count), normalised."""
        q = torch.arange(2 * count + 1, dtype=torch.float64) / (2 * count)
        x = _inverse(self.mass, self.grid, q)
        return x[1::2], x[2::2] - x[0:-1:2]

    def points(self, x: Points) -> Points:
        """Points ``x`` (physical; x first, time last) with x moved from equal spacing
        over the domain to equal mass of ρ over it; other coordinates kept."""
        if len(x) == 0:
            return x
        lo, hi = self.domain
        inside = (self.grid >= lo - 1e-12) & (self.grid <= hi + 1e-12)
        grid, mass = self.grid[inside], self.mass[inside]
        mass = (mass - mass[0]) / (mass[-1] - mass[0])
        grid = lo + (grid - grid[0]) * (hi - lo) / (grid[-1] - grid[0])  # ends exactly
        s = ((x[:, 0].double().cpu() - self.center) / self.half).clamp(lo, hi)
        moved = _inverse(mass, grid, (s - lo) / (hi - lo))
        y = x.clone()
        y[:, 0] = (self.center + self.half * moved).to(x)
        return y

    def apply(self, piece: GMNM) -> None:
        """Move ``piece``'s centres (see :func:`move`)."""
        move(piece, self)

    def batch(self, batch: Batch, problem: Problem) -> Batch:
        """``batch`` of ``problem`` with its interior points and its initial conditions'
        points moved (the points of a state carried over from the previous slab are
        moved where its values are taken, see :func:`~.march.slab_problem`)."""
        conditions = tuple(self.points(x) if isinstance(c, Initial) and not _carried(c)
                           else x for c, x in zip(problem.conditions, batch.conditions))
        return Batch(self.points(batch.interior), conditions)


def _carried(condition: Initial) -> bool:
    """Whether ``condition`` is a march's carried state (its points come with values)."""
    return getattr(condition, "values", None) is not None


def _inverse(mass: Tensor, grid: Tensor, q: Tensor) -> Tensor:
    """The grid coordinate where the increasing ``mass`` reaches ``q`` (linear in between)."""
    i = torch.searchsorted(mass.contiguous(), q.contiguous()).clamp(1, len(mass) - 1)
    m0, m1 = mass[i - 1], mass[i]
    w = ((q - m0) / (m1 - m0).clamp_min(1e-300)).clamp(0, 1)
    return grid[i - 1] + w * (grid[i] - grid[i - 1])


def thin_grid(piece: nn.Module) -> tuple[int, int] | None:
    """(k_s, k_t) when ``piece`` is a plain GMNM over (x, t) whose centres form a grid of
    k_s places along x by k_t along t; else None."""
    if not isinstance(piece, GMNM) or type(piece.layer) is not GMNMLayer:
        return None
    layer = piece.layer
    if layer.in_features != 2 or layer.projections != 2:
        return None
    means = layer.means.detach()
    ks, kt = len(torch.unique(means[:, 0])), len(torch.unique(means[:, 1]))
    return (ks, kt) if ks * kt == layer.components else None


def frame(piece: GMNM, spatial: tuple[float, float], mass: Tensor | None = None) -> Warp:
    """The :class:`Warp` of ``piece`` over the spatial interval ``spatial`` with the
    tabulated ``mass`` (None: uniform, the identity map)."""
    lo, hi = -1.0 - piece.margin, 1.0 + piece.margin
    center, half = piece.normalize.center[0], piece.normalize.half_width[0]
    grid = torch.linspace(lo, hi, FINE, dtype=torch.float64)
    if mass is None:
        mass = (grid - lo) / (hi - lo)
    domain = ((spatial[0] - center) / half, (spatial[1] - center) / half)
    return Warp(grid, mass.double().cpu(), domain, center, half)


def monitor_warp(piece: GMNM, spatial: tuple[float, float],
                 state: Callable[[Points], Tensor], times: Sequence[float]) -> Warp:
    """The :class:`Warp` of ``piece`` (a thin grid, see :func:`thin_grid`) over the
    spatial interval ``spatial`` for the slope of ``state`` (points (n, 2) → values
    (n, o)), the largest over ``times``."""
    ks, _ = thin_grid(piece) or (0, 0)
    warp = frame(piece, spatial)
    grid = warp.grid
    lo, hi = float(grid[0]), float(grid[-1])
    step = (hi - lo) / (FINE - 1)
    inside = (grid >= warp.domain[0] - 1e-12) & (grid <= warp.domain[1] + 1e-12)
    x = warp.center + warp.half * grid[inside]
    slope = torch.zeros(FINE, dtype=torch.float64)
    for t in times:
        with torch.no_grad():
            u = state(torch.stack([x, torch.full_like(x, t)], dim=1)).double().cpu()
        u = u.reshape(len(x), -1)
        if len(x) > 2:
            scale = (u.amax(dim=0) - u.amin(dim=0))  # each output's range
            du = torch.gradient(u[:, scale > 0] / scale[scale > 0], spacing=step, dim=0)[0]
            slope[inside] = torch.maximum(slope[inside], du.square().sum(dim=1).sqrt())
    spacing = (hi - lo) / max(ks, 1)
    reach = max(1, int(SMOOTH * spacing / step))  # the largest slope within SMOOTH spacings
    wide = torch.nn.functional.max_pool1d(slope[None, None], 2 * reach + 1, stride=1,
                                          padding=reach)[0, 0]
    n = max(1, int(4 * spacing / step))  # then graded over one spacing
    kernel = torch.exp(-0.5 * (torch.arange(-n, n + 1, dtype=torch.float64) * step / spacing) ** 2)
    smooth = torch.nn.functional.conv1d(wide[None, None], (kernel / kernel.sum())[None, None],
                                        padding=n)[0, 0]
    density = (RESOLVE * spacing * smooth).clamp(min=1.0, max=RATIO)
    density = torch.where(torch.isfinite(density), density, torch.ones_like(density))
    mass = torch.cat([density.new_zeros(1), torch.cumsum(0.5 * (density[1:] + density[:-1])
                                                          * step, 0)])
    return dataclasses.replace(warp, mass=mass / mass[-1])


def shift(piece: GMNM, warp: Warp) -> float:
    """How far ``warp`` would move the centres of ``piece``'s thin grid: the largest
    move, in units of the new local spacing."""
    shape = thin_grid(piece)
    assert shape is not None
    xs = torch.unique(piece.layer.means[:, 0].detach()).double().cpu()
    place, spacing = warp.centres(shape[0])
    return float(((place - xs).abs() / spacing).max())


@torch.no_grad()
def move(piece: GMNM, warp: Warp) -> None:
    """Place the k_s centres of ``piece``'s thin grid along x as ``warp`` says, each
    ``width_factor`` × its local spacing wide along x (their times and widths in time
    kept; the projections made diagonal, as the grid lays them out)."""
    shape = thin_grid(piece)
    assert shape is not None
    layer = piece.layer
    xs = torch.unique(layer.means[:, 0].detach())
    place, spacing = (v.to(layer.means) for v in warp.centres(shape[0]))
    rank = torch.searchsorted(xs.contiguous(), layer.means[:, 0].detach().contiguous())
    along_t = layer.proj[:, 1, 1].detach().clone()
    layer.proj.zero_()
    layer.means[:, 0] = place[rank].to(layer.means)
    layer.proj[:, 0, 0] = (1.0 / (piece.width_factor * spacing[rank])).to(layer.proj)
    layer.proj[:, 1, 1] = along_t


def slab_warp(problem: Problem, piece: nn.Module, state: nn.Module,
              times: Sequence[float]) -> Warp | None:
    """The warp by which ``piece``, a slab, moves its Gaussians and points to where the
    model ``state`` is steep at ``times``; None where slabs keep their layout (the piece
    is not a thin grid over one space dimension)."""
    if len(problem.spatial) != 1 or thin_grid(piece) is None:
        return None
    assert isinstance(piece, GMNM)
    p = next(state.parameters())
    return monitor_warp(piece, spatial_interval(problem), lambda x: state(x.to(p)), times)


def spatial_interval(problem: Problem) -> tuple[float, float]:
    """The ends of ``problem``'s spatial interval."""
    (a,), (b,) = problem.geometry.space.bbox
    return float(a), float(b)
