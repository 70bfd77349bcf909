"""A patch of narrow Gaussians placed where a slab's state is steep (two space dimensions).

The slabs of a Newton march in two space dimensions are a grid wide in space (see
:func:`~pinn_gmnm.models.slabs.slab_layout`), whose spacing a front or a layer narrower
than the Gaussians cannot be resolved by: ``burgers-2d``'s error sat at its front, about
0.02 wide, where the grid's 14 centres a side are 0.09 apart. Moving the whole grid, as a
1-D march does (:mod:`.moving`), starved the smooth part of the state (see
:data:`~pinn_gmnm.models.slabs.NEWTON_WIDTH`). So the grid keeps its equal spacing, two
centres a side fewer (12² for 14²), and the Gaussians freed (52 a time level) form a
*patch*: the nodes of a lattice three times finer than the grid where the state is
steepest, each Gaussian as many times narrower.

Where: the state the slab starts from (the previous slab's solution at t_k) is tabulated
on the lattice over the domain's box; each node scores the largest slope, over the nodes
within ``REACH`` of it, of the outputs scaled by their ranges, ‖(∇u_j) / range(u_j)‖; the
nodes inside the domain with the highest scores take the patch's Gaussians, at every time
level of the slab; ties (a plateau of the pooled score, as along a ring) go in a seeded
random order, not in the lattice's, which had favoured one side of a ring. The first
slab's patch stays at the centre of the domain, where the layout puts it: the initial
state's slope does not say where fronts will form (placed by it, ``burgers-2d``'s first
patch went to the rim of its bump, the slab was left unsolved and halved twice, and the
march came out at 1.7e-2). Scored by a node's own slope added to the pooled one (the
steepest nodes first), the patch lined the edges of ``burgers-2d``'s boundary layers and
the run came out at 1.8e-2 against 1.1e-2 (60 s, one run each). The slab's points follow
(each patch node gets its share of the residual rows within its lattice cell): ``ROWS``
interior points a node and time level in place of as many of the uniform ones (the count
is kept: Newton's features at more points would not fit the feature cache), ``ROWS``
points of the initial slice a node, and boundary points near the nodes that lie at the
boundary, where a layer needs its condition met. The head then starts as the least-squares
fit of the state the slab starts from (as a moved 1-D slab's).

Measured (2026-12-02/03, 2-core CPU, alone), the best least-squares fit of
``burgers-2d``'s state (method of lines on 128² cells) by the spatial Gaussians of one
time level, 14² against 12² and a patch of 52: t = 0: 2.4e-5 against 3.6e-5; t = 0.3:
3.3e-3 / 2.2e-3; t = 0.6: 1.8e-2 / 6.3e-3; t = 1: 8.0e-3 / 3.5e-3 (14² and a patch of 96,
3.2e-3 at t = 0.6; 17², as many Gaussians, 6.5e-3). The default march with the patch, 60
s, against it without (2026-12-03, the same machine, alone, one run each): ``burgers-2d``
1.12e-2 against 1.54e-2 (max error 5.6e-2 against 0.25; 1.07e-2 and 1.14e-2 in two runs of
earlier drafts), ``fisher-2d`` 2.0e-3 against 1.7e-2. ``burgers-2d``'s error still grows
once its front forms (t = 0.2: 1.4e-3, t = 0.6: 2.0e-2, as without the patch), where its
march, halving slabs, runs out of the budget after t = 0.5 (its later slabs get a step or
two each).

Where the gains come from, and what it costs (2026-12-03, 60 s, alone, one run each unless
said): on an untuned Allen–Cahn problem in two space dimensions (u_t = 10⁻³ Δu + u − u³ on
[0, 1]² × [0, 1], u = 0 on the edges, u_0 = ½ sin 2πx sin 2πy, against a method-of-lines
reference) the patch loses: 4.1e-3 and 3.9e-3 against 2.6e-3 and 2.4e-3 without it (seeds
0 and 1). Its interfaces and layers (a cross and four edges) are longer than 52 lattice
nodes cover, and each slab costs about 0.6 s more (the head's fit, the patch's placing),
so the march ends its last slabs short. Variants measured to find out why: the grid of 14²
kept with the patch's points and the fitted start but no narrow Gaussians, ``fisher-2d``
1.9e-3 and Allen–Cahn 4.4e-3 (so ``fisher-2d``'s gain is its points and its start, not the
narrow Gaussians); the fitted start alone, ``fisher-2d`` 2.3e-3, ``burgers-2d`` 2.6e-2
(its gain needs the narrow Gaussians) and Allen–Cahn 0.54 (its slabs as good as without
the patch, 2e-3 to 3e-3, but the march slower: the budget ended it before its last slab,
left untrained, since held, see :meth:`~.march.March._hold`). Choosing per slab between
the patch and the grid of 14² by which represents the starting state better (a
least-squares fit at uniform points) chose the grid in every slab of all three problems
and made every march slower: ``fisher-2d`` 0.61 (its last slabs untrained), ``burgers-2d``
3.2e-2 (the state held still is not what the slab has to resolve). Not landed; what would
decide between a patch and more grid per slab is left open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._types import Points
from ..conditions import Condition, Initial
from ..geometry import SpaceTime
from ..models.slabs import PatchShape
from ..problem import Problem
from ..sampling import Sobol
from .batch import Batch

REACH = 2
"""A lattice node scores the largest slope within this many lattice steps of it."""

BOUNDARY_DRAW = 64
"""Boundary points drawn a patch node, of which those near a node are kept."""


@dataclass(frozen=True)
class Patch:
    """Where a slab's patch goes: ``centres`` (count, s) in physical space, on a lattice
    of ``step`` (s,) a step per axis; ``interior`` and ``initial``, the points the slab
    adds about them (interior, on the initial slice); ``boundary``, the boundary points
    near them."""

    shape: PatchShape
    centres: Tensor
    step: Tensor
    interior: Points
    initial: Points
    boundary: Points

    def points(self, x: Points) -> Points:
        """The initial slice's points ``x`` with the patch's."""
        return torch.cat([x, self.initial.to(x)])

    def batch(self, batch: Batch, problem: Problem) -> Batch:
        """``batch`` of the slab ``problem`` with the patch's points: its interior points
        in place of as many uniform ones, its boundary points for every condition that
        selects from the shared boundary sample, its initial points for the initial
        conditions that draw their own (the carried states have them, see :meth:`points`)."""
        keep = max(len(batch.interior) // 2, len(batch.interior) - len(self.interior))
        interior = torch.cat([batch.interior[:keep], self.interior.to(batch.interior)])
        conditions = []
        for c, x in zip(problem.conditions, batch.conditions):
            if isinstance(c, Initial):
                if getattr(c, "values", None) is None:  # not a carried state
                    x = torch.cat([x, c.select(problem.geometry, self.initial.to(x))])
            elif type(c).sample is Condition.sample and len(self.boundary):
                x = torch.cat([x, c.select(problem.geometry, self.boundary.to(x))])
            conditions.append(x)
        return Batch(interior, tuple(conditions))

    @torch.no_grad()
    def apply(self, piece: nn.Module) -> None:
        """Place ``piece``'s patch Gaussians at the centres, at every time level."""
        layer = piece.layer  # type: ignore[union-attr]
        center = torch.tensor(piece.normalize.center[:-1], dtype=torch.float64)  # type: ignore[union-attr]
        half = torch.tensor(piece.normalize.half_width[:-1], dtype=torch.float64)  # type: ignore[union-attr]
        place = ((self.centres - center) / half).to(layer.means)
        s = self.shape
        for j in range(s.levels):
            rows = slice(s.first + j * s.count, s.first + (j + 1) * s.count)
            layer.means[rows, :-1] = place


def steep_patch(problem: Problem, piece: nn.Module, state: Callable[[Points], Tensor],
                times: tuple[float, float], *, rows: int, seed: int) -> Patch | None:
    """Where the patch of ``piece`` (a slab's GMNM over [t0, t1] = ``times`` laid out with
    one, see :func:`~pinn_gmnm.models.slabs.slab_layout`) goes for the state ``state``
    (points (n, d) → (n, o), evaluated at t0), with ``rows`` points a node (see the module
    docstring); None for a piece without a patch."""
    shape = getattr(piece, "patch_shape", None)
    if shape is None:
        return None
    space = problem.geometry.space  # type: ignore[attr-defined]
    t0, t1 = times
    lo, hi = (torch.tensor(v, dtype=torch.float64) for v in space.bbox)
    half = torch.tensor(piece.normalize.half_width[:-1], dtype=torch.float64)  # type: ignore[union-attr]
    step = shape.step * half
    axes = [torch.arange(float(a) + float(h) / 2, float(b), float(h), dtype=torch.float64)
            for a, b, h in zip(lo, hi, step)]
    grid = [len(a) for a in axes]
    nodes = torch.cartesian_prod(*axes).reshape(-1, len(axes))
    at = torch.cat([nodes, torch.full((len(nodes), 1), t0, dtype=torch.float64)], dim=1)
    with torch.no_grad():
        u = state(at).double().cpu().reshape(len(nodes), -1)
    slope = torch.zeros(len(nodes), dtype=torch.float64)
    for j in range(u.shape[1]):
        v = u[:, j].reshape(grid)
        scale = float(v.amax() - v.amin())
        if min(grid) > 1 and scale > 0:
            parts = torch.gradient(v / scale, spacing=[float(h) for h in step])
            slope += sum(p.square() for p in parts).reshape(-1)
    inside = space.inside(nodes)
    slope = torch.where(inside & torch.isfinite(slope), slope.sqrt(), torch.zeros_like(slope))
    wide = torch.nn.functional.max_pool2d(slope.reshape(1, 1, *grid), 2 * REACH + 1, stride=1,
                                          padding=REACH).reshape(-1)
    score = torch.where(inside, wide, torch.full_like(wide, -1.0))
    gen = torch.Generator().manual_seed(seed)
    shuffled = torch.randperm(len(nodes), generator=gen)  # ties in no favoured direction
    order = shuffled[torch.argsort(score[shuffled], descending=True, stable=True)]
    centres = nodes[order[:shape.count]]

    def around(n: int) -> Points:  # n points in each centre's lattice cell, inside
        x = centres.repeat_interleave(n, 0)
        x = x + (torch.rand(x.shape, generator=gen, dtype=torch.float64) - 0.5) * step
        return x[space.inside(x)]

    x = around(rows * shape.levels)
    interior = torch.cat([x, t0 + (t1 - t0) * torch.rand(len(x), 1, generator=gen,
                                                          dtype=torch.float64)], dim=1)
    x = around(rows)
    initial = torch.cat([x, torch.full((len(x), 1), t0, dtype=torch.float64)], dim=1)
    g = SpaceTime(space, (t0, t1))  # the slab's boundary
    drawn = g.sample_boundary(BOUNDARY_DRAW * len(centres), Sobol(), seed)
    gap = ((drawn[:, None, :-1] - centres[None]).abs() / step).amax(dim=-1)
    near = gap <= 1.0
    border = int(near.any(dim=0).sum())  # patch nodes at the boundary
    boundary = drawn[near.any(dim=1)][:rows * shape.levels * border]
    return Patch(shape, centres, step, interior, initial, boundary)
