"""Adaptive growth: narrower Gaussians where the residual is largest (greedy adaptive RBF).

One fixed width cannot serve a solution with a front of width 1e-2 and smooth parts: broad
Gaussians smear the front, narrow ones everywhere cost more unknowns than there are
equations. :class:`Grow` starts from the model's least-squares solution and repeats

1. find the training points where the weighted residual |r_i| is largest (for a fit: the
   training error u(x_i) − f(x_i)); keep the largest peaks no closer than the new width
   to each other;
2. add a Gaussian at each, isotropic, half as wide as the narrowest Gaussian already
   covering that point (within one standard deviation): each round refines by a factor
   of two where it is needed, a multiscale mixture;
3. re-solve the output layer by least squares, and remove Gaussians whose share of the
   fit |θ_i| ‖J_i‖ is negligible (below ``prune`` × the fitted function's size ‖J θ‖);
4. check the loss on held-out collocation points (another seed, as
   :class:`~.heldout.HeldOut` draws them): after ``patience`` rounds without a new best,
   go back to the best mixture and stop;

until the held-out residual is below ``tol`` relative to the zero function's (an
error indicator under its tolerance: smooth problems solved to rounding never grow),
the unknowns reach the equations (``oversampling``: never more unknowns than
equations / ``oversampling``), ``rounds`` rounds, or the budget (a round starts only when
its solve, predicted from the last one's, fits in the time left). The loss terms are
equilibrated once, at the start, and kept: every round solves the same objective.

**Local growth of a PDE** (``local``, the default for a PDE with conditions, not an inverse
problem, in one process). A Gaussian narrower than the spacing of the collocation points
is pinned only at the few points under it, and the residual rises between them: without
more points, growth on ``poisson-holes`` stopped after three rounds at 2.7e-3. So each new
Gaussian brings its own points — 2 × 2^d interior points (at most ``LOCAL_POINTS``)
uniform in the box of half-side its width around its centre, and each pointwise
condition's points in that box from a dense draw along the boundary — and the rounds
resolve what they add. The held-out check then weighs each residual by its row of the
linear system, r_i / ‖∂r_i/∂θ_head‖ (``HeldOut(per_row=True)``; about σ² |r_i| for the
Laplacian of Gaussians of local width σ): the plain residual of a narrow Gaussian's
second derivatives grows like 1/σ² and would call every finer round a rise.

**Uniform refinement.** A PDE is refined uniformly once before it grows locally (the
samples of a fit are its data and are never added to; an inverse problem's coefficient
stage ran for minutes on the refined rows; with ``local`` off, when local growth stops):
``REFINE_POINTS`` times the collocation points, drawn afresh with the same sampler, and
as many Gaussians as keep ``REFINE_OVERSAMPLING`` equations per unknown
(:func:`~pinn_gmnm.models.layout.default_components` without its caps), spread over the
domain and its margin (:meth:`~pinn_gmnm.models.GMNM.respread`) at each width of
``REFINE_WIDTHS`` in turn, each with its own term scales (equilibrated for the finer
features: with the coarse level's, the PDE rows of Gaussians three times narrower
outweighed the boundary rows ~80 times) and re-solved. The broadest width is kept unless
a narrower one lowers the held-out residual ``NARROWER_GAIN`` times more, and the level
is kept when it is below the coarse level's (otherwise the mixture, the points and the
weights go back). At most ``refinements`` times, and only while the next solve fits in the
time left (predicted from the last one's: its factorisations scaled by their flops, the
rest by rows × columns, with a margin: :meth:`Grow.refine_seconds`, ``REFINE_MARGIN``)
and its matrices in half the free memory. Measured at 60 s (2-core CPU), refinement first
and local growth after it, against local growth without points first and refinement when
it stopped: ``poisson-holes`` 3.0e-5 → 5.4e-6, ``poisson-3d`` 2.7e-5 → 8.0e-6, ``poisson-5d`` 1.8e-5 → 9.0e-6,
``heat-2d`` 7.1e-4 → 5.8e-4 (its slabs), ``poisson-lshape`` 2.0e-2 → 2.5e-2 (below); on
a user's convection–diffusion problem on a hexagon with a bump of width ~0.03 (none of
these settings tuned for it) 2.0 → 2.0e-2, on a Poisson problem in a ball with a bump near
the sphere 4.7e-2 → 6.4e-2 (its max error 4.1e-2 → 3.1e-2).

A slab of a time march keeps its layout when refined (:meth:`~.march.SlabTask.respread`: the slab's
share of centres along time, :func:`~pinn_gmnm.models.slabs.slab_layout`), and the widths
tried start from the one its first solve kept (:meth:`Grow.choose_width`). Spread as an
isotropic grid over the slab's box instead, a slab 1/128 of the interval long got as many
centres along time as along each axis of space: with a budget that let slabs refine
(240 s, 2-core CPU, alone), ``advection-diffusion-2d`` came out at 3.2e-2, worse than at
60 s (1.9e-2), its refined slabs' error 5e-2 at t = 0 where the unrefined ones had
2.7e-2; keeping the layout, 1.1e-2, and starting from the width kept, 1.4e-3 (FEM's
2.8e-3, the PINN's 1.0e-2 at 60 s). ``heat-2d`` at 240 s: 1.9e-5 → 3.7e-5 on the
evaluation grid, all of it at the t = 0 level (2.4e-5 → 5.7e-5); inside the first slabs
and after them the error fell (t = 0.0078: 6.4e-5 → 2.1e-5, t = 0.05: 1.6e-5 → 3.8e-6).
At 60 s neither refines (the refined solve does not fit in a slab's share).

The held-out residual is an error indicator, not the error. At the re-entrant corner of
``poisson-lshape`` the error of a least-squares fit is mostly the wrong multiple of the
corner's singular function, which the residual away from the corner does not see: a
refined level lowered the held-out residual 80 times while the error rose from 1.9e-2 to
3.0e-2, and growth, a level per round towards the corner, stayed at 2e-2 in 60 s. So a
domain's re-entrant corners are graded from the start (``corners``, :mod:`.corners`):
rings of Gaussians and points down to ~1e-3 of the corner's edges, and that task's rows
solved at equal norms. ``poisson-lshape`` at 60 s: 2.5e-2 → 7.7e-5.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..errors import GMNMError, require_positive
from ..models.gmnm import GMNM, GMNMLayer
from ..models.layout import default_components, even_count
from .batch import Collocation, sample_batch
from .corners import (add_corner_gaussians, add_corner_points, corner_gaussians, corner_points,
                      grades)
from .heldout import HeldOut, row_norms
from .linear import check_affine, check_linear, equilibrated_fit, fit_head, linear_head
from .lsq import linear_system, lstsq_cost, solve_lstsq
from .stages import Stage, _check_steps, step_limit
from .task import Task


REFINE_SEED = 6007
"""A refinement's points are drawn with the run's seed plus this × its level (a prime:
no overlap with the training and held-out seeds)."""

REFINE_POINTS = 4
"""A refinement multiplies the collocation points by this."""

REFINE_OVERSAMPLING = 4.0
"""Equations per unknown of a refined layout (the initial layout keeps 2)."""

REFINE_WIDTHS = (1.0, 0.5)
"""The width factors a refined layout tries, relative to the model's, in this order while
the budget allows; the held-out residual picks. Half the width resolved the curved rims of
``poisson-holes`` (9600 equations, 2304 Gaussians: 3e-5, against 3.8e-4 at the model's
width), while in 3D the model's width is the better one (``poisson-3d``, 2197 Gaussians:
2.0e-5 at it; at half of it the held-out residual rose 2.5e4 times)."""

REFINE_MARGIN = 1.25
"""A refinement runs only when ``REFINE_MARGIN`` × its predicted seconds
(:meth:`Grow.refine_seconds`) fit in the time left: the predictions came out 0.77 to 1.04
times the solves they predicted (``benchmarks/refine_time.py``, 60 s, 2-core CPU), and one
that runs over takes its time from what follows (a march's later slabs)."""


LOCAL_SEED = 4001
"""Points added under a round's Gaussians are drawn with the run's seed plus this ×
the round (a prime, like :data:`REFINE_SEED`)."""

LOCAL_POINTS = 16
"""Interior points added under each new Gaussian at most: 2 × 2^d in 1-3 dimensions (in
the box of half-side its width around its centre: spacing about half its width), this
many beyond (2^d grows faster than a round's solve can afford)."""

BOUNDARY_CANDIDATES = 50_000
"""At most this many boundary points are drawn to find each condition's points under the
new Gaussians (a spacing of half the width down to widths of ~3e-4 on a unit square's
perimeter; coarser beyond)."""


def system_fits(rows: int, cols: int, x: Tensor) -> tuple[bool, int]:
    """Whether a least-squares system of ``rows`` × ``cols`` fits in half the free memory
    of ``x``'s device, and the bytes it takes: J, the copy its QR or column scaling works
    on, U and Vh, four matrices of its size (True when the machine does not say)."""
    from ..memory import available_memory  # memory imports the stages

    needed = 4 * rows * cols * x.element_size()
    memory = available_memory(x.device)
    return memory is None or needed <= memory[0] // 2, needed


def under(x: Tensor, centres: Tensor, widths: Tensor, rows: int = 4096) -> Tensor:
    """Which points ``x`` lie in the box of half-sides ``widths[i]`` (one, or one per
    axis) around some ``centres[i]``, in pieces of ``rows`` points."""
    if len(x) == 0:
        return torch.zeros(0, dtype=torch.bool, device=x.device)
    half = per_axis(widths, x.shape[1])
    return torch.cat([((piece[:, None, :] - centres[None]).abs() <= half[None])
                      .all(dim=2).any(dim=1) for piece in x.split(rows)])


def per_axis(widths: Tensor, d: int) -> Tensor:
    """Widths (n,) or (n, d) as (n, d): one width serves every axis."""
    return widths[:, None].expand(-1, d) if widths.ndim == 1 else widths


def local_points(task: Task, centres: Tensor, widths: Tensor, seed: int
                 ) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Collocation points under new Gaussians (``centres`` (n, d) and ``widths`` (n,) or
    (n, d) per axis, normalised): 2 × 2^d interior points per Gaussian (at most ``LOCAL_POINTS``), uniform in the box
    of half-side its width around its centre, those in the domain; and each pointwise
    condition's points in those boxes, from a draw of its points dense enough for a
    spacing of about half the narrowest width along the boundary, keeping at most 4^(d−1)
    per Gaussian and condition (at most ``LOCAL_POINTS``: what a flat face across its box
    holds at that spacing), taken at random from those found. The draw's spacing follows
    the narrowest axis of the normalisation, so on a thin time slab it is far denser along
    the others: uncapped, the first slab of ``heat-2d`` found 76 591 points under 98
    Gaussians, and its round took 10 s of the run's 60 (1.5 s capped, the error unchanged).
    Periodic and data conditions get none: their points are paired or given."""
    loss, model = task.loss, task.model
    assert isinstance(model, GMNM)
    problem, x = loss.problem, loss.batch.interior
    g = problem.geometry
    n, d = centres.shape
    centres, widths = centres.detach().cpu(), widths.detach().cpu()  # drawn on the CPU
    c = torch.tensor(model.normalize.center, dtype=torch.float64)
    h = torch.tensor(model.normalize.half_width, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(n, min(2 * 2**d, LOCAL_POINTS), d, generator=gen, dtype=torch.float64) * 2 - 1
    widths = per_axis(widths.double(), d)
    box = centres.double()[:, None, :] + u * widths[:, None, :]
    interior = (c + h * box).reshape(-1, d)
    interior = interior[g.inside(interior)]
    conditions = [x[:0].double().cpu()] * len(problem.conditions)
    if problem.conditions and task.collocation is not None:
        spacing = 0.5 * float((widths * h).min())
        wanted = g.boundary_measure / spacing ** max(d - 1, 0)
        count = int(min(BOUNDARY_CANDIDATES, max(task.collocation.boundary, wanted)))
        dense = sample_batch(problem, Collocation(1, count, task.collocation.sampler), seed + 1)
        cap = n * min(4 ** max(d - 1, 0), LOCAL_POINTS)
        for i, (cond, xs) in enumerate(zip(problem.conditions, dense.conditions)):
            if not cond.pointwise:
                continue
            xs = xs[under(model.normalize(xs), centres.double(), widths)]
            if len(xs) > cap:  # a draw made dense for a thin axis
                xs = xs[torch.randperm(len(xs), generator=gen)[:cap].sort().values]
            conditions[i] = xs
    move = lambda t: t.to(device=x.device, dtype=x.dtype)  # noqa: E731
    return move(interior), tuple(map(move, conditions))


def refinement_points(task: Task, level: int, scale: int) -> Tensor:
    """Give the task's loss the collocation points of refinement ``level``: ``scale`` ×
    the run's counts, drawn with the level's own seed (level 0, scale 1: the run's own
    draw). Returns all of them, every rank's (interior, then each condition's)."""
    loss, c = task.loss, task.collocation
    assert c is not None
    x = loss.batch.interior
    finer = Collocation(c.interior * scale, c.boundary * scale, c.sampler)
    batch = sample_batch(loss.problem, finer, task.seed + REFINE_SEED * level)
    loss.batch = batch.shard(loss.parallel).to(x.dtype, x.device)
    return loss.parallel.gather_rows(torch.cat([loss.batch.interior, *loss.batch.conditions]))


COARSER = 0.7
"""The coarser layout of :meth:`Grow.convergence_order`: this × the Gaussians along each
axis (a 10³ layout against 7³)."""

NARROWER_GAIN = 0.5
"""A refinement keeps a narrower width of :data:`REFINE_WIDTHS` only when its held-out
residual is below this × the broader one's: at the re-entrant corner of
``poisson-lshape`` both lowered it alike (1.59e-7 at half the width, 1.62e-7 at the
model's) while the error was 0.12 against 3.0e-2; on the curved rims of ``poisson-holes``
half the width is 18 times lower (2.1e-5 against 4.3e-4)."""


def preferred_width(ratios: list[float]) -> int:
    """Which of the widths tried (broadest first) a refinement keeps, from their held-out
    residuals relative to the coarse level's: the broadest, unless a narrower one is below
    ``NARROWER_GAIN`` × the one kept so far."""
    kept = 0
    for i, r in enumerate(ratios[1:], start=1):
        if r < NARROWER_GAIN * ratios[kept]:
            kept = i
    return kept


def residual_points(task: Task) -> tuple[Tensor, Tensor]:
    """Every training point with the magnitude of its weighted residual (the residual
    scaled as its row of the least-squares system is: √(w_t / n_t) |r_t,i|, or with the
    loss's ``equal_rows`` √(u_t / n_t) |r_t,i| / ‖∂r_t,i/∂θ_head‖): points (N, d),
    magnitudes (N,), every rank's (so that all ranks grow the same Gaussians)."""
    loss = task.loss
    with torch.no_grad():
        rs = loss.residuals(task.model)
    n_pde = len(rs) - len(loss.problem.conditions)
    xs = [loss.batch.interior] * n_pde + list(loss.batch.conditions)
    if loss.equal_rows:
        mags = [r.abs() * math.sqrt(u / c) / n for r, u, c, n in zip(
            rs, loss.user_weights, loss.counts, row_norms(loss, task.model))]
    else:
        mags = [r.abs() * math.sqrt(w / c) for r, w, c in zip(rs, loss.weights, loss.counts)]
    gather = loss.parallel.gather_rows
    return gather(torch.cat(xs)), gather(torch.cat(mags)[:, None])[:, 0]


def peaks(x: Tensor, score: Tensor, count: int, radius: Tensor) -> Tensor:
    """Indices of up to ``count`` points of largest ``score``, greedily, each farther than
    its own ``radius`` (max-norm) from every point picked before it."""
    order = torch.argsort(score, descending=True)
    picked: list[int] = []
    for i in order.tolist():
        if len(picked) >= count:
            break
        if picked:
            dist = (x[picked] - x[i]).abs().amax(dim=1)
            if bool((dist <= radius[i]).any()):
                continue
        picked.append(i)
    return torch.tensor(picked, dtype=torch.long)


def add_at_peaks(task: Task, count: int, *, points: bool) -> tuple[Tensor, int]:
    """Step 1 and 2 of a round (see the module docstring): up to ``count`` Gaussians at the
    peaks of the weighted residual, each half as wide as the narrowest one covering its
    place, with mixing weights 0 (the function is unchanged); with ``points``, each brings
    collocation points of its own (:func:`local_points`, the loss's batch extended).
    Widths and distances are those of the model's layout, round in its common unit
    (:attr:`~pinn_gmnm.models.GMNM.aspect`). Returns the new Gaussians' widths (in that
    unit) and the points added."""
    model = task.model
    assert isinstance(model, GMNM)
    layer = model.layer
    x, score = residual_points(task)
    x = model.normalize(x)
    aspect = model.aspect_like(x)
    widths = child_widths(model, x)
    chosen = peaks(x * aspect, score, count, widths)
    sigma = widths[chosen]
    d, k = layer.in_features, layer.projections
    if k == d:
        proj = torch.eye(d, dtype=sigma.dtype, device=sigma.device).expand(
            len(chosen), d, d) / sigma[:, None, None]
    else:
        proj = torch.randn(len(chosen), k, d, dtype=sigma.dtype).to(sigma.device) / (
            sigma[:, None, None] * math.sqrt(k))
    layer.add_components(x[chosen], proj * aspect.to(proj))
    task.sync_params()
    if not points:
        return sigma, 0
    loss = task.loss
    interior, conditions = local_points(task, x[chosen], sigma[:, None] / aspect.to(sigma),
                                        task.seed + LOCAL_SEED * (task.step + 1))
    loss.batch = loss.batch.extended(interior, conditions)
    return sigma, len(interior) + sum(len(c) for c in conditions)


def local_rows(count: int, d: int) -> int:
    """The rows ``count`` Gaussians with points of their own add at most: their interior
    points and about 2d boundary points each."""
    return count * (min(2 * 2**d, LOCAL_POINTS) + 2 * d)


Snapshot = tuple[dict[str, Tensor], list[float] | None]
"""A mixture's parameters and its loss's term scales (:func:`snapshot`)."""


def snapshot(task: Task) -> Snapshot:
    """The mixture's parameters and the loss's term scales, to go back to."""
    return copy.deepcopy(task.model.state_dict()), task.loss.weights_state()


def restore(task: Task, saved: Snapshot) -> None:
    """Put back a :func:`snapshot` (the term scales too, when it has them)."""
    state, weights = saved
    task.model.load_state_dict(state)
    task.sync_params()
    if weights is not None:
        task.loss.load_weights_state(weights)


def child_widths(model: GMNM, x: Tensor) -> Tensor:
    """For points ``x`` (normalised), half the width σ of the narrowest Gaussian whose
    one-σ ellipsoid holds the point (of the narrowest overall where none does), and at
    most the spacing of the initial layout (its widths are ``width_factor`` × that
    spacing, broad for conditioning: refinement starts at the spacing itself). Widths
    are in the layout's common unit (:attr:`~pinn_gmnm.models.GMNM.aspect`)."""
    layer = model.layer
    with torch.no_grad():
        q = layer.mahalanobis(x.to(layer.means))  # (n, m)
        aspect = model.aspect_like(q)
        diagonal = layer.precision().diagonal(dim1=1, dim2=2) / aspect**2
        sigma = (layer.in_features / diagonal.sum(1)).sqrt()
        covering = torch.where(q <= 1.0, sigma[None, :], torch.full_like(q, math.inf))
        narrowest = covering.amin(dim=1)
        narrowest = torch.where(torch.isfinite(narrowest), narrowest, sigma.min())
    return torch.minimum(0.5 * narrowest, sigma.max() / model.width_factor)


def coarser_count(m: int, sides: Sequence[float]) -> int | None:
    """The Gaussians of :meth:`Grow.convergence_order`'s coarser layout on an elongated box
    of ``sides``: the largest even grid (:func:`~pinn_gmnm.models.layout.even_count`) of at
    most ``COARSER``^d × m, or where there is none (on the 4 × 1 plate of a space-time
    block, 17 × 5 × 9 = 765 has no even grid below 364), of at most 1.25, 1.25², …
    times that, below m (None when none is)."""
    most = round(COARSER ** len(sides) * m)
    count = even_count(most, sides, 2)
    while count is None and most < m - 1:
        most = min(m - 1, math.ceil(1.25 * most))
        count = even_count(most, sides, 2)
    return count


@dataclass(frozen=True)
class Grow(Stage):
    """Grow a GMNM where the residual is largest, re-solving by least squares (see the
    module docstring). ``steps``: rounds (None: until the budget, the equations or the
    held-out check stop it); ``fraction``: Gaussians added per round, as a fraction of the
    current count; ``oversampling``: equations per unknown kept at least; ``prune``:
    relative share below which a Gaussian is removed; ``patience``: rounds the held-out
    loss may fail to improve before the stage stops and goes back to the best mixture;
    ``tol``: no growth once the held-out residual is below ``tol`` × that of the zero
    function (a solution already at that level, as on smooth problems, costs one
    evaluation); ``refinements``: uniform refinements (four times the points) at most,
    the first before local growth when it is ``local``, else when local growth stops (0:
    none); ``local``: a PDE's new Gaussians bring collocation points of their own and the
    held-out check weighs residuals by their rows (see the module docstring); ``corners``:
    with ``local``, the mixture and the points are graded towards the domain's re-entrant
    corners from the start, and the rows solved at equal norms (:mod:`.corners`);
    ``widths``: the factors on every Gaussian's width the first solve tries, the first the
    layout's own (1), the one with the lowest held-out residual kept (see
    :meth:`choose_width`; the default march's slabs try two). Linear problems and GMNM
    models only. Every round is recorded (``grow``) with a ``grew``
    event: Gaussians and points added, Gaussians removed, their width, and the held-out
    loss."""

    steps: int | None = None
    fraction: float = 0.1
    oversampling: float = 1.0
    prune: float = 1e-10
    patience: int = 2
    tol: float = 1e-6
    rcond: float | None = None
    equilibrate: bool = True
    refinements: int = 1
    local: bool = True
    corners: bool = True
    widths: tuple[float, ...] = (1.0,)
    kind: ClassVar[str] = "grow"

    def __post_init__(self) -> None:
        _check_steps("grow steps", self.steps, open_ended=True)
        require_positive("grow fraction", self.fraction)
        require_positive("grow oversampling", self.oversampling)
        require_positive("grow tol", self.tol)
        for name in ("patience", "refinements"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise GMNMError(f"grow {name} must be a whole number >= 0, got {v!r}")
        if not 0 <= self.prune < 1:
            raise GMNMError(f"grow prune must be in [0, 1), got {self.prune!r}")
        widths = tuple(float(w) for w in self.widths)
        if not widths or widths[0] != 1.0 or not all(w > 0 and math.isfinite(w) for w in widths):
            raise GMNMError("grow widths must be positive width factors, the first 1 (the "
                            f"layout's own), got {self.widths!r}")
        object.__setattr__(self, "widths", widths)

    def run(self, task: Task) -> None:
        if self.steps == 0:
            return
        model = task.model
        if not isinstance(model, GMNM):
            raise GMNMError(f"stage 'grow' grows a GMNM, not a {type(model).__name__}; "
                            "use lstsq or varpro for this model")
        check_linear(task.loss.problem)
        held_out = self.held_out(task)
        state = task.resumed()
        if state is None:
            state = self.start(task, held_out)
        task.loss.equal_rows = bool(state.get("graded"))  # (a resumed task's too)
        while state["round"] < step_limit(self.steps) and not task.out_of_time():
            if self.solved(state):
                task.events.append({"event": "grow stop", "stage": self.kind, "step": task.step,
                                    "reason": "held-out residual below tol",
                                    "held_out": state["best"]})
                break
            if self.grows_locally(task) and state["round"] == 0 and state["level"] == 0:
                task.evaluate_loss()  # (refine sizes its level by the rows)
                if self.refined(task, state, held_out):  # refine first, then grow locally
                    continue
            task.evaluate_loss()  # counts the rows (after a resume or a refinement too)
            equations = sum(task.loss.counts)  # rows of the linear system, every rank's
            limit = math.floor(equations / self.oversampling) // task.loss.problem.n_outputs - 1
            room = limit - model.layer.components
            count = min(room, max(1, math.ceil(self.fraction * model.layer.components)))
            if count <= 0:
                if self.refined(task, state, held_out):
                    continue
                task.events.append({"event": "grow stop", "stage": self.kind, "step": task.step,
                                    "reason": "unknowns reached the equations"})
                break
            # the last round's time, × (columns' growth)² × rows' (local growth adds both)
            grown = (model.layer.components + count) / model.layer.components
            power = 3 if self.grows_locally(task) else 2
            predicted = (state["solve_s"] * grown ** power
                         + state.get("other_s", 0.0) * grown ** (power - 1))
            if predicted > task.clock.left():  # (a slab's clock: its share of it)
                task.events.append({"event": "grow stop", "stage": self.kind, "step": task.step,
                                    "reason": "the next solve would overrun the budget"})
                break
            if not self.fits_in_memory(task, count):
                task.events.append({"event": "grow stop", "stage": self.kind, "step": task.step,
                                    "reason": "the next solve would not fit in memory"})
                break
            if state["idle"] == 0:  # the best mixture so far: where a stop goes back to
                state["kept"] = copy.deepcopy(model.state_dict())
            start = time.perf_counter()
            event = self.grow_once(task, count)
            now = held_out.value(task) if held_out is not None else math.nan
            state["solve_s"] = state["factor_s"] = time.perf_counter() - start
            state["other_s"] = 0.0  # (grow_once's features and solve, timed as one)
            event["held_out"] = now
            task.events.append(event)
            if held_out is not None and not now < state["best"]:  # NaN counts as a rise
                state["idle"] += 1
                if state["idle"] > self.patience:
                    model.load_state_dict(state["kept"])
                    task.sync_params()
                    state["idle"] = 0
                    if self.refined(task, state, held_out):
                        continue
                    state["idle"] = self.patience + 1
                    task.events.append({"event": "grow stop", "stage": self.kind,
                                        "step": task.step, "reason": "held-out loss rose",
                                        "held_out": now, "held_out_best": state["best"]})
                    break
            else:
                state["best"], state["idle"] = now, 0
            self.after_round(task, state)
        if state["idle"] and held_out is not None:  # out of rounds or time after a rise
            model.load_state_dict(state["kept"])
            task.sync_params()
            state["idle"] = 0

    def start(self, task: Task, held_out: HeldOut | None = None) -> dict[str, Any]:
        """Round 0: equilibrate, solve the head by least squares once, and measure the
        held-out residual (``held_out``, or the task's own when None); the stage's state
        (a safe point is offered with it). :meth:`solved` says whether growth is needed."""
        check_linear(task.loss.problem)
        if held_out is None:
            held_out = self.held_out(task)
        graded = self.grades(task)
        components = task.model.layer.components
        corner_points = self.grade(task) if graded else 0
        corner_gaussians = task.model.layer.components - components
        head = linear_head(task.model)
        check_affine(task.loss, task.model, head)
        start = time.perf_counter()
        solve_s, factor_s = self.solve(task, equilibrate=True)
        best = held_out.value(task) if held_out is not None else math.nan
        other_s = time.perf_counter() - start - solve_s
        width = 1.0
        if len(self.widths) > 1 and held_out is not None and not graded and \
                type(task.model.layer) is GMNMLayer:  # (a plain layer's W can be scaled)
            best, solve_s, factor_s, other_s, width = self.choose_width(
                task, held_out, best, solve_s, factor_s, other_s)
        state = {"round": 0, "idle": 0, "best": best, "kept": None, "level": 0, "width": width,
                 "solve_s": solve_s, "factor_s": factor_s, "other_s": other_s,
                 "target": self.target(task, held_out, self.tol),
                 "graded": graded, "corner_points": corner_points,
                 "corner_gaussians": corner_gaussians}
        total, _ = task.evaluate_loss()  # the least-squares solution: step 1
        task.record(self.kind, float(total), force_eval=True)
        task.safe_point(state, loss=float(total))
        return state

    def choose_width(self, task: Task, held_out: HeldOut, best: float, solve_s: float,
                     factor_s: float, other_s: float
                     ) -> tuple[float, float, float, float, float]:
        """Solve again with every Gaussian's width times each further factor of
        ``widths`` (while the clock allows another solve), re-equilibrated, and keep the
        mixture whose held-out residual is lowest; records a ``widths`` event. Returns the
        kept held-out residual, the last solve's seconds (all of it and its
        factorisations', the rest's) and the factor kept (a refinement starts from it)."""
        model = task.model
        assert isinstance(model, GMNM)
        proj = model.layer.proj.detach().clone()
        kept = (best, 1.0, snapshot(task))
        tried = {1.0: best}
        for factor in self.widths[1:]:
            if solve_s + other_s > task.clock.left():
                break
            start = time.perf_counter()
            with torch.no_grad():
                model.layer.proj.copy_(proj / factor)  # W scales as one over the width
            task.sync_params()
            solve_s, factor_s = self.solve(task, equilibrate=True)
            tried[factor] = now = held_out.value(task)
            other_s = time.perf_counter() - start - solve_s
            if now < kept[0]:
                kept = (now, factor, snapshot(task))
        if kept[1] != list(tried)[-1]:  # the last one tried is in place
            restore(task, kept[2])
        task.events.append({"event": "widths", "stage": self.kind, "step": task.step,
                            "held_out": {str(f): v for f, v in tried.items()},
                            "kept": kept[1]})
        return kept[0], solve_s, factor_s, other_s, kept[1]

    @staticmethod
    def solved(state: dict[str, Any]) -> bool:
        """Whether the held-out residual of ``state`` is below the stage's ``tol`` (no
        growth needed; False without held-out points)."""
        return bool(state["best"] <= state["target"])

    def after_round(self, task: Task, state: dict) -> None:
        """Count a round, record its loss and offer a safe point."""
        state["round"] += 1
        total, _ = task.evaluate_loss()
        task.record(self.kind, float(total), force_eval=True)
        task.safe_point({**state, "kept": state["kept"] if state["idle"] else None},
                        loss=float(total))

    def refined(self, task: Task, state: dict, held_out: HeldOut | None) -> bool:
        """When local growth stops: refine once more if allowed (True: a finer level was
        kept, growth goes on there), otherwise False; a refinement is tried at most
        ``refinements`` times in all (a skipped or undone one counts)."""
        if state["level"] >= self.refinements:
            return False
        if state["idle"]:  # back to the best mixture before refining
            task.model.load_state_dict(state["kept"])
            task.sync_params()
            state["idle"] = 0
        if self.refine(task, state, held_out):
            self.after_round(task, state)
            return True
        state["level"] = self.refinements
        return False

    def refine(self, task: Task, state: dict, held_out: HeldOut | None) -> bool:
        """One uniform refinement (see the module docstring): ``REFINE_POINTS`` times the
        collocation points and as many Gaussians as they allow, re-solved; kept (True) when
        the held-out residual falls, otherwise undone (False, and no further refinement)."""
        loss, model = task.loss, task.model
        assert isinstance(model, GMNM)
        level = state.get("level", 0)
        if (held_out is None or task.collocation is None or not loss.problem.conditions
                or loss.problem.unknowns or level >= self.refinements or task.out_of_time()):
            return False
        outputs = loss.problem.n_outputs
        rows = sum(loss.counts) - state.get("corner_points", 0)  # the uniform draw's
        cols = (model.layer.components + 1) * outputs
        m = default_components(model.layer.in_features, REFINE_POINTS * rows, outputs,
                               capped=False, oversampling=REFINE_OVERSAMPLING,
                               aspect=model.layout_sides)
        if m <= model.layer.components:
            return False
        # (the finer level's corner grading adds the coarse one's points and Gaussians)
        fine_rows = REFINE_POINTS * rows + state.get("corner_points", 0)
        fine_cols = (m + 1 + state.get("corner_gaussians", 0)) * outputs
        predicted = self.refine_seconds(state, sum(loss.counts), cols, fine_rows, fine_cols)
        fits, needed = system_fits(fine_rows, fine_cols, loss.batch.interior)
        if REFINE_MARGIN * predicted > task.clock.left() or not fits:
            task.events.append({"event": "refine skipped", "stage": self.kind,
                                "step": task.step, "components": m,
                                "predicted_s": predicted, "left_s": task.clock.left(),
                                "bytes": needed})
            return False
        kept, kept_batch, coarse = snapshot(task), loss.batch, held_out.terms(task)
        points = refinement_points(task, level + 1, REFINE_POINTS ** (level + 1))
        if state.get("graded"):
            self.grade(task, points=True, gaussians=False)
        tries: list[tuple[float, int, Snapshot, float]] = []
        for i, factor in enumerate(REFINE_WIDTHS):
            if i and state["solve_s"] + state["other_s"] > task.clock.left():
                break
            start = time.perf_counter()
            report = task.respread(m, points, seed=task.seed + level + 1,
                                   factor=state.get("width", 1.0) * factor)
            task.sync_params()
            if state.get("graded"):  # the corner's grading, on the finer level too
                self.grade(task, points=False)
            # (equilibrated again: the finer features' own term scales)
            state["solve_s"], state["factor_s"] = self.solve(task, equilibrate=True)
            now = held_out.value(task)
            state["other_s"] = time.perf_counter() - start - state["solve_s"]
            before = held_out.weigh(task, coarse)  # the same weights
            ratio = now / before if before > 0 else math.inf
            tries.append((ratio if math.isfinite(ratio) else math.inf, i, snapshot(task), now))
            task.events.append({"event": "refined", "stage": self.kind, "step": task.step,
                                "components": m, "points": len(points),
                                "width": report["width"], "held_out": now,
                                "held_out_coarse": before, "solve_s": state["solve_s"],
                                "other_s": state["other_s"], "predicted_s": predicted})
        ratio, i, best, now = tries[preferred_width([t[0] for t in tries])]
        if ratio < 1:
            if i != len(tries) - 1:
                assert best[1] is not None
                restore(task, best)
            state.update(level=level + 1, best=now, idle=0, kept=None,
                         target=self.target(task, held_out, self.tol))
            task.events.append({"event": "refine kept", "stage": self.kind, "step": task.step,
                                "width_factor": model.width_factor * state.get("width", 1.0)
                                * REFINE_WIDTHS[i],
                                "held_out_ratio": ratio})
            return True
        restore(task, kept)
        loss.batch = kept_batch
        task.events.append({"event": "refine undone", "stage": self.kind, "step": task.step})
        return False

    def grades(self, task: Task) -> bool:
        """Whether the mixture is graded towards the domain's re-entrant corners (see
        :mod:`.corners`): with ``corners``, when growth is local, the domain has any and
        the graded system fits in half the free memory."""
        if not (self.corners and self.grows_locally(task) and grades(task)):
            return False
        g, loss = task.loss.problem.geometry, task.loss
        interior, boundary = corner_points(g)
        outputs = loss.problem.n_outputs
        rows = (loss.batch.size + len(interior) + len(boundary)) * outputs
        cols = (task.model.layer.components + len(corner_gaussians(g)[0]) + 1) * outputs
        return system_fits(rows, cols, loss.batch.interior)[0]

    def grade(self, task: Task, *, points: bool = True, gaussians: bool = True) -> int:
        """Add the corners' graded Gaussians and (``points``) collocation points; records
        a ``graded`` event and returns how many points (the state keeps them out of a
        refinement's sizing)."""
        added = add_corner_gaussians(task) if gaussians else 0
        placed = add_corner_points(task) if points else 0
        task.events.append({"event": "graded", "stage": self.kind, "step": task.step,
                            "gaussians": added, "points": placed,
                            "components": task.model.layer.components})
        return placed

    def convergence_order(self, task: Task, state: dict[str, Any]) -> float | None:
        """The apparent order p at which the first solve (``state``, from :meth:`start`)
        converges in the number of Gaussians: the same problem is solved on a coarser
        layout, ``COARSER`` × the Gaussians along each axis (m_c of them, laid out as the
        model's own layer lays them out when built), and its held-out residual relative
        to the zero function's is (m / m_c)^p times the first solve's. A solution the
        layout resolves (smooth) converges fast, so p is large; one with a layer, a front
        or a pulse that neither layout resolves gains little. The model, its points and
        term scales are put back. None without held-out points, or when the layout is
        too small to coarsen."""
        held_out, model = self.held_out(task), task.model
        if held_out is None or not isinstance(model, GMNM) or not state["target"] > 0:
            return None
        d, m = model.layer.in_features, model.layer.components
        k = math.floor(COARSER * m ** (1.0 / d) + 1e-9)
        count = coarser_count(m, model.layout_sides) if model.elongated else k**d
        if k < 2 or count is None or count >= m:
            return None
        layer, saved = model.layer, snapshot(task)
        with torch.random.fork_rng(devices=[]):  # (a layer's layout draws numbers)
            coarse = model.new_layer(count)
        try:
            model.layer = coarse.to(layer.means)
            task.sync_params()
            self.solve(task, equilibrate=True)
            coarse_ratio = held_out.value(task) / self.zero_loss(task, held_out)
        finally:
            model.layer = layer
            restore(task, saved)
        fine = state["best"] / (state["target"] / self.tol**2)
        if not (fine > 0 and coarse_ratio > 0):
            return math.inf if fine == 0 else None
        return math.log(coarse_ratio / fine) / math.log(m / count)

    @staticmethod
    def refine_seconds(state: dict[str, Any], rows: int, cols: int, fine_rows: int,
                       fine_cols: int) -> float:
        """The predicted seconds of a refined level's solve, from the last solve's on
        ``rows`` × ``cols``: its factorisations scaled by :func:`~.lsq.lstsq_cost`, the
        rest (building the features and the system, the held-out check) by rows ×
        columns. (Scaling the whole solve by rows × columns² overestimated it about
        twofold — 17.8 s predicted for 7.1 s on ``poisson-3d`` — and skipped refinements
        that fitted.)"""
        solve_s = state.get("solve_s", 0.0)
        factor_s = min(state.get("factor_s", solve_s), solve_s)
        rest_s = solve_s - factor_s + state.get("other_s", 0.0)
        return (factor_s * lstsq_cost(fine_rows, fine_cols) / lstsq_cost(rows, cols)
                + rest_s * fine_rows * fine_cols / (rows * cols))

    def solve(self, task: Task, *, equilibrate: bool = False) -> tuple[float, float]:
        """Least squares for the head at the current features, with ``equilibrate`` (and
        the stage's ``equilibrate``) on term scales from these features; returns the
        seconds it took and those of its factorisations (all of it where the solver does
        not time them apart)."""
        start = time.perf_counter()
        if equilibrate and self.equilibrate:
            _, solution = equilibrated_fit(task, linear_head(task.model), self.kind,
                                           self.rcond)
        else:
            solution = fit_head(task.loss, task.model, linear_head(task.model), self.rcond)
        seconds = time.perf_counter() - start
        return seconds, solution.seconds or seconds

    def held_out(self, task: Task) -> HeldOut | None:
        """The held-out points the rounds are checked on (weighing residuals by their rows
        when growth is local); None when the task has no collocation to draw them with."""
        if task.collocation is None:
            return None
        return HeldOut(task, task.params, per_row=self.grows_locally(task))

    def fits_in_memory(self, task: Task, count: int) -> bool:
        """Whether the next round's system, ``count`` Gaussians more (and their points,
        when growth is local: their rows are unbounded without a budget), fits
        (:func:`system_fits`)."""
        loss, model = task.loss, task.model
        d = model.layer.in_features
        rows = sum(loss.counts) + (local_rows(count, d) if self.grows_locally(task) else 0)
        cols = (model.layer.components + count + 1) * loss.problem.n_outputs
        return system_fits(rows, cols, loss.batch.interior)[0]

    def grows_locally(self, task: Task) -> bool:
        """Whether new Gaussians bring points of their own, the held-out check weighs
        residuals by their rows and refinement comes first (``local``, for a PDE with
        conditions, not an inverse problem, in one process: each rank holds its own
        points)."""
        loss = task.loss
        return bool(self.local and task.collocation is not None and loss.problem.conditions
                    and not loss.problem.unknowns and loss.parallel.world == 1)

    @staticmethod
    def target(task: Task, held_out: HeldOut | None, tol: float) -> float:
        """The held-out loss below which the problem counts as solved: ``tol``² × the
        zero head's (see :meth:`zero_loss`)."""
        return tol**2 * Grow.zero_loss(task, held_out)

    @staticmethod
    def zero_loss(task: Task, held_out: HeldOut | None) -> float:
        """The held-out loss of the zero head (the data and conditions alone): what
        ``tol`` is relative to (0 without held-out points: no target)."""
        if held_out is None:
            return 0.0
        head = linear_head(task.model)
        saved = head.get()
        head.set(torch.zeros_like(saved))
        try:
            return held_out.value(task)
        finally:
            head.set(saved)

    def grow_once(self, task: Task, count: int) -> dict[str, float | int | str]:
        """One round: ``count`` Gaussians at the residual's peaks, re-solve, prune."""
        model = task.model
        assert isinstance(model, GMNM)
        layer, loss = model.layer, task.loss
        sigma, added = add_at_peaks(task, count, points=self.grows_locally(task))
        with torch.no_grad():
            J, r0 = linear_system(loss, model, linear_head(model))
            solution = solve_lstsq(J, -r0, self.rcond)
            removed = self.prune_negligible(task, J, solution.theta)
        return {"event": "grew", "stage": self.kind, "step": task.step, "added": len(sigma),
                "points_added": added, "removed": removed, "components": layer.components,
                "width_min": float(sigma.min()), "width_max": float(sigma.max()),
                "cond": solution.cond, "rank": solution.rank}

    def prune_negligible(self, task: Task, J: Tensor, theta: Tensor) -> int:
        """Set the head to ``theta`` without the Gaussians whose share |θ_i| ‖J_i‖ of the
        fit is below ``prune`` × the size ‖J θ‖ of the fitted function (not × the largest
        share: broad Gaussians cancel with shares far above the function), and remove
        them (their columns changed the fit by less than that: no re-solve); returns how
        many went."""
        model = task.model
        assert isinstance(model, GMNM)
        m, n_out = model.layer.components, task.loss.problem.n_outputs
        theta = theta.reshape(n_out, m + 1).T  # (m + 1, outputs): the head's layout
        share = (theta.T.abs() * J.norm(dim=0).reshape(n_out, m + 1)).T[:m].amax(dim=1)
        keep = share >= self.prune * float((J @ theta.T.reshape(-1)).norm())
        if bool(keep.all()) or not bool(keep.any()):
            linear_head(model).set(theta)
            return 0
        model.layer.keep_components(keep)
        task.sync_params()
        linear_head(model).set(torch.cat([theta[:m][keep], theta[m:]]))
        return int((~keep).sum())
