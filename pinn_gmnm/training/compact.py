"""A compact mixture trained on all its parameters, for fits that growth leaves short.

Growth (:mod:`.growth`) fits the mixing weights of many fixed Gaussians by least squares.
On a fit whose target has a feature no fixed layout resolves — the front of
``tanh(20(x + y))``, the rings of ``exp-sin-4d`` — that overfits the samples: on ``front``
(2000 samples) growth's best held-out round was its third, at 3.3e-2, with 1281
Gaussians, and the later rounds interpolated the samples ever better and the target
worse. An MLP represents the front with one neuron; a mixture can with a few dozen
elongated Gaussians, once their centres μ and projections W move.

Moving them from the grown mixture does not work: its Gaussians are broad (4 × their
spacing, for the least-squares solve's accuracy) and their weights large and cancelling
(the system's condition number ~1e17, rank 590 of 962 on ``front``), so the output is
so sensitive to μ and W that the linearisation holds only for tiny steps and
Levenberg–Marquardt stalls. It is the start, not the method: with 40 Gaussians on
``front``, ``--method gauss-newton`` (output layer, then all parameters, 100 steps)
stalls at 0.26 from Gaussians 4 × their spacing wide and reaches 3.5e-3 from Gaussians
as wide as their spacing; twice the spacing (condition number 7e7) still stalled at 0.17
after 650 iterations. (Variable projection by L-BFGS does not get far from either: 0.26
and 0.18.) :class:`Compact` therefore starts afresh from a small, well-conditioned
mixture — m isotropic Gaussians as wide as their spacing (condition number ~1e3), one
per ``equations_each`` equations and never more parameters than equations /
``oversampling`` — solves its weights by least squares, and runs Levenberg–Marquardt
on every parameter (:class:`~.gauss_newton.GaussNewton`) until the budget or its
held-out check stops it. It keeps the result only when its loss on the held-out points
(:class:`~.heldout.HeldOut`) is below the grown mixture's; otherwise the grown mixture
goes back. A fit growth already solved (held-out residual below ``skip_below`` × that of
the zero function, as :class:`~.growth.Grow` judges it) is left alone at the cost of one
evaluation.

**Size.** Fewer Gaussians converge in fewer iterations, each cheaper: on ``front``
(2000 samples, 30 s of iterations, one thread, another process running) 25 Gaussians
reached 6.1e-5, 36 5.2e-5, 49 about 2e-4, 100 1.6e-3 (after 40 s). The 4-D
``exp-sin-4d`` is limited by its 2000 samples instead (the held-out check stops it) and
gains a little from more Gaussians, narrower (0.7 × their spacing), past the
parameter limit: 40 (841 parameters) 5.7e-2, 80 5.4e-2, 120 4.7e-2, 200 4.5e-2, 300
4.7e-2; averaging three fits of 40 from other centres, 5.3e-2. One per 50 samples,
as wide as their spacing (40 in both) is the default; with it, at 60 s (the same
conditions), ``front`` 3.3e-2 → 2.2e-5, ``exp-sin-4d`` 0.16 → 5.7e-2 and
``multiscale`` 0.126 → 0.101 (its large scale fitted, the small one of amplitude 0.1
not), the fits growth solves unchanged.

**Steady nonlinear problems.** The gauss-newton method runs the stage on a GMNM that
Newton's method leaves short on its output layer (a steady nonlinear problem without a
user's guess), before the refinement of :mod:`.newton_refine`, in at most
:data:`STEADY_SHARE` of the time left. Its output layer then starts as the least-squares
fit of the solution it replaces (a residual that is not linear in the weights cannot be
solved for them), the terms are scaled for the compact mixture's own rows, and the
replaced mixture's held-out terms, taken before it is replaced, are weighed again under
those scales (scales set for a mixture's narrowest Gaussians leave the residual's weight
small, and the comparison would then hinge on the boundary rows). Refinement then
goes on from whichever mixture is kept, and every parameter moves after it until the
budget or the held-out check stops them. Measured at 60 s (2-core CPU, alone; the
diagonal layer ``layer_2d`` of ``benchmarks/untuned_problems.py``, its PINN 7.5e-5):
Newton and local rounds 7.1e-4; the compact mixture (48 Gaussians) after those rounds,
in half their time, 8.5e-4 (it started from their solution, on their extra points);
before them 9.0e-5, and with every parameter moving afterwards until the budget 5.3e-5.
``benchmarks/refinement_checks.py``: ``spot`` 1.6e-2 → 1.4e-6, ``corner`` 6.5e-3 →
3.0e-3. The 1-D layer of :mod:`.newton_refine` is refined from the compact 48 Gaussians
(96, 192) instead of the 64 (128, 256): 2.1e-6 → 3.0e-6. Problems Newton solves
(``quasilinear``) or that spend the budget in Newton (``kovasznay``,
``lid-driven-cavity``; :data:`START_STEPS`) are unchanged. Where a guess chose among
solutions it is not tried: on ε²u'' = u³ − u from a guessed layer, whose position only
exponentially small terms fix, it moved the layer (7.8e-3 → 0.14) with a lower residual.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ..errors import GMNMError, require_positive
from ..models.gmnm import GMNM
from .equilibrate import apply_term_scales, jacobian_row_sums
from .gauss_newton import GaussNewton
from .growth import Grow
from .heldout import HeldOut
from .linear import fit_head, fit_state, linear_head
from .newton_refine import last_step_seconds
from .task import SlabClock, Task


STEADY_SHARE = 0.5
"""On a steady nonlinear problem that Newton's method leaves short on its output layer, the
compact mixture may take this share of the time left (the refinement of the mixture,
:class:`~.newton_refine.NewtonRefine`, the rest, when the compact one is not kept)."""


START_STEPS = 4
"""The stage starts only when the time it may take holds this many steps of the stage
before (its start alone — the held-out points, the new mixture's fit — costs about one)."""


def compact_components(dim: int, projections: int, equations: int, outputs: int = 1,
                       equations_each: float = 50.0, oversampling: float = 2.0) -> int:
    """One Gaussian per ``equations_each`` equations, and no more than keep the
    parameters (d + k·d + o each, o more for the bias) at most ``equations /
    oversampling`` (at least 1)."""
    per = dim + projections * dim + outputs
    most = math.floor((equations / oversampling - outputs) / per)
    return max(1, min(math.floor(equations / equations_each), most))


@dataclass(frozen=True)
class Compact(GaussNewton):
    """Replace the mixture by a compact one and train all its parameters by
    Levenberg–Marquardt (see the module docstring); kept only when its held-out loss is
    below the mixture's it replaced. ``equations_each``: equations per Gaussian of the
    compact mixture, ``oversampling``: per parameter at least (see
    :func:`compact_components`); ``width_factor``: its Gaussians' width over their spacing;
    ``skip_below``: no compact mixture when the held-out residual is already below this ×
    the zero function's (growth's ``tol``). The other options are
    :class:`~.gauss_newton.GaussNewton`'s (until the budget, by default, and the loss
    terms as the stage before left them weighed, so that the held-out losses compared
    are one measure)."""

    steps: int | None = None
    equilibrate: bool = False
    equations_each: float = 50.0
    oversampling: float = 2.0
    width_factor: float = 1.0
    skip_below: float = Grow.tol
    share: float = 1.0
    """The share of the training time left when the stage starts that it may take."""
    kind: ClassVar[str] = "compact"

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive("compact skip_below", self.skip_below)
        require_positive("compact equations_each", self.equations_each)
        require_positive("compact oversampling", self.oversampling)
        require_positive("compact width_factor", self.width_factor)
        if not (isinstance(self.share, (int, float)) and 0 < self.share <= 1):
            raise GMNMError(f"compact share must be in (0, 1], got {self.share!r}")

    def run(self, task: Task) -> None:
        if self.steps == 0:
            return
        if not isinstance(task.model, GMNM):
            raise GMNMError(f"stage 'compact' trains a GMNM, not a {type(task.model).__name__}")
        clock = task.clock
        if self.share < 1:  # the rest is the next stages'
            task.clock = SlabClock.sharing(clock, self.share)
        try:
            state = task.resumed()
            if state is None:
                carry = self.start(task)
                if carry is None:
                    return
            else:
                carry = {k: state[k] for k in ("replaced", "replaced_held_out")}
            self.iterate(task, state, carry)
        finally:
            task.clock = clock
        self.finish(task, carry)

    def start(self, task: Task) -> dict[str, Any] | None:
        """Replace the mixture by the compact one with its weights solved; what the
        iterations carry (the mixture replaced and its held-out loss), or None when the
        fit is already solved, the budget spent, or the compact mixture would not be
        smaller."""
        model = task.model
        assert isinstance(model, GMNM)
        if task.collocation is None or task.out_of_time() or \
                task.clock.left() < START_STEPS * last_step_seconds(task):
            return None  # (its start alone would outrun the time it has)
        held = HeldOut(task, task.params)
        before = held.best
        if before <= Grow.target(task, held, self.skip_below):
            task.events.append({"event": "compact skipped", "stage": self.kind,
                                "step": task.step, "reason": "held-out residual below skip_below"})
            return None
        task.evaluate_loss()  # counts the rows
        layer, outputs = model.layer, task.loss.problem.n_outputs
        # the run's own points (not those a refinement added where it was short)
        drawn = (task.collocation.interior + task.collocation.boundary) * outputs
        m = compact_components(layer.in_features, layer.projections,
                               min(sum(task.loss.counts), drawn), outputs, self.equations_each,
                               self.oversampling)
        if m >= layer.components:
            return None
        replaced = copy.deepcopy(model.state_dict())
        coarse = copy.deepcopy(model) if task.loss.problem.linear is False else None
        terms = None if coarse is None else held.terms(task)  # the replaced one's, unweighted
        points = task.interior_points()
        model.respread(m, points, seed=task.seed, width_factor=self.width_factor)
        task.sync_params()
        if coarse is None:
            fit_head(task.loss, model, linear_head(model), None)
        else:  # nonlinear: the output layer starts as the fit of the solution it replaces,
            # the terms scaled for the compact mixture's rows, and the replaced mixture's
            # held-out terms weighed again under those scales (like is compared with like)
            with torch.no_grad():
                fit_state(model, points, coarse)
            apply_term_scales(task, jacobian_row_sums(task, linear_head(model).head_parameters()),
                              self.kind)
            before = held.weigh(task, terms)
        task.events.append({"event": "compact", "stage": self.kind, "step": task.step,
                            "components": m, "replaced_held_out": before,
                            "held_out": held.value(task)})
        return {"replaced": replaced, "replaced_held_out": before}

    def finish(self, task: Task, carry: dict[str, Any]) -> None:
        """Keep the compact mixture when its held-out loss is below the replaced one's,
        otherwise put that one back."""
        now = HeldOut(task, task.params).best
        if now < carry["replaced_held_out"]:
            task.events.append({"event": "compact kept", "stage": self.kind, "step": task.step,
                                "held_out": now})
            return
        task.model.load_state_dict(carry["replaced"])
        task.sync_params()
        task.events.append({"event": "compact undone", "stage": self.kind, "step": task.step,
                            "held_out": now, "replaced_held_out": carry["replaced_held_out"]})
        total, _ = task.evaluate_loss()
        task.record(self.kind, float(total), force_eval=True)
