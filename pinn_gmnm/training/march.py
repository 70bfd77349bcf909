"""Time marching: an evolution problem solved slab by slab in time.

The space-time domain Ω × [t_0, t_K] is cut into K slabs Ω × [t_k, t_{k+1}]
(:class:`~pinn_gmnm.models.slabs.TimeSlabs` holds one model per slab). Slab k is a problem
of its own: the same PDE and boundary conditions on the shorter cylinder, and as initial
condition the state the previous slab's model reached at t_k (its value, and its time
derivative for an ``Initial(order=1)`` condition). Each slab is trained by the stages of
the run's method — least squares for a linear problem; for a nonlinear one Newton's
method on the collocation equations over the output layer (Levenberg–Marquardt, see
:mod:`.gauss_newton`), then Gauss–Newton on all parameters — starting from the previous
slab's parameters (the same layout shifted in time, and the previous solution as the
first guess). This is block time marching as in local extreme learning machines and the
random feature method: a short slab is a much easier problem than the whole cylinder (the
solution changes less over it, and for a nonlinear PDE Newton starts close to the answer),
and every slab gets the run's full collocation point count (a thin slab, at least
``ROWS`` rows per Gaussian: :func:`slab_points`).

**Moving layout.** In the default march of a problem in one space dimension (thin slabs,
see :func:`~pinn_gmnm.models.slabs.slab_layout`) every slab after the first moves its
centres along x, and its interior points and carried state's points with them, to where
the state it starts from is steep, and starts its head from that state; a slab whose own
solution is steep elsewhere is moved by it and trained again (:mod:`.moving`,
:data:`MOVE_AGAIN`; a ``moved`` event each).

Budget: each slab gets an equal share of the training time that is left when it starts,
the first at least :data:`FIRST_SHARE` of it (a deadline, not a reservation: what a slab
leaves goes to the next). Where the budget ends the march before its last slab, the slabs
after start as the march would start them, from the last piece trained (:meth:`March._hold`:
at 12 s, ``burgers-2d`` 0.46 → 8.8e-2, ``fisher-2d`` 0.61 → 7.3e-2; at 8 s ``burgers``
0.63 → 0.42), not with the untrained pieces they were built as.
Resume: the stage's safe points carry the slab, the inner stage and that stage's own
state, so a stopped march continues inside the slab where it stopped.

**Adaptive slabs** (``splits``; the default march may halve a slab ``SPLITS`` times). As
an ODE integrator rejects a step whose error estimate is too large and retries it with
half the step, the march judges each slab when its stages end: solved when its loss is
below ``solved`` (default ``SOLVED``) times the *frozen loss* — the loss of the state the
slab starts from, held still over it (:func:`frozen_loss`; for u_t = F(u) the size of
F(u), the change the slab has to capture) — or below ``SETTLED`` times the loss of u ≡ 0
(a residual negligible against the state itself, as where nothing moves any more). An
unsolved slab is
cut in two (:meth:`~pinn_gmnm.models.slabs.TimeSlabs.split`) and the first half trained
again, when the slab was halved fewer than ``splits`` times and the rest of the march,
with one slab more, fits ``PACE`` times over in the time left at this slab's pace; the
halves start as every slab does, from the previous slab's solution (the same layout
shifted in time). As an integrator carries its step size on, the next slab starts
halved as often as this one was, or one time less when this one was solved (when that
fits in the time left, as above). A ``split``
event records each cut (``reason``: ``unsolved``, or ``step`` for one carried on). The
slabs' levels (how often each was halved) are in the model's state, so checkpoints,
resume and ``load_solution`` rebuild the unequal slabs.

**March only where one block fails** (the default for a GMNM on an evolution problem, see
:func:`slab_count`). With ``whole`` stages and a model holding a whole piece, the march
first tries the single space-time block with the first of ``whole``:

- Newton's method on its output layer (nonlinear problems; with at most ``TRIAL_SHARE``
  of the time left). When Newton solves it there (the loss falls below ``CONVERGED``
  times the loss of u ≡ 0 under the same term weights: converged, and to a solution the
  block resolves) the block is kept and trained on by the remaining ``whole`` stages;
- ``grow`` (linear problems): its first least-squares solve (:meth:`.Grow.start`); the
  block is kept, and grown on, when the held-out residual meets grow's ``tol`` (no growth
  needed). Measured (one solve, loss over that of u ≡ 0, unweighted): ``heat-1d`` 2e-13,
  ``advection-1d`` 6e-15, ``wave-1d`` 7e-9 (each under grow's held-out ``tol``: kept), and
  ``heat-2d`` 1.3e-3, whose initial state does not meet its boundary values (marched:
  1.2e-2 in one grown block → 6.7e-4 in 8 grown slabs at 60 s; 7.7e-4 in 16).
  A block that misses ``tol`` is still kept when the solve converges fast in the number
  of Gaussians (:meth:`.Grow.convergence_order` at least ``CONVERGING``): the block
  resolves the solution and growth, not marching, is what it lacks.

Otherwise the march starts. Measured (single block, Newton on the output layer): ``klein-gordon``'s loss fell
from 1.0e-6 to 4.4e-17 in 5 iterations (1.8e-8; marched in 8 slabs it would have been
1.9e-7, errors carried from slab to slab), ``burgers``' stalled at 2.3e-4 (0.32).

**Compact march.** Where the default march of a linear problem would start from a grid
whose Gaussians represent the initial state worse than a compact fit of a few Gaussians
does (a pulse narrower than the grid's spacing), the march goes on compact instead:
16 slabs of a few Gaussians each, every parameter trained by Levenberg–Marquardt, each
slab started from the one before with its Gaussians carried along their paths
(:mod:`.compact_march`; ``compact`` stages, a ``compact march`` event with the choice).
Half of a compact slab's interior points and as many again on its initial slice are
drawn from its own Gaussians (its held-out checks' too), and a later compact slab left
unsolved is halved.
``advection-diffusion-2d`` 1.9e-2 → 2.2e-3 at 60 s; ``heat-2d`` keeps the grid.

**Patched slabs.** Each later slab of a Newton march in two space dimensions places its
patch of narrow Gaussians (see :func:`~pinn_gmnm.models.slabs.slab_layout`) where the
state it starts from is steep, with residual rows, initial points and boundary points
about them, and starts its head from the fit of that state (:mod:`.patch`; the slab's
event says where the patch went, ``patch``: the mean of its centres).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from .._types import Points
from ..conditions import Condition, Initial
from ..derivatives import Field
from ..errors import GMNMError
from ..evaluation import Evaluator
from ..geometry import Geometry, SpaceTime
from ..models.slabs import TimeSlabs, slab_layout
from ..problem import Problem
from .batch import Batch, Collocation, sample_batch
from .compact_march import advance, compact_pieces, first_slab_stages, slab_focus, uniform_rest
from .gauss_newton import GaussNewton
from .growth import Grow
from .linear import LeastSquares, fit_state, zero_loss
from .loss import Loss
from .moving import Warp, frame, shift, slab_warp, spatial_interval
from .patch import Patch, steep_patch
from .stages import Stage
from .task import SlabClock, Task

DEFAULT_SLABS = 8
"""Slabs of a march chosen by default (see :func:`slab_count`). Measured with Newton on
the output layer and the default per-slab layout (``burgers``, 60 s budget, 2-core CPU
shared with other jobs): 4 slabs 0.61 (two slabs done in the budget), 8 slabs 0.15,
16 slabs 0.30 (14 done)."""

CONVERGING = 3.0
"""A linear problem's single block whose first solve leaves growth work is kept when
that solve converges in the number of Gaussians at least at this apparent order (the
held-out residual relative to the zero function's, against a coarser layout of the
block, 7³ Gaussians against the default 10³ in two space dimensions and time; see
:meth:`~.growth.Grow.convergence_order`): the block resolves the solution, and growth
goes on in it. Measured (default layouts, 2-core CPU, 2026-12-01): a wave on the unit
square (two modes, released from rest) 4.5, kept: 5.5e-6 at 60 s against 1.4e-3
marched; a Gaussian pulse 0.08 wide released on a string with fixed ends (it splits and
reflects) 3.1, kept: 6.6e-9 against 3.6e-6 marched; heat in the unit cube (one mode) 2.8 and heat on the unit disk (its first
radial mode) 2.5, both marched (the cube is better so, 1.6e-3 against 3.6e-3 as one
block; the disk is not, 4.2e-6 against 6.3e-9: the test is conservative, uniform
coarsening understates what local growth gains); a pulse carried along a line
(u_t + ½u_x = 10⁻³ u_xx, 0.05 wide) 1.8; the catalogue's marches ``heat-2d`` 1.1 (its
initial state does not meet the boundary values) and ``advection-diffusion-2d`` 0.3."""

TRIAL_SHARE = 0.25
"""At most this share of the training time left goes to trying the single block."""

CONVERGED = 1e-7
"""Newton solved the single block when its loss is below this times the loss of u ≡ 0
(the output layer set to zero) under the same term weights. Measured on the default
block (60 s budget, the trial's share): ``klein-gordon`` 4.0e-16 (kept), ``gray-scott``
2.5e-5, ``burgers`` 1.4e-2, ``allen-cahn`` 0.12, ``schrodinger`` 0.27; in two space
dimensions ``fisher-2d`` 0.12, ``burgers-2d`` 0.5, an untuned Allen–Cahn 5.3e-4 (all
marched, and better for it), and an untuned smooth one, u_t = Δu + u² + f with u =
e^(−t) sin πx sin πy, 1.7e-9: its block gives 4.3e-5, marched 4.9e-4. With 1e-10 (the
value before nonlinear problems in two space dimensions marched) that one marched."""

SPLITS = 2
"""How many times the default march may halve a slab that Newton leaves unsolved (a
slab of the default 8 down to 1/32 of the interval). Measured without a budget (so that
the splits do not depend on the machine's speed; 2-core CPU shared with other jobs):
``burgers`` 7.1e-2 → 5.1e-2 (every slab from t = 0.25 on cut into quarters; 27 slabs
trained, 42 without carrying the step on, with the same result), ``allen-cahn``
4.1e-3 → 4.2e-3 (its last slab halved: its loss ratio fell from 1.1e-4 to 7.6e-5, the
error there did not), ``schrodinger`` 0.31 (catalogue, 60 s) → 0.19 (all 8 slabs in
quarters, loss ratios 1.5e-4 to 5e-4; 357 s of training on the shared machine),
``klein-gordon`` unchanged (the block kept); these splits were judged against the loss
of u ≡ 0, which left ``gray-scott``'s slabs unsplit (see :data:`SOLVED`; without a budget,
judged by the frozen loss with 1e-8, it reached 3.8e-3 in 32 slabs, 112 s). Halving does not resolve Burgers' front, whose width the
256 Gaussians along x of a slab limit: 16 equal slabs of 256 × 4 Gaussians gave 6.2e-2,
of 512 × 2 2.5e-2. With a 60 s budget on that shared machine no split fitted in the
time left (``PACE``). Moving each slab's centres and points to where its state is steep
does resolve it (:mod:`.moving`: 1.0e-3)."""

SOLVED = 1e-3
"""A slab is solved when its loss is below this times its frozen loss (see
:func:`frozen_loss`: a residual a thousandth of the change over the slab). Measured
with 1e-2 on the default march's slabs (loss / frozen loss → the relative L2 error
there, 60 s, thin slabs of 4 centres along time): ``gray-scott`` 4.6e-2 on its first
slab of 8 (1.2e-1: the spot of v then dies, 0.51 in all), 2.4e-2 halved (4.5e-3), 1.0e-2
in quarters (1.1e-3), later slabs 1e-3 to 7e-3 (1e-3); ``burgers`` 2e-4 to 4e-3 before
its front (4e-4), 2e-2 to 0.2 at and after it (1e-2 to 8e-2); ``schrodinger`` ~1e-3 (1e-3
to 1e-2), 6.7e-2 as the soliton peaks (0.32); ``allen-cahn`` 9e-5 (6e-4). The loss of
u ≡ 0 (used before, with 1e-4) hid ``gray-scott``'s failing first slab: 4e-5 of a zero
loss made of u's initial value ≈ 1, where v is ¼ at most.

With 6 centres along time (:data:`~pinn_gmnm.models.slabs.TIME_DENSITY`) a slab's loss
falls further: 1e-6 to 1e-5 of its change where the error is ~5e-5 (``allen-cahn``,
``schrodinger``, ``burgers`` before its front), but ``gray-scott``'s first slab came to
3.9e-3 of its change with an error of 5.7e-2 (on held-out points alike: not an overfit),
passed as solved under 1e-2 and was not halved (4.2e-2 in all). Under 1e-3 it is halved:
``gray-scott`` 7.5e-4 (its best yet), ``burgers`` 2.4e-4 (2.7e-4 under 1e-2), while
``allen-cahn`` (3.9e-4), ``schrodinger`` (4.2e-4) and ``heat-2d`` (2.5e-4) came out as
under 1e-2.

What 1e-2 had cost with 4 centres along time: ``schrodinger``'s slabs looked solved (2e-3
of their change) while its error grew from slab to slab (2.4e-2 → 0.15 over its fourth):
0.31 in 49 s, where the old rule quartered every slab (0.19, 357 s). Requiring both
(below 1e-2 of the change and 1e-4 of u ≡ 0's) split its early slabs at 60 s and starved
the rest: 0.43 against 0.31. More centres along time, not more slabs, solved it."""

SETTLED = 1e-8
"""A slab is also solved when its loss is below this times the loss of u ≡ 0: where the
state no longer moves its frozen loss falls to rounding level (``gray-scott`` once v has
died: loss 1e-13, frozen loss 1e-12, loss of u ≡ 0 5e-2)."""

FALL_BACK = 1e-3
"""A default march goes back to the single block it started from when the block's loss,
on fresh points over the whole domain, is below this times the marched solution's (see
:meth:`March._fall_back`): the march diverged, and came out far worse than the trial it
set aside. On ``fisher_channel`` of the untuned set (a Fisher–KPP front run down a 4 × 1
channel, 60 s) the slabs' errors ahead of the front, where u = 0 is unstable, grew about
e^{5t} slab by slab to 6.4 in relative L2 (u down to −100): loss 7.0 against the block's
1.8e-4, and the block is 0.72 off. The loss does not rank a march and a block that are
both sane: on ``allen_cahn_2d`` the block's loss was 0.044 times the march's while its
error was 1.5e-2 against the march's 4.1e-3 (so not 0.1); the other marches of the
catalogue and the untuned set measured (60 s, 2026-12-04) had block losses 0.15 to 5.0e4
times theirs."""

CHECK_SEED = 8999
"""The points of that comparison are drawn with the run's seed plus this."""


PACE = 0.5
"""A slab is split only when the rest of the march, one slab more, would fit this many
times over in the training time left at the pace of the slab just trained (later slabs,
started close to their answer, are faster than the first). With 2 ``gray-scott`` (each
slab ~4 s of its 60 s) could not split its first slab: 0.51; with 1, 3.7e-3 (first slab in
quarters; 14 slabs, 59 s), but that first split sits at the edge of the budget: on a
slower day, or with thin slabs of 5 centres along time (:data:`~pinn_gmnm.models.slabs.
TIME_DENSITY`), it did not fit and the march came out at 1.0e-2 and 0.50. With 0.5 it
fits (3.1e-3), while ``burgers`` (2.7e-4), ``allen-cahn`` (3.9e-4), ``schrodinger``
(4.2e-4) and ``heat-2d`` (2.5e-4) came out as with 1."""


class SlabResult(NamedTuple):
    """How a slab's training ended."""

    loss: float
    solved: bool
    """Its loss below ``solved`` times its frozen loss, or ``SETTLED`` times u ≡ 0's."""
    timed_out: bool
    """It stopped because its share of the time was spent. Unsolved then says that time
    is short, not that the slab is too long, and more work on it would take the time of
    the slabs after it: it is not halved, not moved and trained again (a 1-D march's
    second pass), and the next slab is not kept as short as this one (as after a solved
    slab, it may be twice as long). On a machine half as fast as the one the defaults
    were measured on, ``burgers`` spent its last 8 s on second passes of slabs stopped
    after one or two Newton steps, and ``burgers-2d`` cut its slabs into quarters from
    t = 0.16 on: both marches ended at t = 0.875 with the last slab untrained (0.26 and
    0.30, where their slabs' errors were 2e-5 to 4e-3 and 5e-4 to 4e-2)."""


NEWTON_DAMPING = 1e-20
"""The starting damping of the head's Levenberg–Marquardt stage on a slab (see
:func:`slab_stages`)."""

FIRST_SHARE = 0.25
"""The first slab of a march may take this share of the training time left (the others
an equal share of what is left when they start): as an integrator's first steps, it
carries the start's transient. An initial state that misses the boundary values starts a
layer at the edges (``heat-2d``, see :data:`START`): with an equal share (5 s of 60 in 12
slabs) its first slab, [0, 1/128], could not afford the uniform refinement (a solve
predicted at 8 s) and came out at 2.6e-4; with a quarter it refines, 1.1e-4 there, and
the run measured 4.0e-5 where it had 8.7e-5 (2026-12-02, 60 s, alone; finite elements
4.1e-5), the later slabs, with less time each, as before (6e-6 to 1e-5). Giving every
slab of the graded start (the first planned slab's pieces) a quarter of the time left
measured 3.97e-5: its second piece refined too, the later ones could not. A compact march's
first slab (:mod:`.compact_march`) starts from the initial state at rest and must find
how it moves, where later slabs start moving. The other marched rows of the catalogue
(Newton slabs, which stop when solved) came out as with an equal share: ``burgers``,
``allen-cahn``, ``schrodinger``, ``burgers-2d``, ``fisher-2d`` and
``advection-diffusion-2d`` to the digits shown, ``gray-scott`` 6.34e-4 → 6.45e-4 (65
Newton steps in the budget against 66)."""

START = 4
"""The default march of a linear problem (slabs solved by least squares from scratch)
starts graded: its first slab cut toward t_0 into slabs of 1/2^START, 1/2^START,
1/2^(START−1), …, 1/2 of it, each twice as long as the one before whether or not it was
solved (the plan; no graded slab is halved again), as an integrator starts with small
steps. An initial state that does not meet the boundary values (``heat-2d``: 16x(1 −
x)y(1 − y) with u = 0 on the edges, whose Laplacian is not 0 there) starts a layer of
width √(αt) at the edges that no slab of 1/8 resolves; least squares spreads the residual
it cannot meet over the whole slab, and every later slab inherits that error. Measured on
``heat-2d`` (60 s, 2-core CPU, alone; isotropic slabs): 2.5e-4 with equal slabs; graded
to depth 3, 4 and 5: 1.5e-4, 1.35e-4 and 1.3e-4 (the error at t = 0 from 3.3e-4 to 6e-5);
with slabs wide in space (:data:`~pinn_gmnm.models.slabs.SPATIAL_TIME`) depth 4 8.6e-5,
depth 6 8.2e-5 (its later slabs worse). On a plate at 1 dropped into a bath at 0 (u = 1
at t = 0, u = 0 on the edges; not a catalogue problem) 1.4e-2 → 3.2e-3. Nonlinear
marches (Newton from the previous slab) are not graded: their first slab is halved only
when left unsolved.

What is left on ``heat-2d`` sits at the start (``benchmarks/error_by_time.py``; the figures
in this paragraph are from before the first slab could take :data:`FIRST_SHARE` of the
time, which took the t = 0 level's error to 5.8e-5 RMS and the run to 4.0e-5): at 60 s the
t = 0 level's error is 1.3e-4 RMS, uniform over the square, then 2.4e-5 at t = 0.05 and
1e-6 to 5e-6 from t = 0.1; at 240 s 2.4e-5, 1.6e-5 and below 1e-6 (1.8e-5 in all). The
layer at the edges is then narrower than any Gaussian: the best least-squares fit of
the exact solution over the first slab by that slab's Gaussians is 3.5e-5 to 4.7e-5 RMS
(while u_0 alone they fit to 3.6e-8), and the collocation solution is 8e-5 to 1.3e-4
throughout the slab, interior included. Tried on the first slab alone, not landed:
Gaussians graded toward the edges (ten rows at 0.08 × 2^-l from them, 0.7 × that wide
across the edge) fitted the t = 0 level to 1.6e-7 and the run measured 3.2e-5, but only
because the evaluation grid samples t = 0: inside the slab the error rose to 1.8e-4 at
its end (the graded rows' scale left the interior's residual rows light; equal rows
gave 4e-5 to 6e-5 there), and a discontinuous initial state (the plate above) diverged
(0.31). Also tried, and not landed (2026-12-01): the first slab's initial rows weighted
10², 10⁴ or 10⁶ times over their equilibrated scale. The run measured 2.9e-5, 2.3e-5
and 2.2e-5, and the t = 0 level's error fell from 2.5e-4 to 4e-6 and 2e-6. But the error
inside the first slab rose, to 3.3e-4 at its end where it had been 1.5e-4, and from
t = 0.01 to 0.05 to 1e-4 where it had been 5e-5: the same artefact of a grid that
samples t = 0. Weighting every slab's initial rows 10² (the carried states too) made the
later slabs worse (3.7e-5 in all). Inheriting the previous slab's grown Gaussians
changed nothing (8.6e-5), and with no graded start (``advection-diffusion-2d``, whose
initial state meets its boundary values) 1.9e-2 became 1.8e-2 while a blob carried
around a disk went from 0.27 to 0.30."""

SLAB_WIDTHS = (1.0, 0.5)
"""The width factors each slab of a linear march (the default one: grown, solved from
scratch) tries on its first least-squares solve, the lowest held-out residual kept (see
:meth:`~pinn_gmnm.training.growth.Grow.choose_width`). The default layout's Gaussians are
four times their spacing wide, broad for smooth states; a pulse 0.07 wide
(``advection-diffusion-2d``, its slabs' centres 0.1 apart in space) came out at 7.9e-2,
the first slab's fit smearing it (1.1e-1 at t = 0 where its Gaussians can fit the pulse
to 2.1e-2). Measured at 60 s (2-core CPU, alone): with half the width in space for every
slab, ``advection-diffusion-2d`` 2.0e-2 but ``heat-2d`` 8.6e-5 → 1.5e-4; with the choice
by the held-out residual, ``advection-diffusion-2d`` 1.9e-2, ``heat-2d`` 8.6e-5 and the
plate of :data:`START` 3.1e-3 (the layout's width kept in every slab of both), and an
untuned pulse in one space dimension (u_t + u_x = 10⁻³ u_xx, 0.05 wide) 4.9e-2 → 4.3e-3
(the PINN: 7.9e-4). The held-out residual is not a faithful guide everywhere:
``advection-diffusion-2d`` keeps half the width in its first nine slabs and the layout's
in the last three, where its error rose (6.6e-3 at t = 0.62, 1.9e-2 at 0.65); comparing
the plain residuals under the layout's term scales instead chose the broad Gaussians a
slab earlier (2.2e-2 in all). The second width costs one more solve a slab; a single
block and Newton marches try one width.

The factors scale every axis, time included. Scaling the space axes alone (measured on
2026-12-01, 60 s, factors 1, ½ and ¼) kept half the width in every slab of
``advection-diffusion-2d``. Its held-out residuals were 3 to 15 times lower than with
time scaled too, and its last three slabs came out at 7.1e-3, 6.4e-3 and 5.9e-3 where
they had been 1.7e-2, 1.3e-2 and 9.6e-3. Its first slabs, which hold most of the error,
were a little worse (2.9e-2 against 2.7e-2), so the run measured 2.0e-2 against 1.9e-2.
Those first slabs are limited by what their Gaussians can represent: the best
least-squares fit of the exact solution over the first slab by its own Gaussians is
2.3e-2. A quarter of the width was never kept."""

MOVE_AGAIN = 1.0
"""A slab of the default march is trained a second time, moved to where its own first
solution is steep (at its start, middle and end), when that would move some centre by
more than this many local spacings (see :mod:`.moving`)."""

ROWS = 4
"""A slab of the default march of a nonlinear problem (thin in one space dimension, wide
in space in more) draws at least this many residual rows per Gaussian: ⌈ROWS · m /
outputs⌉ interior points where ``--points`` asks fewer (see :func:`slab_points`)."""

SLAB_SEED = 7919
"""Slab k draws its collocation points with seed ``seed + SLAB_SEED · k``."""


@dataclass(frozen=True)
class Carried(Initial):
    """The state carried over from the previous slab: u (``order`` 0) or ∂u/∂t (order 1)
    equals the given ``values`` at the given ``points`` of the slab's initial slice."""

    points: Tensor | None = None
    values: Tensor | None = None
    pointwise = False  # its values belong to all of its points, in order: never split

    def sample(self, geometry: Geometry, boundary: Points, *, variables: Sequence[str],
               n: int, sampler: Any, seed: int) -> Points:
        assert self.points is not None
        return self.points

    def residual(self, u: Field, x: Points, geometry: Geometry) -> Tensor:
        assert self.values is not None
        return self.state(u) - self.values.to(x)


def slab_stages(stages: Sequence[Stage], *, newton_only: bool = False) -> tuple[Stage, ...]:
    """The stages a method would train one block with, as they train each slab: the
    head's Gauss–Newton stage becomes Newton's method proper — damping starting at
    ``NEWTON_DAMPING`` (raised only when a step fails to lower the loss: a trust region),
    stopping once two iterations in a row fail to halve the loss. A slab starts from the
    previous slab's solution, close to its own, where full Newton steps converge
    quadratically; the cautious damping a cold start needs (1e-3, lowered 100-fold per
    success) made them creep. Measured on the first of 10 Burgers slabs: the loss fell
    to 7.5e-14 in 3 iterations, against 24 with the cautious start.

    With ``newton_only`` (the default march), Gauss–Newton on all parameters after Newton
    on the output layer is left out: one of
    its iterations on the default slab model (7169 parameters, 2400 equations) took 33 s
    against 1 s for a Newton iteration (``burgers``, 2-core CPU shared with other jobs),
    so in a slab's share of a minute's budget it overran the slab and starved the next."""
    head = newton_only and any(isinstance(s, GaussNewton) and s.head_only for s in stages)
    out = []
    for s in stages:
        if isinstance(s, GaussNewton) and s.head_only:
            s = dataclasses.replace(s, damping=NEWTON_DAMPING, min_progress=0.5, patience=2)
        elif head and isinstance(s, GaussNewton):
            continue
        out.append(s)
    return tuple(out)


def slab_problem(problem: Problem, k: int, model: TimeSlabs, collocation: Collocation,
                 seed: int, *, warp: Warp | None = None, focus: Tensor | None = None) -> Problem:
    """Slab ``k`` of ``problem`` as a problem of its own: the PDE and boundary conditions
    on [t_k, t_{k+1}], the initial conditions of the first slab or, later, the state of
    piece k − 1 at t_k, at the points the initial condition would have drawn (moved by
    ``warp``, see :mod:`.moving`) and, for a later compact slab, at ``focus`` too (see
    :func:`~.compact_march.slab_focus`)."""
    g = problem.geometry
    if not isinstance(g, SpaceTime):
        raise GMNMError(f"time marching needs a space-time problem; '{problem.name}' is on "
                        f"{g!r}: use --slabs 1")
    geometry = SpaceTime(g.space, (model.times[k], model.times[k + 1]))
    conditions: list[Condition] = []
    previous = model.pieces[k - 1] if k > 0 else None
    for i, c in enumerate(problem.conditions):
        if previous is None or not isinstance(c, Initial):
            conditions.append(c)
            continue
        x = c.sample(geometry, torch.empty(0, problem.dim, dtype=torch.float64),
                     variables=problem.variables, n=collocation.boundary,
                     sampler=collocation.sampler, seed=seed + 2 + i)
        if warp is not None:
            x = warp.points(x)
        if focus is not None and _starts(c):  # (see compact_march.slab_focus)
            x = torch.cat([x, c.select(geometry, focus).to(x)])
        conditions.append(Carried(points=x, values=carried_values(problem, previous, c, x),
                                  order=c.order, output=c.output, weight=c.weight,
                                  name=c.label))
    return dataclasses.replace(problem, geometry=geometry, conditions=conditions)


def focused(batch: Batch, sub: Problem, interior: Points, initial: Points, *,
            first: bool) -> Batch:
    """``batch`` (of slab problem ``sub``) with a compact slab's focused points (see
    :func:`~.compact_march.slab_focus`): ``interior`` ones, and ``initial`` ones for the
    initial condition of the ``first`` slab (a later slab's carried state has its own
    already, see :func:`slab_problem`)."""
    return batch.extended(interior.to(batch.interior), tuple(
        c.select(sub.geometry, initial).to(x) if first and _starts(c) else x[:0]
        for c, x in zip(sub.conditions, batch.conditions)))


def _starts(c: Condition) -> bool:
    """Whether ``c`` holds the state u at the start of a slab."""
    return isinstance(c, Initial) and c.order == 0


def carried_values(problem: Problem, piece: nn.Module, condition: Initial, x: Points) -> Tensor:
    """What ``condition`` asks of the solution (u or ∂u/∂t) at ``x``, from ``piece``."""
    p = next(piece.parameters())
    x = x.to(p)
    with torch.enable_grad():  # models without closed-form derivatives need autograd
        v = condition.state(problem.field(piece, x))
    return v.detach().reshape(len(x)).to(torch.float64).cpu()


class _Forward:
    """Passes a slab's history rows on to the run's callbacks, as rows of the run."""

    def __init__(self, run: Task) -> None:
        self.run = run

    def on_record(self, row: dict[str, Any], task: Task) -> None:
        self.run.step = task.step
        for cb in self.run.callbacks:
            if hasattr(cb, "on_record"):
                cb.on_record(row, self.run)


@dataclass
class SlabTask(Task):
    """The task of one slab: its piece, loss and clock, sharing the run's history, step
    count and events. Its safe points are the run's, so a snapshot holds every slab's
    parameters and a stop or the budget saves a state :class:`March` resumes from."""

    run_task: Task | None = None
    slab: int = 0
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Saved with every safe point (the march's own state besides the slab's)."""

    def respread(self, m: int, points: Tensor, *, seed: int, factor: float) -> dict[str, float]:
        """A slab of a laid-out march keeps its layout's shape when refined (its share of
        centres along time, see :func:`~pinn_gmnm.models.slabs.slab_layout`), at ``factor``
        × the layout's width; an isotropic grid over a thin slab's box would put as many
        centres along its short time axis as along each axis of space."""
        report = super().respread(m, points, seed=seed, factor=factor)
        slabs = None if self.run_task is None else self.run_task.model
        if self.slab >= 0 and isinstance(slabs, TimeSlabs) and slabs.laid_out:
            sigma = slab_layout(self.model, slabs.base, thin=slabs.thin,
                                width=slabs.width * factor, patch=slabs.patch)
            if sigma is not None:
                report = {**report, "width": float(sigma[0])}
        return report

    def held_out_points(self, batch: Batch) -> Batch:
        """A compact slab's held-out points have focused ones as its training points do
        (drawn with another seed: see :func:`~.compact_march.slab_focus`)."""
        focus = self.extra.get("focus")
        if focus is None:
            return batch
        return focused(batch, self.loss.problem, focus[2], focus[3], first=self.slab == 0)

    def enter(self, stage: int, state: dict[str, Any] | None) -> None:
        """Start (or, with ``state``, continue) inner stage ``stage``."""
        self.stage_index, self._pending = stage, state

    def safe_point(self, state: dict[str, Any] | None = None, *, loss: float | None = None) -> None:
        run = self.run_task
        assert run is not None
        run.step, run._last_eval = self.step, self._last_eval
        saved = {**self.extra, "slab": self.slab, "stage": self.stage_index, "state": state,
                 "weights": self.loss.weights_state()}
        points = self.replaced_points()  # (a slab's own; the single block's are the run's)
        if self.slab >= 0 and points is not None:
            saved["points"] = points  # growth added to the slab's
        run.safe_point(saved, loss=loss)


@dataclass(frozen=True)
class March(Stage):
    """Time marching (see the module docstring): ``stages`` train each slab in turn,
    on a :class:`~pinn_gmnm.models.slabs.TimeSlabs` model. Each slab's result is
    recorded as a ``slab`` event (its times, loss, the loss of u ≡ 0 and its error); with
    ``splits`` > 0 a slab whose loss stays above ``solved`` times its frozen loss is halved
    (at most ``splits`` times, a ``split`` event each) and solved again. With ``whole`` stages
    (the first one Newton on the output layer) the single block is tried first, on the
    model's whole piece, and kept when Newton solves it there: its loss below ``tol``
    times the loss of u ≡ 0 (a ``block`` event says which was chosen). The slabs of a
    thin model (the default march in one space dimension) move their Gaussians to where
    their state is steep, and one whose own solution is steep elsewhere is trained a
    second time (a ``moved`` event; :mod:`.moving`)."""

    stages: tuple[Stage, ...] = ()
    whole: tuple[Stage, ...] = ()
    compact: tuple[Stage, ...] = ()
    tol: float = CONVERGED
    splits: int = 0
    solved: float = SOLVED
    start: int = 0
    kind: ClassVar[str] = "march"

    def __post_init__(self) -> None:
        from .registry import stage_from_dict

        for name in ("stages", "whole", "compact"):
            inner = tuple(s if isinstance(s, Stage) else stage_from_dict(s)
                          for s in getattr(self, name))
            if any(isinstance(s, March) for s in inner) or (name == "stages" and not inner):
                raise GMNMError("march needs a list of stages (not march) to train each slab with")
            object.__setattr__(self, name, inner)
        for name in ("tol", "solved"):
            if not 0 < getattr(self, name) < 1:
                raise GMNMError(f"march: {name} must be in (0, 1), got {getattr(self, name)!r}")
        for name in ("splits", "start"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise GMNMError(f"march: {name} must be a whole number >= 0, got {value!r}")
        if self.whole and not (isinstance(self.whole[0], GaussNewton) and self.whole[0].head_only
                               or isinstance(self.whole[0], Grow)):
            raise GMNMError("march: the stages that try the single block ('whole') must start "
                            "with gauss-newton on the output layer (head_only: true) or grow")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.kind, "stages": [s.to_dict() for s in self.stages]}
        if self.whole:
            out["whole"] = [s.to_dict() for s in self.whole]
            out["tol"] = self.tol
        if self.splits:
            out["splits"], out["solved"] = self.splits, self.solved
        if self.start:
            out["start"] = self.start
        if self.compact:
            out["compact"] = [s.to_dict() for s in self.compact]
        return out

    @property
    def steps_planned(self) -> int | None:
        return None  # slabs and their steps are decided as the march goes: an open total

    @property
    def warm(self) -> bool:
        """Whether a slab starts from the previous slab's piece (its layout and solution):
        yes for iterative stages (Newton starts close to the answer), no when the first
        stage solves by least squares from scratch — a grown or refined piece would only
        carry Gaussians laid out for the previous slab, and more unknowns than this slab's
        equations (``heat-2d`` without a budget: a slab refined to twice the points left
        3654 Gaussians to slabs of 2400 points, 0.16 in all, against 6.7e-4 at 60 s)."""
        return not isinstance(self.stages[0], (Grow, LeastSquares))

    def run(self, task: Task) -> None:
        model = task.model
        if not isinstance(model, TimeSlabs):
            raise GMNMError("the march stage trains a model cut into time slabs (--slabs N)")
        problem = task.loss.problem
        if problem.unknowns:
            raise GMNMError("time marching does not learn unknown coefficients; use --slabs 1")
        if bool(self.whole) != (model.whole is not None):
            raise GMNMError("march: 'whole' stages need a model with a whole piece, and a whole "
                            "piece needs them")
        saved = task.resumed()
        first = 0 if saved is None else int(saved["slab"])
        compact = saved is not None and bool(saved.get("compact"))
        if self.whole and (saved is None or first < 0):
            if self._whole(task, model, saved):
                return
            saved, first = None, 0
            if task.out_of_time():  # (no slab trained: the block answers if it is better)
                self._fall_back(task, model)
                return
            compact = self._compact(task, model, problem)
            if not compact:
                self._grade(task, model)
            task.safe_point({"slab": 0, "stage": None, "compact": compact}, loss=None)
        elif self.whole:
            model.decide(True)
        elif saved is None:
            self._grade(task, model)
        self._slabs(task, model, problem, saved, first, compact)
        if self.whole:  # (a stop raises past this: a resumed march goes on)
            self._fall_back(task, model)

    def _slabs(self, task: Task, model: TimeSlabs, problem: Problem,
               saved: dict[str, Any] | None, first: int, compact: bool) -> None:
        """The march proper: slab after slab from ``first`` (see :meth:`run`)."""
        k, level = first, 0 if saved is None else int(saved.get("level", 0))
        spent: float | None = None  # training seconds of the last slab
        while k < model.slabs:
            inside = saved if saved is not None and k == first and saved["stage"] is not None \
                else None
            while inside is None and int(model.levels[k]) < level and \
                    self._affordable(task, model, k, spent):  # the step carried on
                self._split(task, model, k, reason="step")
            start = task.clock.elapsed()
            loss, solved, timed_out = self._slab(task, model, problem, k, inside, compact)
            if task.out_of_time():
                if not compact:
                    self._hold(task, model, k)
                return
            spent = task.clock.elapsed() - start
            graded = self._graded(model, k)
            if not (graded or timed_out or compact and k == 0) and \
                    self._halve(task, model, k, loss, solved, spent):
                saved, level = None, 0  # the first half is trained next, afresh
                if compact:  # each half starts from the slab before it, as compact slabs do
                    compact_pieces(model, model.pieces[k - 1].layer.components)
                    task.sync_params()
                task.safe_point({"slab": k, "stage": None, "compact": compact})
                continue
            # the next slab starts as short as this one, or twice as long when this one is
            # solved (or is one of the graded start's: they double as planned), or ran out
            # of its share of the time (see SlabResult)
            level = 0 if compact else \
                max(0, int(model.levels[k]) - int(solved or graded or timed_out))
            task.safe_point({"slab": k + 1, "stage": None, "level": level, "compact": compact},
                            loss=loss)
            k += 1

    def _fall_back(self, task: Task, model: TimeSlabs) -> None:
        """Keep the single block the march started from when the marched solution came
        out far worse: when the block's loss on points neither was trained on (drawn over
        the whole domain, the run's counts, another seed) is below ``FALL_BACK`` times the
        march's. A ``march checked`` event records both losses and the choice."""
        if model.whole is None or not model.marched or task.collocation is None:
            return
        loss, saved = task.loss, task.loss.batch
        fresh = sample_batch(loss.problem, task.collocation, task.seed + CHECK_SEED)
        x = saved.interior
        loss.batch = fresh.shard(loss.parallel).to(x.dtype, x.device)
        try:
            marched = float(task.loss_of(model)[0])
            model.marching.fill_(0)
            block = float(task.loss_of(model)[0])
            model.marching.fill_(1)
        finally:
            loss.batch = saved
        back = math.isfinite(block) and not block >= FALL_BACK * marched
        task.events.append({"event": "march checked", "step": task.step, "marched_loss": marched,
                            "block_loss": block, "kept": "block" if back else "march"})
        if back:
            model.decide(False)

    def _hold(self, task: Task, model: TimeSlabs, k: int) -> None:
        """Start the slabs after slab ``k``, where the budget ended the march, as the
        march starts a slab: from slab ``k``'s piece (a warm march; a ``held`` event
        says which). Left as built, their pieces answered with untrained Gaussians: a
        variant of the 2-D patched march (see :mod:`.patch`) came out at 0.54 on
        ``allen_cahn_2d`` (untuned set) with its last eighth untrained where its slabs
        before had 2e-3 to 3e-3. A resumed march trains them as usual (each starts from
        the slab before it again)."""
        if not self.warm or k + 1 >= model.slabs:
            return
        for j in range(k + 1, model.slabs):
            model.copy_piece(k, j)
        task.events.append({"event": "held", "slabs": [k + 1, model.slabs - 1], "from": k,
                            "step": task.step})

    def _grade(self, task: Task, model: TimeSlabs) -> None:
        """Cut the first slab toward t_0 into ``start`` levels (see :data:`START`): halve
        its first half ``start`` times (a ``split`` event each, ``reason`` ``start``)."""
        for _ in range(self.start):
            self._split(task, model, 0, reason="start")

    def _graded(self, model: TimeSlabs, k: int) -> bool:
        """Whether slab ``k`` is one of the graded start's (a part of the first equal slab)."""
        lo, hi = model.box[0][-1], model.box[1][-1]
        return self.start > 0 and model.times[k + 1] <= lo + (hi - lo) * (1 / model.base + 1e-12)

    def _halve(self, task: Task, model: TimeSlabs, k: int, loss: float, solved: bool,
               spent: float) -> bool:
        """Split slab ``k`` in two when it is not ``solved`` (see :data:`SOLVED`), it was
        halved fewer than ``splits`` times, and the rest of the march, with one slab more,
        fits ``PACE`` times over in the time left at the pace of this slab (no budget:
        always). The halves start as slabs do, from the previous slab's solution (the
        first half of the first slab from the slab's own). True when it did."""
        if int(model.levels[k]) >= self.splits or solved or \
                not self._affordable(task, model, k, spent):
            return False
        self._split(task, model, k, reason="unsolved", loss=loss)
        return True

    @staticmethod
    def _affordable(task: Task, model: TimeSlabs, k: int, spent: float | None) -> bool:
        """Whether slabs ``k`` on, one more of them, fit ``PACE`` times over in the time
        left at ``spent`` seconds a slab (always without a budget; never at an unknown
        pace; under torchrun, when every rank finds so)."""
        if task.clock.budget is None:
            return True
        fits = spent is not None and PACE * spent * (model.slabs - k + 1) <= task.clock.left()
        return not task.loss.parallel.any(not fits)

    def _split(self, task: Task, model: TimeSlabs, k: int, **why: Any) -> None:
        """Cut slab ``k`` in two (a ``split`` event with ``why``)."""
        a, b, parent, level = model.times[k], model.times[k + 1], model.pieces[k], \
            int(model.levels[k])
        model.split(k, seed=task.seed + SLAB_SEED * k + level + 1)
        if self.warm:  # the first slab's first half starts from the slab's solution
            with torch.no_grad():
                model.pieces[k].load_state_dict(parent.state_dict())
        task.sync_params()
        task.events.append({"event": "split", "slab": k, "times": [a, b], "step": task.step,
                            "level": level + 1, **why})

    def _whole(self, task: Task, model: TimeSlabs, inside: dict[str, Any] | None) -> bool:
        """Try the single block (continue it from ``inside``); True when it is kept."""
        piece = model.whole
        assert piece is not None
        first, state = 0, None
        if inside is not None:
            first, state = int(inside["stage"]), inside["state"]
            if inside.get("weights") is not None:
                task.loss.load_weights_state(inside["weights"])
        clock = SlabClock(task.clock, None) if first > 0 else \
            SlabClock.sharing(task.clock, TRIAL_SHARE)
        child = SlabTask(piece, task.loss, [q for q in piece.parameters() if q.requires_grad],
                         clock, task.evaluator, eval_every=task.eval_every,
                         callbacks=[_Forward(task)], history=task.history, step=task.step,
                         collocation=task.collocation, seed=task.seed,
                         _last_eval=task._last_eval, divergence=task.divergence,
                         stages=list(self.whole), events=task.events, run_task=task, slab=-1)
        child.initial_loss = float(child.evaluate_loss()[0])
        if first > 0:
            model.decide(False)
        trial = self.whole[0]
        for j in range(first, len(self.whole)):
            if j == 0 and isinstance(trial, Grow):  # its first least-squares solve is the trial
                state = trial.start(child) if state is None else state
                why = {"held_out": state["best"], "target": state["target"]}
                if not trial.solved(state) and "converging" not in state:  # does it converge?
                    order = trial.convergence_order(child, state)
                    state["converging"] = order is not None and order >= CONVERGING
                    why["order"] = math.nan if order is None else order
                if not self._decide(child, model,
                                    trial.solved(state) or bool(state.get("converging")), **why):
                    return False
            child.enter(j, state if j == first else None)
            self.whole[j].run(child)
            if j == 0 and not isinstance(trial, Grow):  # Newton on the output layer
                loss, zero = float(child.evaluate_loss()[0]), zero_loss(child)
                if not self._decide(child, model, loss <= self.tol * zero, loss=loss,
                                    zero_loss=zero):
                    return False
            if child.out_of_time():
                break
            if j + 1 < len(self.whole):
                child.enter(j + 1, None)
                child.safe_point(None, loss=float(child.evaluate_loss()[0]))
        return True

    @staticmethod
    def _decide(child: SlabTask, model: TimeSlabs, keep: bool, **why: float) -> bool:
        """Keep the single block or march (a ``block`` event with ``why``); ``keep``. A
        kept block trains on to the end of the budget."""
        child.events.append({"event": "block", "step": child.step, **why, "kept": keep})
        model.decide(not keep)
        if keep:
            assert isinstance(child.clock, SlabClock)
            child.clock.deadline = None
        return keep

    def _compact(self, task: Task, model: TimeSlabs, problem: Problem) -> bool:
        """Whether the march goes on as a compact march (see :mod:`.compact_march`):
        with ``compact`` stages, when a compact fit of the initial state beats the fit by
        the first slab's Gaussians (a ``compact march`` event either way). The model is
        then cut into the compact march's slabs (not graded: measured, a graded start took
        a blob carried around a disk from 1.0e-2 to 7.1e-2, its error carried through more
        slabs), and its first piece started from that fit."""
        from .compact_march import COMPACT_LEVEL, choose, lift, slab_components

        if not self.compact:
            return False
        widths = getattr(self.stages[0], "widths", None) or (1.0,)
        fit = choose(task, model, problem, widths)
        if fit is None:
            return False
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(task.seed)
            model.recut([COMPACT_LEVEL] * (model.base * 2**COMPACT_LEVEL))
        compact_pieces(model, slab_components(fit))
        lift(model.pieces[0], fit, seed=task.seed)
        task.sync_params()
        return True

    def _slab(self, task: Task, model: TimeSlabs, problem: Problem, k: int,
              inside: dict[str, Any] | None, compact: bool = False) -> SlabResult:
        """Train slab ``k`` (continue it from ``inside``, a saved state); its final loss,
        whether it is solved (see :data:`SOLVED`) and whether it ran out of its time.
        ``compact``: by the ``compact`` stages, each slab continuing the one before (the
        first, started from the initial state's fit at rest, by
        :func:`~.compact_march.first_slab_stages`: see :mod:`.compact_march`)."""
        if compact:
            if inside is None and k > 0:
                recycled = advance(model, k)
                if recycled:
                    task.events.append({"event": "recycled", "slab": k, "step": task.step,
                                        "gaussians": recycled})
            return self._train(task, model, problem, k, inside, None, None, moved=None,
                               compact=True)
        if inside is None and k > 0 and self.warm:
            model.copy_piece(k - 1, k)  # warm start: the previous slab's layout and solution
        piece = model.pieces[k]
        again = None if inside is None else inside.get("moved")
        warp, start_from = None, None
        if again is not None:  # resumed in the second pass: the warp it was moved by
            warp = frame(piece, spatial_interval(problem), again)
        elif k > 0 and model.thin:  # moved to where the state it starts from is steep
            warp = slab_warp(problem, piece, model.pieces[k - 1], [model.times[k]])
            start_from = _Frozen(model.pieces[k - 1], model.times[k])  # held still
        elif model.patch:  # its patch placed where that state is steep (resumed: as it was)
            warp, start_from = self._patch(task, model, problem, k)
        begun = task.clock.elapsed()
        first = self._train(task, model, problem, k, inside, warp, start_from, moved=again)
        if again is not None or not model.thin or task.out_of_time() or first.timed_out or \
                not first.solved and int(model.levels[k]) < self.splits:  # halving comes first
            return first
        # a second pass where the slab's own solution is steep elsewhere (a moving front)
        t0, t1 = model.times[k], model.times[k + 1]
        own = copy.deepcopy(piece)
        better = slab_warp(problem, piece, own, [t0, 0.5 * (t0 + t1), t1])
        moves = math.inf if better is None else shift(piece, better)
        if better is None or moves <= MOVE_AGAIN or \
                not self._affordable(task, model, k, task.clock.elapsed() - begun):
            return first
        task.events.append({"event": "moved", "slab": k, "step": task.step,
                            "shift": moves, "loss": first.loss})
        return self._train(task, model, problem, k, None, better, own, moved=better.mass)

    @staticmethod
    def _patch(task: Task, model: TimeSlabs, problem: Problem, k: int
               ) -> tuple[Patch | None, nn.Module | None]:
        """Where slab ``k``'s patch goes (see :mod:`.patch`), by the previous slab's state
        at t_k, and the state its head starts from (that state held still). The first
        slab's patch stays where the layout put it: the initial state's slope does not say
        where fronts will form (as a 1-D march leaves its first slab unmoved)."""
        if k == 0:
            return None, None
        piece, t0 = model.pieces[k], model.times[k]
        previous = model.pieces[k - 1]
        p = next(previous.parameters())
        state = lambda x: previous(x.to(p))  # noqa: E731
        start_from = _Frozen(previous, t0)
        patch = steep_patch(problem, piece, state, (t0, model.times[k + 1]), rows=ROWS,
                            seed=task.seed + SLAB_SEED * k + 3)
        return patch, start_from if patch is not None else None

    def _train(self, task: Task, model: TimeSlabs, problem: Problem, k: int,
               inside: dict[str, Any] | None, warp: Warp | Patch | None,
               start_from: nn.Module | None,
               *, moved: Tensor | None, compact: bool = False) -> SlabResult:
        """One pass over slab ``k``: its piece moved by ``warp`` (when given), its head
        started as the fit of the model ``start_from`` (the previous slab's state held
        still over the slab, or the slab's own first pass), then trained by the stages
        (continued from ``inside``). ``moved``: the mass of a second pass's warp, kept in
        its safe points. ``compact``: trained by the ``compact`` stages (the first slab
        by :func:`~.compact_march.first_slab_stages`)."""
        stages = self.stages
        if compact:
            stages = first_slab_stages(self.compact) if k == 0 else self.compact
        piece = model.pieces[k]
        if warp is not None and inside is None:  # (a resumed slab has moved already)
            warp.apply(piece)
        collocation = slab_points(task.collocation or Collocation(), piece, problem.n_outputs,
                                  laid_out=self.warm and model.laid_out and not compact)
        seed = task.seed + SLAB_SEED * k
        focus = None
        if compact:  # the state's own points (see compact_march), kept in its safe points
            focus = None if inside is None else inside.get("focus")
            if focus is None:
                slab = SpaceTime(problem.geometry.space, (model.times[k], model.times[k + 1]))
                focus = slab_focus(piece, slab, collocation, seed)
            collocation = uniform_rest(collocation)
        sub = slab_problem(problem, k, model, collocation, seed, warp=warp,
                           focus=None if focus is None else focus[1])
        p = next(piece.parameters())
        parallel = task.loss.parallel
        drawn = sample_batch(sub, collocation, seed)
        if focus is not None:
            drawn = focused(drawn, sub, focus[0], focus[1], first=k == 0)
        if warp is not None:
            drawn = warp.batch(drawn, sub)
        batch = drawn.shard(parallel).to(p.dtype, p.device)
        if inside is None and start_from is not None:
            fit_state(piece, drawn.interior.to(p), start_from)  # the moved Gaussians
        loss = Loss(sub, batch, task.loss.weights_given, parallel=parallel)
        share = 1 / (model.slabs - k)
        if k == 0:  # the start carries the transient (see FIRST_SHARE)
            share = max(share, FIRST_SHARE)
        child = SlabTask(piece, loss, [q for q in piece.parameters() if q.requires_grad],
                         SlabClock.sharing(task.clock, share), _slab_evaluator(task, sub),
                         eval_every=task.eval_every, callbacks=[_Forward(task)],
                         history=task.history, step=task.step, collocation=collocation,
                         seed=seed, _last_eval=task._last_eval, divergence=task.divergence,
                         stages=list(stages), events=task.events, run_task=task, slab=k,
                         _batch0=batch, extra={**({} if moved is None else {"moved": moved}),
                                               **({"compact": True, "focus": focus}
                                                  if compact else {})})
        child.initial_loss = float(child.evaluate_loss()[0])  # on the slab's first points
        first, state = 0, None
        if inside is not None:
            first, state = int(inside["stage"]), inside["state"]
            if inside.get("weights") is not None:
                loss.load_weights_state(inside["weights"])
            if inside.get("points") is not None:
                child.restore_points(inside["points"])
        for j in range(first, len(stages)):
            child.enter(j, state if j == first else None)
            stages[j].run(child)
            if child.out_of_time():
                break
            if j + 1 < len(stages):
                child.enter(j + 1, None)
                child.safe_point(None, loss=float(child.evaluate_loss()[0]))
        timed_out = child.out_of_time()
        total, zero = float(child.evaluate_loss()[0]), zero_loss(child)
        frozen = frozen_loss(child, model.times[k])
        solved = total <= self.solved * frozen or total <= SETTLED * zero
        task.events.append({"event": "slab", "slab": k, "times": [model.times[k], model.times[k + 1]],
                            "step": child.step, "loss": total, "zero_loss": zero,
                            "frozen_loss": frozen, "solved": solved, "timed_out": timed_out,
                            "rel_l2": child.evaluator.quick_error(piece),
                            **({} if not isinstance(warp, Warp) else
                               {"moved": 1 + int(moved is not None)}),
                            **({} if not isinstance(warp, Patch) else
                               {"patch": [round(float(v), 6) for v in warp.centres.mean(dim=0)]})})
        return SlabResult(total, solved, timed_out)


def slab_points(collocation: Collocation, piece: nn.Module, outputs: int, *,
                laid_out: bool) -> Collocation:
    """The collocation of a slab: the run's, with at least ``ROWS`` rows per Gaussian of
    ``piece`` (its interior points times ``outputs``, the fields) where Newton trains the
    slab layout of a default march (``laid_out``: thin, or wide in space in more than one
    space dimension).

    A thin slab of a scalar problem has 1020 Gaussians where the run's 2000 points give two
    rows each (the model is sized at two equations a Gaussian and capped at 1024, see
    :func:`~pinn_gmnm.run.equations`); Newton on its output layer then fitted the points
    better than the solution between them: on ``burgers``' slabs after the shock the
    held-out loss rose after the second or third step, and the slabs ended at 1e-4 to
    6e-4. Measured at 60 s (2-core CPU, alone): with this rule (4080 points) ``burgers``
    2.45e-4 → 8.0e-5 (seeds 1 and 2: 7.3e-5, 2.9e-5), ``allen-cahn`` 3.9e-4 → 3.6e-4,
    an untuned Fisher–KPP front (u_t = 10⁻³ u_xx + 10 u(1 − u), Neumann ends) 6.9e-3 →
    1.9e-3. The systems (``schrodinger``,
    ``gray-scott``: 575 Gaussians, two fields) already have about 7 rows each and keep
    their points: doubled (before the feature cache made Newton's evaluations cheaper)
    they starved their marches (0.74 and 0.68).

    In two space dimensions a slab has 980 Gaussians where the run's 2000 points gave two
    rows each; with four (60 s, alone): ``burgers-2d`` 2.6e-2 → 1.3e-2 (its march now
    spends the whole budget, where it had finished in 37 s), an untuned Allen–Cahn
    (:data:`~pinn_gmnm.models.slabs.NEWTON_WIDTH`) 3.7e-3 → 2.7e-3, ``fisher-2d`` 1.7e-2
    either way."""
    layer = getattr(piece, "layer", None)
    if not laid_out or layer is None:
        return collocation
    need = math.ceil(ROWS * layer.components / max(outputs, 1))
    return collocation if collocation.interior >= need else \
        dataclasses.replace(collocation, interior=need)


class _Frozen(nn.Module):
    """``model`` with time held at ``t``: the state at t, standing still."""

    def __init__(self, model: nn.Module, t: float) -> None:
        super().__init__()
        self.model, self.t = model, t

    def forward(self, x: Tensor) -> Tensor:
        held = x[:, -1:] * 0 + self.t  # still on the graph: ∂/∂t is 0, not missing
        return self.model(torch.cat([x[:, :-1], held], dim=1))


def frozen_loss(task: Task, t: float) -> float:
    """The loss of ``task`` (under its current term weights) for the state its model
    reaches at time ``t`` held constant over the slab: what the slab's loss would be if
    nothing changed — for an evolution u_t = F(u), the size of the change F(u(t))."""
    with torch.enable_grad():  # the held model has no closed-form derivatives: autograd
        return float(task.loss_of(_Frozen(task.model, t))[0])


def _slab_evaluator(task: Task, sub: Problem) -> Evaluator:
    """The run's evaluation points (and solution values) that lie in the slab of ``sub``
    (its ends included)."""
    ev = task.evaluator
    t = ev.points[:, -1]
    g = sub.geometry
    assert isinstance(g, SpaceTime)
    rows = (t >= g.t0 - g.tol) & (t <= g.t1 + g.tol)
    # (a thinned reference may have no time level inside a short slab: no error then)
    exact = None if ev.exact is None or not rows.any() else ev.exact[rows]
    return Evaluator(sub, ev.points[rows], exact, ev.against)


def every_field_starts(problem: Problem) -> bool:
    """Whether an initial condition of order 0 gives each of ``problem``'s outputs its
    starting state (what a slab of a march carries over from the slab before)."""
    started = {c.output or problem.outputs[0] for c in problem.conditions
               if isinstance(c, Initial) and c.order == 0}
    return started >= set(problem.outputs)


def slab_count(slabs: int | None, problem: Problem, *, hard: bool = False,
               trial: str | None = None) -> int:
    """How many time slabs a run solves ``problem`` in: ``slabs`` when given (checked to
    apply); by default ``DEFAULT_SLABS`` for an evolution problem whose model can be judged
    on the single block by its method's first solve (``trial``, see :func:`.run.block_trial`:
    ``gauss-newton`` for a nonlinear problem, ``grow`` for a linear one) and whose every
    field an initial condition starts, with the single block tried first (see
    :class:`March`); else 1 — one space-time block.

    Marching is not forced on every evolution problem. Measured with the default GMNM at a
    60 s training budget (2-core CPU shared with other jobs): in 5 slabs ``heat-2d``
    2.0e-2 → 1.7e-3, ``allen-cahn`` 0.66 → 9.7e-2, ``heat-1d`` 5.8e-9 → 2.0e-9,
    ``wave-1d`` unchanged (4.0e-8); but ``advection-1d`` 3.6e-9 → 1.7e-8 (errors carried
    from slab to slab are not damped) and ``klein-gordon``, which one block solves to
    1e-8, 1.9e-7 in 8 slabs: hence a march only where the single block fails. Nonlinear
    problems in one space dimension march in thin slabs (catalogue, 60 s, alone on the
    machine: ``allen-cahn`` 0.66 → 4.1e-3, ``burgers`` 0.35 → 7.1e-2, ``schrodinger`` 1.09
    → 0.31 when it was first measured); in more, in slabs wide in space, as linear ones
    (:data:`~pinn_gmnm.models.slabs.NEWTON_WIDTH`). A problem with a field
    that no initial condition starts (the pressure of ``taylor-green``, which only the
    equations tie to the velocity) keeps one block: a slab would carry no state for it
    (``taylor-green`` marched: pressure off by 4e5, velocity 0.47)."""
    timed = problem.geometry.time_dependent
    if slabs is None:
        auto = (trial is not None and timed and not hard and not problem.unknowns
                and every_field_starts(problem))
        return DEFAULT_SLABS if auto else 1
    if slabs > 1 and not timed:
        raise GMNMError(f"--slabs {slabs}: problem '{problem.name}' does not depend on "
                        "time; use --slabs 1")
    if slabs > 1 and hard:
        raise GMNMError(f"--slabs {slabs} and --hard do not combine: each slab starts "
                        "from the previous slab's state, not the initial condition; "
                        "use --slabs 1 or --soft")
    if slabs > 1 and problem.unknowns:
        raise GMNMError(f"--slabs {slabs}: time marching does not learn the unknown "
                        "coefficients of an inverse problem; use --slabs 1")
    return slabs
