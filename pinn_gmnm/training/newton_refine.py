"""Newton's method again on a finer mixture, where a steady nonlinear problem is left short.

Least squares grows a GMNM on a linear problem (:mod:`.growth`); on a nonlinear one the
default trains a fixed mixture by Newton's method (Levenberg–Marquardt on the output layer,
then on every parameter) and stops when its steps stop paying. A solution the mixture
does not resolve then ended the run early: −ε²u'' + u³ + u = f on [−1, 1] with
u = tanh(x/(√2 ε)) + x/2 and ε = 0.02 (a layer 0.03 wide) stopped after 2 s of a 60 s
budget at 1.3e-2 with its 64 Gaussians.

:class:`NewtonRefine` then lays out twice the Gaussians along each axis (afresh, as grow's
uniform refinement does, with more collocation points when they fall under ``ROWS`` rows
per Gaussian), starts the output layer as the least-squares fit of the coarse solution (a
warm start: Newton continues from it rather than from u ≈ 0), and runs Newton again, on
the output layer and then, when they are few enough, on every parameter. A level is kept
when its held-out loss is below the coarse one's (the same points and weights; otherwise
the coarse level is put back), and refinement goes on while Newton is still short of a
solution (:func:`~.gauss_newton.short_of_solution`), ``FIT_STEPS`` Newton steps of the next level
fit the time left (the last step's time, scaled by the cost of factorising the next
level's Jacobian), and that Jacobian fits the memory. Measured (60 s budget, 2-core CPU):
the layer above 1.3e-2 → 2.1e-6 (128 then 256 Gaussians; done in 9 s); the same
equation in 2-D with a diagonal layer, tanh((x + y − 1)/(√2 ε)), ε = 0.03, 1.7e-2 →
1.1e-2 (1024 → 4096 Gaussians, three Newton steps on its output layer in the time
left). The held-out losses of ε²u'' = u³ − u with u(±1) = ±1 fell as much, 5.5e-5 →
1.5e-10, but its error only from 2.6e-2 to 1.7e-2: there the layer's position is fixed
only by exponentially small terms (any shift nearly solves it), so the error measures the
problem, not the mixture.

A data-parallel run (torchrun) keeps its first mixture: the refinement's points are not
yet drawn shard by shard. A stop inside a level's Newton resumes there: the level, its
points and the coarse level's held-out terms and parameters travel in Newton's safe
points.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import GMNMError
from ..models import count_parameters
from ..models.gmnm import GMNM
from .gauss_newton import GaussNewton, check_solved, short_of_solution
from .growth import refinement_points, system_fits
from .heldout import HeldOut
from .linear import fit_state
from .stages import Stage
from .task import Task

LEVELS = 2
"""Refinements at most, each with twice the Gaussians along each axis (64 → 128 → 256 in
1-D, 1024 → 4096 → 16 384 in 2-D, as time and memory allow)."""

ROWS = 2
"""Residual rows per unknown of the output layer at least (more points are drawn when a
level needs them; the default model has two)."""

FIT_STEPS = 3
"""A level is laid out only when this many of its Newton steps fit the time left."""


def newton_columns(model: GMNM, per: float, components: int | None = None) -> int:
    """The unknowns of the last Newton phase on ``model`` with ``components`` Gaussians
    (its own count when None): every parameter when they are few enough, else the output
    layer (see :meth:`NewtonRefine.phases`)."""
    m = model.layer.components if components is None else components
    every = math.ceil(per * m)
    return every if every <= GaussNewton.max_parameters else (m + 1) * model.layer.out_features


def factor_cost(rows: int, cols: int) -> float:
    """The flops of factorising a Jacobian of ``rows`` × ``cols`` (QR when tall, the Gram
    matrix's Cholesky when wide), up to a constant."""
    return float(rows) * cols * min(rows, cols)


def last_step_seconds(task: Task) -> float:
    """How long the last recorded step took (from the history's times; 0 when unknown)."""
    times = [r["time"] for r in task.history[-2:] if isinstance(r.get("time"), (int, float))]
    return float(times[1] - times[0]) if len(times) == 2 else 0.0


@dataclass(frozen=True)
class NewtonRefine(Stage):
    """Refine a GMNM that Newton's method left short of a solution and run Newton again
    (see the module docstring); ``levels`` refinements at most, ``gn_steps`` Newton steps
    per phase. Records ``refined`` events (Gaussians, points, held-out loss against the
    coarse level's, kept or not)."""

    levels: int = LEVELS
    gn_steps: int = 100
    kind: ClassVar[str] = "newton-refine"

    def __post_init__(self) -> None:
        if isinstance(self.levels, bool) or not isinstance(self.levels, int) or self.levels < 0:
            raise GMNMError(f"newton-refine levels must be a whole number >= 0, got {self.levels!r}")

    @property
    def steps_planned(self) -> int | None:
        return None

    def phases(self, task: Task) -> list[GaussNewton]:
        """Newton as the gauss-newton method trains: the output layer, then every
        parameter when there are few enough of them."""
        head = GaussNewton(steps=self.gn_steps, head_only=True, min_progress=0.02, patience=3)
        if count_parameters(task.model) > GaussNewton.max_parameters:
            return [head]
        return [head, GaussNewton(steps=self.gn_steps)]

    def run(self, task: Task) -> None:
        model = task.model
        if self.levels == 0 or not isinstance(model, GMNM) or task.collocation is None \
                or task.loss.parallel.world > 1:  # (not yet for data-parallel runs)
            return
        self.levels_from(task)
        short = [e for e in task.events if e["event"] == "short of a solution"]
        if not short or short[-1]["step"] != task.step:  # (e.g. a finer level undone)
            check_solved(task, float(task.evaluate_loss()[0]), self.kind)

    def levels_from(self, task: Task) -> None:
        """Refine, level after level, from the start or from where a stop left off."""
        state = task.resumed()
        if state is not None:  # inside a level's Newton: continue it
            level = dict(state["refine"])
            self.newton(task, level, state)
            if not self.judge(task, level):
                return
        else:
            level = {"level": 0, "scale": 1}
        while level["level"] < self.levels and not task.out_of_time():
            level = self.refine(task, level)
            if level is None:
                return
            self.newton(task, level, None)
            if not self.judge(task, level):
                return

    def refine(self, task: Task, done: dict[str, Any]) -> dict[str, Any] | None:
        """Lay out the level after ``done`` when Newton is short of a solution on ``done``
        and the next level fits (see the module docstring); its description (None:
        stop)."""
        loss, model = task.loss, task.model
        assert isinstance(model, GMNM)
        if short_of_solution(task, float(task.evaluate_loss()[0])) is None:
            return None
        outputs, rows, d = loss.problem.n_outputs, sum(loss.counts), model.layer.in_features
        m = model.layer.components * 2**d  # twice as many along each axis
        scale = max(1, math.ceil(ROWS * m * outputs / rows))  # the points they need
        # a Newton step as the last one, scaled by the factorisation's cost
        per = count_parameters(model) / model.layer.components  # parameters per Gaussian
        now, then = newton_columns(model, per), newton_columns(model, per, m)
        step = last_step_seconds(task)
        predicted = FIT_STEPS * step * factor_cost(scale * rows, then) / factor_cost(rows, now)
        fits, needed = system_fits(scale * rows, then, loss.batch.interior)
        if not predicted <= task.clock.left() or not fits:
            task.events.append({"event": "refine skipped", "stage": self.kind, "step": task.step,
                                "components": m, "predicted_s": predicted, "bytes": needed})
            return None
        held = HeldOut(task, task.params)
        coarse = {"terms": held.terms(task), "model": copy.deepcopy(model.state_dict()),
                  "weights": loss.weights_state(), "scale": done["scale"]}
        frozen = copy.deepcopy(model).requires_grad_(False)
        level = done["level"] + 1
        scale *= coarse["scale"]
        points = refinement_points(task, level, scale)
        task.respread(m, points, seed=task.seed + level, factor=1.0)
        task.sync_params()
        fit_state(model, loss.batch.interior, frozen)  # start from the coarse solution
        task.evaluate_loss()  # (counts the new rows)
        return {"level": level, "phase": 0, "coarse": coarse, "components": m,
                "points": len(points), "scale": scale}

    def newton(self, task: Task, level: dict[str, Any], state: dict[str, Any] | None) -> None:
        """The level's Newton phases, from the start or from the safe point ``state``."""
        phases = self.phases(task)
        for i in range(int(level["phase"]), len(phases)):
            level["phase"] = i
            phases[i].iterate(task, state, carry={"refine": dict(level)})
            state = None
            if task.out_of_time():
                break

    def judge(self, task: Task, level: dict[str, Any]) -> bool:
        """Keep the level when its held-out loss is below the coarse level's (the same
        points, weighed alike; True: go on refining), else put the coarse level back."""
        coarse = level["coarse"]
        held = HeldOut(task, task.params)  # (its best: the loss there now)
        now, before = held.best, held.weigh(task, coarse["terms"])
        kept = now < before
        task.events.append({"event": "refined", "stage": self.kind, "step": task.step,
                            "level": level["level"], "components": level["components"],
                            "points": level["points"], "held_out": now,
                            "held_out_coarse": before, "kept": kept})
        if not kept:
            task.model.load_state_dict(coarse["model"])
            task.sync_params()
            task.loss.load_weights_state(coarse["weights"])
            refinement_points(task, level["level"] - 1, coarse["scale"])
            task.evaluate_loss()  # (counts the rows)
            return False
        return not task.out_of_time() and math.isfinite(now)
