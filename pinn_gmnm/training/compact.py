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
so sensitive to μ and W that Levenberg–Marquardt finds no step that lowers the loss
(with 100 or 196 Gaussians at that width: no step after one to six iterations, at
0.17 / 0.13). :class:`Compact` therefore starts afresh from a small, well-conditioned
mixture — m isotropic Gaussians as wide as their spacing (condition number ~1e3), m
such that the parameters are at most the equations / ``oversampling`` — solves its
weights by least squares, and runs Levenberg–Marquardt on every parameter
(:class:`~.gauss_newton.GaussNewton`) until the budget or its held-out check stops it.
It keeps the result only when its loss on the held-out points (:class:`~.heldout.HeldOut`)
is below the grown mixture's; otherwise the grown mixture goes back. A fit growth
already solved (held-out residual below ``skip_below`` × that of the zero function, as
:class:`~.growth.Grow` judges it) is left alone at the cost of one evaluation.

Measured on ``front`` (2000 samples, one thread, another process running): 49 Gaussians
(344 parameters) reach 2e-4 after 600 iterations (27 s) and 1e-4 after 870 (40 s); 100
Gaussians 1.6e-3 after 285 iterations (40 s): fewer parameters converge in fewer
iterations, each cheaper.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import GMNMError, require_positive
from ..models.gmnm import GMNM
from .gauss_newton import GaussNewton
from .growth import Grow
from .heldout import HeldOut
from .linear import fit_head, linear_head
from .task import Task


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
    kind: ClassVar[str] = "compact"

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive("compact skip_below", self.skip_below)
        require_positive("compact equations_each", self.equations_each)
        require_positive("compact oversampling", self.oversampling)
        require_positive("compact width_factor", self.width_factor)

    def run(self, task: Task) -> None:
        if self.steps == 0:
            return
        if not isinstance(task.model, GMNM):
            raise GMNMError(f"stage 'compact' trains a GMNM, not a {type(task.model).__name__}")
        state = task.resumed()
        if state is None:
            carry = self.start(task)
            if carry is None:
                return
        else:
            carry = {k: state[k] for k in ("replaced", "replaced_held_out")}
        self.iterate(task, state, carry)
        self.finish(task, carry)

    def start(self, task: Task) -> dict[str, Any] | None:
        """Replace the mixture by the compact one with its weights solved; what the
        iterations carry (the mixture replaced and its held-out loss), or None when the
        fit is already solved, the budget spent, or the compact mixture would not be
        smaller."""
        model = task.model
        assert isinstance(model, GMNM)
        if task.collocation is None or task.out_of_time():
            return None
        held = HeldOut(task, task.params)
        before = held.best
        if before <= self.skip_below**2 * Grow.zero_loss(task, held):
            task.events.append({"event": "compact skipped", "stage": self.kind,
                                "step": task.step, "reason": "held-out residual below skip_below"})
            return None
        task.evaluate_loss()  # counts the rows
        layer, outputs = model.layer, task.loss.problem.n_outputs
        m = compact_components(layer.in_features, layer.projections, sum(task.loss.counts),
                               outputs, self.equations_each, self.oversampling)
        if m >= layer.components:
            return None
        replaced = copy.deepcopy(model.state_dict())
        model.respread(m, task.interior_points(), seed=task.seed, width_factor=self.width_factor)
        task.sync_params()
        fit_head(task.loss, model, linear_head(model), None)
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
