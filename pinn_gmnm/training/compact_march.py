"""A compact march: a few Gaussians per slab that move with what they carry.

The default march of a linear problem (:mod:`.march`) solves each slab from scratch by
least squares over a fixed grid of Gaussians laid out over the slab (14² × 5 in two space
dimensions), as wide as several of their spacings. A state narrower than that spacing —
a pulse 0.07 wide on a grid 0.1 apart (``advection-diffusion-2d``) — is smeared from the
first slab on: the first slab's Gaussians fit that pulse at t = 0 to 2.6e-2 at best, and
every later slab inherits the error. Growth could refine the grid, but not in a slab's
share of a minute.

A transported state is a few Gaussians that travel. The compact march cuts each of the
march's equal slabs in 2^``COMPACT_LEVEL`` (16 slabs by default) of a few space-time
Gaussians (``COMPACT_COMPONENTS`` for each feature of the initial state,
:func:`slab_components`) and trains every parameter of each slab (Newton's method on the
output layer, then Levenberg–Marquardt on μ, W and π; :class:`~.gauss_newton.GaussNewton`)
starting from the previous slab (:func:`advance`: each Gaussian carried along its path):
a Gaussian whose projection W mixes x and t is a pulse moving at a velocity, and
Levenberg–Marquardt finds that shear. The first slab starts from a compact fit of the
initial state (:func:`initial_fit`: a spatial mixture of ``COMPACT_COMPONENTS`` Gaussians,
trained the same way on samples of u_0), lifted into space-time at rest
(:func:`lift`), and may take :data:`~.march.FIRST_SHARE` of the time, as every march's
first slab may: it must find how its state moves, and it trains every parameter at once
(Newton on the output layer alone, from a state at rest, would first trade the pulse away
for a small residual: 0.26 on that slab), for as many steps as it needs
(:func:`first_slab_stages`). The later slabs start moving, from the slab before, and take
at most ``SLAB_NEWTON_STEPS``.

Measured at 60 s (2-core CPU, alone; the PINN for comparison):

- ``advection-diffusion-2d``: 2.2e-3 (the grid march 1.9e-2, the PINN 1.0e-2, FEM 2.8e-3);
- a blob carried a sixth of a turn around a disk while it spreads (u_t − y u_x + x u_y =
  0.002 Δu, t ≤ 2; not in any table): 1.0e-2 (the grid march's first slab fits its
  initial state to 0.37);
- two pulses of opposite sign carried across the square (not in any table): 1.2e-2 and
  2.0e-2 in two runs (the grid march 0.59, the PINN 7.0e-2; with 8 Gaussians a slab in all,
  shared by amplitude, 7.2e-2: the second feature got too few);
- ``rotating_blob`` of ``benchmarks/untuned_problems.py`` (a full turn in t ≤ 1, the blob
  moving more than its width within a slab): 0.10 (the grid march 0.27, the PINN 0.87).
  Its first slab was the limit (4.3e-2): starting at rest, Levenberg–Marquardt had not
  found the rotation in its 40 steps.

**The first slab uncapped** (2026-12-03; the same code before and after, each run alone
and back to back, on a machine at half its usual speed). Capped at ``SLAB_NEWTON_STEPS``
like the others, the first slab stopped on the cap short of the motion, and every later
slab carried its error on: ``rotating_blob``'s first slab was 4.3e-2 off after 40 steps
and 9e-4 after the 183 its held-out check let it take. Before → after, at 60 s:
``advection-diffusion-2d`` 9.0e-4 → 1.05e-3 (seed 0) and 2.7e-2 → 2.5e-3 (seed 1, its first
slab 5.5e-2 → 3.4e-3); ``rotating_blob`` 6.3e-2 → 4.4e-2 (seed 0) and 6.4e-2 either way
(seed 1, whose first slab stops on its held-out check at 33 steps); the blob on a disk
3.0e-3 → 1.5e-3; two pulses (u_t + ½u_x + ¼u_y = 0.002 Δu, 0.08 wide) 5.2e-2 → 1.7e-2.
With 32 slabs as well, ``rotating_blob`` came to 1.0e-2 in both seeds (the arc a slab's
straight paths follow is four times closer), but on this machine the later slabs ran out
of their shares and the others came out worse or no better (``advection-diffusion-2d``
1.1e-3 and 1.4e-2, the blob on a disk 6.4e-3, two pulses 3.9e-3): not kept. In
``rotating_blob`` the error then grew in later slabs that stopped on their held-out checks
at 15 to 25 steps with losses 20 to 100 times those of the slabs before them, counted as
solved: see :data:`HELD_OUT_PATIENCE`.

Tried and not kept: 8 or 32 slabs (``advection-diffusion-2d`` 1.7e-2 and 1.8e-2: too few
slabs for a sheared Gaussian to follow the state, or too little time a slab to converge;
errors of a slab not converged are carried on: a carried state off by 1e-3 is a relative
error of 6e-3 when the pulse fills 3 % of the square); 16 Gaussians a slab for one pulse
(3.9e-2: half the steps); a graded start (the first slab cut toward t_0 as the grid march
is: the blob on a disk 1.0e-2 → 7.1e-2); as many points again drawn where the state
stands out from its background (two pulses 7.2e-2 → 3.6e-2, but the blob on a disk 1.0e-2
→ 0.16); Gaussians taken over into the next slab unchanged (:func:`advance` explains why).
Also tried (2026-12-02): starting the first slab moving as the PDE says — each of the
fit's Gaussians given the velocity and rate of change of its peak whose time derivative
at t_0 is the least-squares fit of the one the PDE gives (exact for a pure transport:
(½, ½) on ``advection-diffusion-2d`` without diffusion, the slab's loss 670 times lower
at the start), its peak made nearly flat in time over the slab (a projection of 0.1
along normalised time) — and carrying that flat envelope and the peak's rate on from
slab to slab. Both were worse at 60 s: ``advection-diffusion-2d`` 2.2e-3 → 2.5e-2 (2.5e-2
with the flat carry-over too), ``rotating_blob`` 0.10 → 0.28 (0.81), two pulses 1.7e-2, within
the 1.2e-2 to 2.0e-2 of two runs without it (4.3e-2): a start better by the loss did not
train into a better march.

Also tried (2026-12-03, same machine and hour) and not kept: halving once a later slab
whose loss ends over 4 times that of the last whole slab after the first (each half
started from the slab before; the reference kept in safe points). It rescues a slab that
settles far off (``rotating_blob``: one at a loss of 2.3e-3, 0.29 off, came to 2.1e-2 in
halves), but five or six halvings a run made ``rotating_blob``'s march spend its budget on
that machine, its last slabs ran short of their time and some of them settled far off in
turn: seed 0 2.1e-2, 5.0e-2 and 7.8e-2 in three runs, against 2.0e-2, 2.1e-2 and 2.6e-2
without it (not budget-limited); seed 1 1.1e-2 and 3.6e-3 against 2.7e-2. Halving only
where the rest of the march fits at the slab's own pace (not half of it) gave 2.3e-2 and
0.29 (seed 0) and 0.11 (seed 1). No other problem measured halved a slab.

**Focused points** (2026-12-03). A slab's points were the run's, drawn uniformly: 2000
inside the slab and 400 on its initial slice, where the state it carries on is given. A
pulse 0.06 wide on a 2 × 1 rectangle covers 0.6 % of it: two or three of those 400
points, a dozen of the 2000. The loss hardly saw the state: on such a pulse (a user's
problem written from the README, carried at an angle while it spreads; not in any table)
the second slab ended at a loss of 2e-6 and 8.3e-2 off, the run 8.3e-2. Half of a slab's
interior points, and as many again as the boundary points on its initial slice, are now
drawn from its own Gaussians as it starts (:func:`slab_focus`, :func:`focus_points`: each
significant Gaussian in proportion to |π_i|, ``FOCUS_SPREAD`` times as wide, along its
path), the other half uniformly; they are kept with the slab's safe points. Measured in
same-hour pairs at 60 s on a machine at half its usual speed, seeds 0 and 1, before →
after: that pulse 8.3e-2 → 1.9e-2 and 0.11 → 3.4e-3, ``rotating_blob`` 2.1e-2 → 9.4e-3 and
1.65e-2 → 2.9e-3, the blob on a disk 1.6e-3 → 1.3e-3 and 9.3e-3 → 1.1e-2, two pulses
2.6e-2 either way and 3.9e-2 → 1.9e-2, ``advection-diffusion-2d`` 1.0e-3 → 1.16e-3 and
2.9e-3 → 6.0e-3 (worse: its later slabs' errors grow where they fell; its first slab, seed
0, 7.5e-4 → 2.3e-4). Widened twice (not kept): 6.2e-3 and 4.6e-2, 1.5e-2 and 1.5e-2, 2.1e-3
and 2.7e-3, 5.8e-2 and 1.8e-2, 6.1e-4 and 3.6e-3 — the geometric mean of the ten 7.8e-3,
against 6.2e-3 at 1.5 and 1.3e-2 before, and the worst 5.8e-2 against 2.6e-2 and 0.11.
The held-out check's points are focused too (as many again, drawn with other seeds): it
had judged the slab's progress on uniform points that hardly saw the state either. That
hour, the ten runs at 1.5 → with held-out points focused: 1.9e-2 → 1.8e-2 and 3.4e-3 →
2.8e-3, 9.4e-3 → 9.5e-3 and 2.9e-3 → 2.3e-3, 1.3e-3 → 2.0e-3 and 1.1e-2 → 3.4e-3, 2.6e-2
→ 1.5e-2 and 1.9e-2 → 1.6e-2, 1.16e-3 → 1.0e-3 and 6.0e-3 → 9.7e-3 (geometric mean 6.2e-3
→ 5.3e-3, the worst 2.6e-2 → 1.8e-2). ``advection-diffusion-2d``'s seed 1 is limited by
its first slab, which runs out of its share of the time on this machine in every
variant (1.75e-2 off after 208 steps; 4.7e-3 before the points were focused).

**An unsolved slab is halved** (2026-12-03). A later slab whose loss ends above
:data:`~.march.SOLVED` times its frozen loss (Levenberg–Marquardt settled far off, as a
compact slab can where its state turns) is halved as the grid march halves one, each half
started from the slab before it (:func:`advance`) with as many Gaussians; the first slab,
started from the fit, is not. It acts only on a failed slab: of the thirty focused runs above
only ``rotating_blob``'s seed 0 halved any (three slabs widened twice, one with the
held-out points focused). Measured on the run that
fails without it (``rotating_blob`` with only the initial slice focused, not kept: its
fourth slab settled at a loss of 1.1e-3, 6.4e-2 off): 0.46 → 0.16, that slab 6.2e-3 in
halves. Halving on a loss four times the slab before's instead (tried earlier that day)
halved five or six slabs a run and spent the budget.

**Gaussians that carry nothing are put back to work** (2026-12-03, :func:`recycle`).
Levenberg–Marquardt leaves some of a slab's Gaussians idle: on ``rotating_blob``'s failing
path (seed 0) three of eight had left the blob by t = 0.25, two of them stripes tens of
units wide running off the disk, with weights of 1e-3 or less, and :func:`advance` carried
them on. The other five carried the blob, every slab at its 40-step cap, until the slab at
t = 0.56 settled at a loss a hundred times the slab before's (8.9e-2 off), and halving it
did not recover. Each slab now starts with such Gaussians (reach into the slab below
``RECYCLE`` of the largest) moved onto the state as weightless copies of its significant
ones. Measured in same-hour runs at 60 s on a machine at about two thirds of its usual
speed, seeds 0 and 1 (and 2), before → after: ``rotating_blob`` 0.119 → 3.7e-3 (every slab
solved, its losses 1e-7 to 6e-7 where they had been 2e-6 to 3e-5; the march's error stays
at its first slab's 3.5e-3 to 4.6e-3; 3.9e-3 in a second run), 3.4e-3 → 1.6e-3, and
with seed 2 4.6e-3 → 1.6e-3; ``ellipse_pulse`` 2.7e-3 →
4.6e-3 and 3.3e-3 (two runs) and 3.5e-3 → 2.5e-3 and 3.6e-3; ``advection-diffusion-2d``
1.01e-3 → 1.08e-3 and 1.04e-3, 8.0e-3 → 1.0e-2 and 7.6e-3. On those last two, one or two
slabs of a run recycle one or two Gaussians, and the runs differ as their budget-limited
first slabs do. Recycling every Gaussian below ``SIGNIFICANT`` (0.4 % weights that shape
``ellipse_pulse``'s flanks too) gave ``ellipse_pulse`` 6.1e-3 and 7.5e-3: not kept.

**Which march** (:func:`choose`). The march whose Gaussians represent the initial state
better: the compact fit's error on held-out samples of u_0 against the least-squares fit
of u_0 by the grid march's first slab (at each width that march tries). Measured
(relative L2 on 2000 held-out samples): ``heat-2d``'s smooth 16x(1 − x)y(1 − y) is
fitted to 7e-7 by the grid and to 5.5e-4 by eight Gaussians (the grid march, 8.5e-5 as
before), ``advection-diffusion-2d``'s pulse to 2.6e-2 by the grid and to 1e-15 by the fit
(the compact march); the blob on a disk 0.37 against 1e-6, ``rotating_blob`` 0.12 against
1.6e-5. Only the default march of a linear problem with one output, started by one
condition on u, is judged (the others keep their march); the fit takes one to five
seconds of the budget.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from .._types import Points
from ..conditions import Initial, evaluate_value
from ..errors import GMNMError
from ..fitting import DataResidual
from ..geometry import SpaceTime
from ..problem import Problem
from .batch import Collocation, sample_batch
from .gauss_newton import GaussNewton
from .heldout import SEED_OFFSET
from .linear import fit_state, linear_head
from .stages import Stage

if TYPE_CHECKING:
    from ..models.slabs import TimeSlabs
    from .task import Task

COMPACT_COMPONENTS = 8
"""Gaussians of the initial state's fit, and of each slab of the compact march for each
of the fit's Gaussians that carries the state (:func:`slab_components`)."""

MAX_COMPONENTS = 32
"""At most this many Gaussians per slab of the compact march."""

OVERLAP = 2.0
"""Two significant Gaussians of the initial state's fit belong to one feature when their
centres are closer than this × the sum of their widths (:func:`features`)."""

SIGNIFICANT = 0.01
"""A Gaussian of the initial state's fit carries the state when its weight is at least
this share of the largest (:func:`significant`)."""

RECYCLE = 1e-3
"""A slab's Gaussian whose reach into the slab (:func:`reach`) is below this share of the
largest carries nothing and is put back to work as the slab starts (:func:`recycle`)."""

SLAB_NEWTON_STEPS = 40
"""Levenberg–Marquardt iterations on every parameter of a slab after the first (its
held-out check may stop it sooner; the first has no cap: :func:`first_slab_stages`)."""

HELD_OUT_PATIENCE = 10
"""A compact slab's Levenberg–Marquardt stops when this many steps in a row have not
lowered its loss on held-out points (3 elsewhere). A slab's hundred or so parameters
against thousands of rows do not overfit; there the check of 3 ended plateaus that a
few more steps leave. Measured (2026-12-03, same-hour pairs, 60 s, half-speed machine),
3 → 10: ``rotating_blob`` 4.4e-2 → 2.0e-2 and 6.4e-2 → 2.7e-2 (seeds 0 and 1; the first
slab of seed 1 4.8e-2 → 4.3e-4 off), ``advection-diffusion-2d`` 1.05e-3 → 1.0e-3 and
2.5e-3 → 2.7e-3, the blob on a disk 1.5e-3 either way, two pulses 1.7e-2 → 2.2e-2 (its
first slab ran out of its share in both, 287 and 237 steps)."""

FIT_SAMPLES = 2000
"""Samples of the initial state the compact fit trains on (as many again held out)."""

FIT_SHARE = 0.25
"""At most this share of the training time left goes to fitting the initial state."""

JITTER = 0.1
"""Gaussians that share one of the fit's are spread about it by this × its width."""

TIME_PRECISION = 0.5
"""A lifted Gaussian's projection along time, in the slab's normalised time (the slab is
2 long there): a standard deviation of the slab's length."""


def compact_stages() -> tuple[Stage, ...]:
    """The stages that train each slab of the compact march."""
    return (GaussNewton(steps=1, head_only=True),
            GaussNewton(steps=SLAB_NEWTON_STEPS, held_out=HELD_OUT_PATIENCE))


def first_slab_stages(stages: Sequence[Stage]) -> tuple[Stage, ...]:
    """The stages of the compact march's first slab: ``stages`` without the head's Newton
    step, and Levenberg–Marquardt on every parameter without a cap on its steps: it stops
    when its held-out check or its progress stalls, or when the slab's share of the time
    is spent. Started at rest, that slab must find how its state moves (see the module
    docstring)."""
    rest = stages[1:] if len(stages) > 1 else stages
    return tuple(dataclasses.replace(s, steps=None)
                 if isinstance(s, GaussNewton) and not s.head_only else s for s in rest)


def initial_condition(problem: Problem) -> Initial | None:
    """The problem's one initial condition on u (order 0), when that is all that starts it
    and it has one output: what the compact march can start from."""
    initial = [c for c in problem.conditions if isinstance(c, Initial)]
    if problem.n_outputs != 1 or len(initial) != 1 or initial[0].order != 0:
        return None
    return initial[0]


def initial_problem(problem: Problem, condition: Initial) -> Problem:
    """Fitting u_0 over the problem's space, from samples: the data residual u − u_0."""
    g = problem.geometry
    if not isinstance(g, SpaceTime):
        raise GMNMError(f"the compact march needs a space-time problem; '{problem.name}' "
                        f"is on {g!r}")
    def state(x: Points) -> Tensor:
        return evaluate_value(condition.value, _with_time(x, g.t0)).reshape(len(x))

    return Problem(g.space, DataResidual(state), exact=state, linear=True,
                   name=f"{problem.name}: initial state")


def initial_fit(fit: Problem, *, seed: int, budget: float | None,
                dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu"
                ) -> tuple[nn.Module, float]:
    """The compact fit of the initial state (``fit``, see :func:`initial_problem`):
    ``COMPACT_COMPONENTS`` Gaussians over the problem's space, as wide as their spacing,
    trained on ``FIT_SAMPLES`` samples (output layer, then every parameter); the model and
    its relative L2 error on held-out samples."""
    from ..models.gmnm import GMNM
    from .solve import solve

    space = fit.geometry
    model = GMNM(space.dim, 1, COMPACT_COMPONENTS, bounds=space.bbox, width_factor=1.0,
                 conditions=False).to(dtype=dtype, device=device)
    collocation = Collocation(interior=FIT_SAMPLES)
    model.arrange(sample_batch(fit, collocation, seed).interior, seed)
    solve(fit, model, stages=[GaussNewton(steps=5, head_only=True), GaussNewton(steps=200)],
          collocation=collocation, seed=seed, budget=budget, dtype=dtype, device=device)
    return model, state_error(fit, model, seed)


def state_error(fit: Problem, model: nn.Module, seed: int) -> float:
    """The relative L2 error of ``model`` against the fitted state on held-out samples."""
    x = sample_batch(fit, Collocation(interior=FIT_SAMPLES), seed + 1).interior
    x = x.to(next(model.parameters()))
    assert fit.exact is not None
    with torch.no_grad():
        exact = fit.exact(x).reshape(-1)
        return float((model(x).reshape(-1) - exact).norm() / exact.norm().clamp_min(1e-300))


def layout_error(fit: Problem, t0: float, piece: nn.Module, widths: Sequence[float], *,
                 seed: int) -> float:
    """The lowest relative L2 error, on held-out samples, of the least-squares fit of the
    initial state (``fit``, see :func:`initial_problem`) by ``piece`` (the grid march's
    first slab) at ``t0``, its Gaussians at each of ``widths`` × their width (the piece is
    left as it was)."""
    train = sample_batch(fit, Collocation(interior=FIT_SAMPLES), seed).interior
    proj = piece.layer.proj.detach().clone()
    saved = [p.detach().clone() for p in linear_head(piece).head_parameters()]
    at_t0 = _with_time(train.to(proj), t0)
    assert fit.exact is not None
    best = math.inf
    try:
        for w in widths:
            with torch.no_grad():
                piece.layer.proj.copy_(proj / w)
            fit_state(piece, at_t0, lambda xt: fit.exact(xt[:, :-1]))
            best = min(best, state_error(fit, _AtTime(piece, t0), seed))
    finally:
        with torch.no_grad():
            piece.layer.proj.copy_(proj)
            for p, v in zip(linear_head(piece).head_parameters(), saved):
                p.copy_(v)
    return best


def _with_time(x: Tensor, t: float) -> Tensor:
    return torch.cat([x, x.new_full((len(x), 1), t)], dim=1)


class _AtTime(nn.Module):
    """A space-time ``model`` at time ``t``: a function of space."""

    def __init__(self, model: nn.Module, t: float) -> None:
        super().__init__()
        self.model, self.t = model, t

    def forward(self, x: Tensor) -> Tensor:
        return self.model(_with_time(x, self.t))


def sizes(weights: Tensor) -> Tensor:
    """|π_i| of each Gaussian (summed over the outputs), in float64 on the CPU."""
    return weights.detach().abs().reshape(len(weights), -1).sum(dim=1).double().cpu()


def significant(weights: Tensor) -> Tensor:
    """Which of the fit's Gaussians carry the initial state: |π_i| at least
    ``SIGNIFICANT`` × the largest (at least one)."""
    w = sizes(weights)
    if not torch.isfinite(w).all() or float(w.max()) <= 0:
        return torch.ones(len(w), dtype=torch.bool)
    return w >= SIGNIFICANT * w.max()


def significant_sizes(weights: Tensor) -> Tensor:
    """:func:`sizes`, zero for the Gaussians that are not :func:`significant`: how much each
    one weighs when a significant one is chosen by its size."""
    w = sizes(weights)
    return torch.where(significant(weights), w, torch.zeros_like(w))


def features(fit: nn.Module) -> list[list[int]]:
    """The features of the initial state in its fit: its significant Gaussians
    (:func:`significant`) grouped where they overlap — centres closer than ``OVERLAP`` ×
    the sum of their widths (the widest axis of each), transitively."""
    layer = fit.layer
    keep = [int(i) for i in significant(layer.weights).nonzero()[:, 0]]
    with torch.no_grad():
        means = layer.means.detach().double()
        widths = [1.0 / float(torch.linalg.svdvals(layer.proj[i].double()).min()) for i in
                  range(layer.components)]
    group = {i: i for i in keep}

    def root(i: int) -> int:
        while group[i] != i:
            i = group[i]
        return i

    for a in keep:
        for b in keep:
            if a < b and float((means[a] - means[b]).norm()) <= OVERLAP * (widths[a] + widths[b]):
                group[root(b)] = root(a)
    out: dict[int, list[int]] = {}
    for i in keep:
        out.setdefault(root(i), []).append(i)
    return list(out.values())


def slab_components(fit: nn.Module) -> int:
    """Gaussians per slab of a compact march started from ``fit``: ``COMPACT_COMPONENTS``
    for each feature of the initial state (:func:`features`), at most ``MAX_COMPONENTS``."""
    return min(MAX_COMPONENTS, COMPACT_COMPONENTS * len(features(fit)))


def shares(fit: nn.Module, m: int) -> list[int]:
    """How many of ``m`` Gaussians go to each of the fit's: an equal share to each
    feature (:func:`features`), shared among its Gaussians in proportion to |π_i|
    (largest remainders)."""
    layer = fit.layer
    w = sizes(layer.weights)
    groups = features(fit)
    counts = [0] * layer.components
    for g, members in enumerate(groups):
        total = m // len(groups) + int(g < m % len(groups))
        exact = w[members] / w[members].sum() * total
        base = exact.floor().long()
        order = torch.argsort(exact - base, descending=True)
        for j in order[: total - int(base.sum())]:
            base[j] += 1
        for i, c in zip(members, base.tolist()):
            counts[i] = int(c)
    return counts


@torch.no_grad()
def lift(piece: nn.Module, fit: nn.Module, *, seed: int) -> None:
    """Start ``piece`` (the first slab's compact GMNM, on space × [t_0, t_1]) from ``fit``
    (the initial state's, on space, with the same spatial bounds): its Gaussians shared
    out among the fit's by :func:`shares`, each independent of time over the slab
    (projection ``TIME_PRECISION`` along time, centred in the slab). The first copy of
    each of the fit's Gaussians is that Gaussian, with its weight: the slab's state at t_0
    is the fit's. The others are jittered about it by ``JITTER`` × its narrowest width,
    with weight 0, for Levenberg–Marquardt to use."""
    src, dst = fit.layer, piece.layer
    ds, m = src.in_features, dst.components
    if dst.in_features != ds + 1 or dst.projections != ds + 1 or src.projections != ds:
        raise GMNMError("lift: the slab's Gaussians must be the fit's with time added")
    counts = shares(fit, m)
    generator = torch.Generator().manual_seed(seed)
    means = torch.zeros(m, ds + 1, dtype=torch.float64)
    proj = torch.zeros(m, ds + 1, ds + 1, dtype=torch.float64)
    weights = torch.zeros(m, dst.weights.shape[1], dtype=torch.float64)
    tau0 = -1.0  # t_0 in the slab's normalised time; the Gaussians are centred at 0
    rise = math.exp(0.5 * (TIME_PRECISION * tau0) ** 2)
    j = 0
    for i, c in enumerate(counts):
        W = src.proj[i].double().cpu()
        narrow = 1.0 / float(torch.linalg.svdvals(W).max())
        for copy in range(c):
            jitter = JITTER * narrow * torch.randn(ds, generator=generator, dtype=torch.float64)
            means[j, :ds] = src.means[i].double().cpu() + (jitter if copy else 0.0)
            proj[j, :ds, :ds] = W
            proj[j, ds, ds] = TIME_PRECISION
            if copy == 0:
                weights[j] = src.weights[i].double().cpu() * rise
            j += 1
    dst.means.copy_(means.to(dst.means))
    dst.proj.copy_(proj.to(dst.proj))
    dst.weights.copy_(weights.to(dst.weights))
    dst.bias.copy_(src.bias.to(dst.bias))


COMPACT_LEVEL = 1
"""The compact march cuts each of the default march's equal slabs into 2^COMPACT_LEVEL."""


def choose(task: Task, model: TimeSlabs, problem: Problem, widths: Sequence[float]
           ) -> nn.Module | None:
    """The compact fit of the initial state when the march of ``model`` goes on compact
    (see the module docstring): when that fit has a lower held-out error than the
    least-squares fit by ``model``'s first piece at any of ``widths``; else None. A
    ``compact march`` event records both errors, the Gaussians a slab would have and the
    choice."""
    condition = initial_condition(problem)
    piece = model.pieces[0]
    layer = getattr(piece, "layer", None)
    if condition is None or layer is None or getattr(layer, "projections", None) != problem.dim:
        return None
    p = next(piece.parameters())
    left = task.clock.left()
    budget = None if math.isinf(left) else FIT_SHARE * left
    state = initial_problem(problem, condition)
    fit, fitted = initial_fit(state, seed=task.seed, budget=budget, dtype=p.dtype,
                              device=p.device)
    grid = layout_error(state, model.times[0], piece, widths, seed=task.seed)
    chosen = fitted < grid
    task.events.append({"event": "compact march", "step": task.step, "fit_error": fitted,
                        "components": slab_components(fit), "layout_error": grid,
                        "chosen": chosen})
    return fit if chosen else None


def compact_pieces(model: TimeSlabs, m: int) -> None:
    """Give every piece of ``model`` ``m`` Gaussians (a GMNM's per-Gaussian parameters
    resized; the march starts each from the one before)."""
    for piece in model.pieces:
        layer = getattr(piece, "layer", None)
        if layer is not None and hasattr(layer, "_resize") and layer.components != m:
            layer._resize(m)


def velocity(A: Tensor) -> Tensor:
    """The velocity of each space-time Gaussian's centre, v = −A_xx⁻¹ A_xt, from its
    precision A (time last; see :func:`advance`)."""
    return -torch.linalg.solve(A[:, :-1, :-1], A[:, :-1, -1:]).squeeze(-1)


@torch.no_grad()
def advance(model: TimeSlabs, k: int) -> int:
    """Start slab ``k``'s piece from slab k − 1's: each Gaussian moved along its path to
    the middle of slab k and kept moving at its velocity, its spread in time reset to
    the slab's length (projection ``TIME_PRECISION`` in the slab's normalised time), its
    weight its value there; those that carry nothing are put back to work
    (:func:`recycle`: how many is returned).

    A space-time Gaussian exp(−½ (z − μ)ᵀ A (z − μ)), z = (x, t), is a pulse whose centre
    at time t is x*(t) = μ_x + v (t − μ_t), v = −A_xx⁻¹ A_xt, and whose peak falls off in
    time as exp(−½ S (t − μ_t)²), S = A_tt − A_txA_xx⁻¹A_xt. Taken over unchanged (its
    physical parameters), a Gaussian drifts ever farther from its own centre in time,
    where that fall-off is steep and its weight must grow to make up for it: measured on
    ``advection-diffusion-2d`` (60 s), the weights of later slabs grew to ±1.4 and
    cancelled, and the error grew from 1.4e-2 at t = 0.25 to 0.17 at t = 1 (0.10 in all,
    against 1.9e-2 advanced)."""
    model.copy_piece(k - 1, k)
    a, b = model.pieces[k - 1], model.pieces[k]
    layer = b.layer
    if layer.projections != layer.in_features:
        raise GMNMError("the compact march's Gaussians have as many projections as inputs")
    A, mu = a.physical()
    A, mu = A.detach().double().cpu(), mu.detach().double().cpu()
    Axx, Axt, Att = A[:, :-1, :-1], A[:, :-1, -1], A[:, -1, -1]
    v = velocity(A)
    S = (Att + (Axt * v).sum(dim=1)).clamp_min(0.0)
    t_mid = 0.5 * (model.times[k] + model.times[k + 1])
    dt = t_mid - mu[:, -1]
    centre = torch.cat([mu[:, :-1] + v * dt.unsqueeze(-1), mu.new_full((len(mu), 1), t_mid)], 1)
    h = torch.tensor(b.normalize.half_width, dtype=torch.float64)
    c = torch.tensor(b.normalize.center, dtype=torch.float64)
    Av = (Axx @ v.unsqueeze(-1)).squeeze(-1)
    new = A.clone()
    new[:, :-1, -1] = -Av
    new[:, -1, :-1] = -Av
    new[:, -1, -1] = (TIME_PRECISION / h[-1]) ** 2 + (v * Av).sum(dim=1)
    # W with WᵀW = A in the piece's normalised coordinates (H A H there)
    W = torch.linalg.cholesky(new * h[:, None] * h[None, :]).transpose(-1, -2)
    layer.means.copy_(((centre - c) / h).to(layer.means))
    layer.proj.copy_(W.to(layer.proj))
    layer.weights.mul_(torch.exp(-0.5 * S * dt**2).unsqueeze(-1).to(layer.weights))
    return recycle(layer, seed=k)


@torch.no_grad()
def recycle(layer: nn.Module, *, seed: int) -> int:
    """Put a slab's Gaussians that carry nothing back to work: each one whose reach
    (:func:`reach`) is below ``RECYCLE`` × the largest becomes a copy of a significant
    one (:func:`significant`; chosen in proportion to |π_i|, as :func:`lift` shares
    them), its centre jittered in space by ``JITTER`` × that one's narrowest width,
    moving with it, with weight 0 for the slab's Newton step and Levenberg–Marquardt to
    use. Returns how many.

    A compact slab's Levenberg–Marquardt spends Gaussians it does not need: on
    ``rotating_blob`` three of eight had left the state by t = 0.25 — two as stripes tens
    of units wide running off at thousands of units a unit of time, one as wide as the
    disk — with weights of 1e-3 or less, and :func:`advance` carried them on from slab to
    slab; the four or five Gaussians left carried the blob until a slab settled far off
    (t = 0.56, 8.9e-2) and the march did not recover (0.13 at t = 1). A Gaussian of small
    weight near the state is kept: on ``ellipse_pulse`` some of 0.4 % of the largest
    weight shape the pulse's flanks, and putting those to work elsewhere too (at
    ``SIGNIFICANT``) doubled its error."""
    power = reach(layer)
    dead = (power < RECYCLE * power.max()).nonzero()[:, 0].tolist()
    if not dead:  # (none when every reach is 0 or not a number)
        return 0
    generator = torch.Generator().manual_seed(seed)
    source = torch.multinomial(significant_sizes(layer.weights), len(dead), replacement=True,
                               generator=generator).tolist()
    space = layer.in_features - 1  # (time last, not jittered)
    for i, j in zip(dead, source):
        narrow = 1.0 / float(torch.linalg.svdvals(layer.proj[j].double()).max())
        jitter = JITTER * narrow * torch.randn(space, generator=generator, dtype=torch.float64)
        layer.means[i] = layer.means[j]
        layer.means[i, :space] += jitter.to(layer.means)
        layer.proj[i] = layer.proj[j]
        layer.weights[i] = 0.0
    return len(dead)


REACH_POINTS = 1024
"""Points of a slab's box at its middle time that :func:`reach` looks at."""


def reach(layer: nn.Module) -> Tensor:
    """|π_i| times the largest value of Gaussian i over the slab's box at its middle time
    (normalised coordinates: [−1, 1] in space, time 0), from ``REACH_POINTS`` points drawn
    uniformly there and the point of the box nearest its centre; float64, on the CPU."""
    means = layer.means.detach().double().cpu()
    proj = layer.proj.detach().double().cpu()
    space = means.shape[1] - 1
    generator = torch.Generator().manual_seed(0)
    drawn = torch.rand(REACH_POINTS, space, generator=generator, dtype=torch.float64) * 2 - 1
    nearest = means[:, :space].clamp(-1.0, 1.0)
    points = torch.cat([drawn.expand(len(means), -1, -1), nearest[:, None]], dim=1)
    points = torch.cat([points, points.new_zeros(points.shape[:2] + (1,))], dim=2)
    z = torch.einsum("mkd,mnd->mnk", proj, points - means[:, None])
    return sizes(layer.weights) * torch.exp(-0.5 * z.square().sum(dim=2)).amax(dim=1)


FOCUS_SHARE = 0.5
"""This share of a compact slab's interior points is drawn from its own Gaussians as it
starts, the rest uniformly, and as many points again as the run's boundary points are
drawn so on its initial slice (:func:`slab_focus`)."""

FOCUS_SPREAD = 1.5
"""Focused points are drawn from each Gaussian widened by this."""


def uniform_rest(collocation: Collocation) -> Collocation:
    """The uniformly drawn points of a compact slab: its interior points less the
    ``FOCUS_SHARE`` drawn from its Gaussians."""
    return dataclasses.replace(
        collocation, interior=collocation.interior - math.floor(FOCUS_SHARE * collocation.interior))


def slab_focus(piece: nn.Module, geometry: SpaceTime, collocation: Collocation, seed: int
               ) -> list[Tensor]:
    """A compact slab's focused points, drawn from ``piece`` (the slab's Gaussians as it
    starts) over ``geometry`` (the slab): ``FOCUS_SHARE`` of ``collocation``'s interior
    points inside, and as many as its boundary points on the initial slice (see the
    module docstring); then as many of each again, with other seeds, for its held-out
    checks."""
    interior, initial = math.floor(FOCUS_SHARE * collocation.interior), collocation.boundary
    return [focus_points(piece, geometry, interior, seed + 5),
            focus_points(piece, geometry, initial, seed + 6, at=geometry.t0),
            focus_points(piece, geometry, interior, seed + SEED_OFFSET + 5),
            focus_points(piece, geometry, initial, seed + SEED_OFFSET + 6, at=geometry.t0)]


@torch.no_grad()
def focus_points(piece: nn.Module, geometry: SpaceTime, n: int, seed: int, *,
                 at: float | None = None) -> Tensor:
    """Up to ``n`` points of ``geometry`` drawn from ``piece``'s significant Gaussians
    (:func:`significant`; each chosen in proportion to |π_i|, widened by
    ``FOCUS_SPREAD``), strictly inside; with ``at``, on the slice t = ``at``, each from its
    Gaussian's section there (centred on its path: x ~ N(x*(t), A_xx⁻¹), see
    :func:`advance`). Fewer where the Gaussians lie mostly outside ``geometry``."""
    A, mu = piece.physical()
    A, mu = A.detach().double().cpu(), mu.detach().double().cpu()
    if n <= 0:
        return mu.new_zeros((0, mu.shape[1]))
    p = significant_sizes(piece.layer.weights)
    if not torch.isfinite(p).all() or float(p.sum()) <= 0:
        p = torch.ones_like(p)
    centre, cov = mu, A
    if at is not None:
        v = velocity(A)
        centre, cov = mu[:, :-1] + v * (at - mu[:, -1]).unsqueeze(-1), A[:, :-1, :-1]
    L = torch.linalg.cholesky(cov)  # cov = L Lᵀ: c + L⁻ᵀ ε has covariance cov⁻¹
    generator = torch.Generator().manual_seed(seed)
    out, total = [], 0
    for _ in range(8):  # draws inside ``geometry``, a few rounds at most
        draw = 4 * (n - total)
        i = torch.multinomial(p, draw, replacement=True, generator=generator)
        eps = torch.randn(draw, centre.shape[1], 1, dtype=torch.float64, generator=generator)
        x = centre[i] + FOCUS_SPREAD * torch.linalg.solve_triangular(
            L[i].transpose(-1, -2), eps, upper=True).squeeze(-1)
        if at is None:
            x = x[geometry.interior(x)]
        else:
            x = _with_time(x[geometry.space.interior(x)], at)
        out.append(x[: n - total])
        total += len(out[-1])
        if total >= n:
            break
    return torch.cat(out)
