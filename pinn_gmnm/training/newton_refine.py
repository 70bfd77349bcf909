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
solution (:func:`~.gauss_newton.short_of_solution`), ``FIT_STEPS`` Newton steps of the
next level fit the time left (the last step's time, scaled by the cost of factorising the
next level's Jacobian), and that Jacobian fits the memory. Measured (60 s budget, 2-core
CPU): the layer above 1.3e-2 → 2.1e-6 (128 then 256 Gaussians; done in 9 s). The same
equation in 2-D with a diagonal layer, tanh((x + y − 1)/(√2 ε)), ε = 0.03, went from
1.7e-2 only to 1.1e-2 with uniform levels: 1024 → 4096 Gaussians, whose Newton steps on
the output layer took 28 s each (two fitted; see the local rounds below). The held-out
losses of ε²u'' = u³ − u with u(±1) = ±1 fell as much, 5.5e-5 → 1.5e-10, but its error
only from 2.6e-2 to 1.7e-2: there the layer's position is fixed only by exponentially
small terms (any shift nearly solves it), so the error measures the problem, not the
mixture.

**Local rounds.** A uniform level costs 2^d times the Gaussians and its Newton steps grow
with the cube; in 2-D they outran the budget. So a uniform level is laid out only when its
``FIT_STEPS`` steps are predicted to take at most ``UNIFORM_SHARE`` of the time left;
otherwise (and after the uniform levels) refinement goes on in local rounds, as grow does
for least squares (:func:`~.growth.add_at_peaks`): ``FRACTION`` more Gaussians where the
weighted residual peaks, each half as wide as the narrowest one covering its place and
with collocation points of its own, and Newton on the output layer from where the last
round left it (the new weights start at 0): Newton proper, its damping starting at
:data:`~.march.NEWTON_DAMPING` as on a slab (the cautious start took 15 to 17 steps a
round, 6 to 11 with it, to the same held-out loss). Only the output layer is trained in a
round: on the diagonal layer the all-parameter phase took 6 s a step at 1127 Gaussians and
gained nothing the held-out check kept. A round is judged as a level is (kept when the
held-out loss falls, else the mixture and the points go back), at most ``ROUNDS`` of them,
each when its Newton steps fit. The diagonal layer at 60 s: 1.7e-2 → 7.6e-4 (five rounds,
1024 → 1652 Gaussians; 1.4e-3 in four with the cautious start; the PINN reaches 7.5e-5
there, a tanh ridge being one of its neurons). The 1-D layer still refines uniformly
(2.1e-6): its levels are cheap.

**Before every parameter moves.** The gauss-newton method runs this stage between Newton
on the output layer and Gauss–Newton on all parameters (which is skipped when the
refinement grew the model past its limit, ``GaussNewton(if_fits=True)``). After it, the
all-parameter phase ate the budget first: on −∇·((1 + u²)∇u) = f in the unit disk with a
spot u = exp(−|x − c|²/0.01) (``benchmarks/refinement_checks.py``, written for this
check), ten of its steps took 50 s and left 3.5 relative L2; refined first, four local
rounds reach 1.6e-2 in the same budget. The diagonal layer is the same either way (8.4e-4
against 7.6e-4); problems Newton solves on its output layer (``quasilinear`` of the
untuned set, 6.3e-10) or that spend the budget there (``kovasznay``, ``lid-driven-
cavity``) are not refined at all. A domain's re-entrant corners are not graded for Newton
as grow grades them for least squares, and there the stage does not refine: on −Δu + u³ =
f in the L-shape with u = r^(2/3) sin(2θ/3) (the same file's ``corner``) Newton on the
output layer reached 4.7e-3, and local rounds lowered the held-out loss every round while
the error rose to 0.31, the residual-led refinement not seeing the singular function's
wrong multiple (see :mod:`.corners`).

By default a compact mixture, every parameter trained, is tried first
(:mod:`.compact`, in at most half of the time left); the refinement goes on from whichever
mixture its held-out check keeps.

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
from .batch import Batch
from .corners import reentrant_corners
from .growth import add_at_peaks, local_rows, refinement_points, system_fits
from .heldout import HeldOut
from .linear import fit_state
from .march import NEWTON_DAMPING
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

UNIFORM_SHARE = 0.25
"""A uniform level is laid out only when its ``FIT_STEPS`` Newton steps are predicted to take
at most this share of the time left; otherwise local rounds refine instead."""

ROUNDS = 10
"""Local rounds at most (each adds ``FRACTION`` of the Gaussians: 2.6 times as many after
ten)."""

FRACTION = 0.1
"""A local round adds this fraction of the Gaussians (grow's share, :class:`~.growth.Grow`)."""


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
    rounds: int = ROUNDS
    gn_steps: int = 100
    kind: ClassVar[str] = "newton-refine"

    def __post_init__(self) -> None:
        for name in ("levels", "rounds"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise GMNMError(f"newton-refine {name} must be a whole number >= 0, got {v!r}")

    @property
    def steps_planned(self) -> int | None:
        return None

    def phases(self, task: Task, local: bool) -> list[GaussNewton]:
        """Newton as the gauss-newton method trains: the output layer, then every
        parameter when there are few enough of them; a local round's, the output layer
        only (see the module docstring)."""
        if local:  # (from where the last round left it: Newton proper, as on a slab)
            return [GaussNewton(steps=self.gn_steps, head_only=True, damping=NEWTON_DAMPING,
                                min_progress=0.02, patience=3)]
        head = GaussNewton(steps=self.gn_steps, head_only=True, min_progress=0.02, patience=3)
        if count_parameters(task.model) > GaussNewton.max_parameters:
            return [head]
        return [head, GaussNewton(steps=self.gn_steps)]

    def run(self, task: Task) -> None:
        model = task.model
        if self.levels == self.rounds == 0 or not isinstance(model, GMNM) \
                or task.collocation is None or task.loss.parallel.world > 1:
            return  # (data-parallel runs: not yet)
        if reentrant_corners(task.loss.problem.geometry):
            task.events.append({"event": "refine skipped", "stage": self.kind, "step": task.step,
                                "reason": "re-entrant corners (not graded for Newton)"})
        else:
            self.levels_from(task)
        short = [e for e in task.events if e["event"] == "short of a solution"]
        if not short or short[-1]["step"] != task.step:  # (e.g. a finer level undone)
            check_solved(task, float(task.evaluate_loss()[0]), self.kind)

    def levels_from(self, task: Task) -> None:
        """Refine, level after level (uniform ones first, then local rounds), from the
        start or from where a stop left off."""
        state = task.resumed()
        if state is not None:  # inside a level's Newton: continue it
            level = dict(state["refine"])
            level.setdefault("local", False)
            self.newton(task, level, state)
            if not self.judge(task, level):
                return
        else:
            level = {"level": 0, "scale": 1, "local": False, "round": 0}
        while not task.out_of_time():
            finer = None
            if not level["local"] and level["level"] < self.levels:
                finer = self.refine(task, level)
            if finer is None:
                finer = self.grow(task, level)
            if finer is None:
                return
            level = finer
            self.newton(task, level, None)
            if not self.judge(task, level):
                return

    def coarse(self, task: Task, done: dict[str, Any]) -> dict[str, Any]:
        """What :meth:`judge` compares a level with and puts back when it is not kept:
        the held-out terms, parameters, term scales and points of ``done``."""
        model, loss = task.model, task.loss
        batch = loss.batch
        return {"terms": HeldOut(task, task.params).terms(task),
                "model": copy.deepcopy(model.state_dict()), "weights": loss.weights_state(),
                "scale": done["scale"], "interior": batch.interior.clone(),
                "conditions": [c.clone() for c in batch.conditions]}

    def short(self, task: Task) -> bool:
        return short_of_solution(task, float(task.evaluate_loss()[0])) is not None

    def predicted(self, task: Task, done: dict[str, Any], rows: int, components: int,
                  local: bool) -> tuple[float, bool, int]:
        """``FIT_STEPS`` Newton steps on ``rows`` rows and ``components`` Gaussians (a
        ``local`` round's: on the output layer): their seconds (the last step's, on
        ``done``, scaled by the factorisation's cost), whether the Jacobian fits the
        memory and its bytes."""
        model, loss = task.model, task.loss
        assert isinstance(model, GMNM)
        per = count_parameters(model) / model.layer.components  # parameters per Gaussian
        head = model.layer.out_features  # (the output layer: one weight a Gaussian, a bias)
        # the last step: Newton on the output layer (the method's, before this stage, or
        # a local round's), or the last phase of a uniform level
        now = newton_columns(model, per) if done["level"] and not done["local"] else \
            (model.layer.components + 1) * head
        then = (components + 1) * head if local else newton_columns(model, per, components)
        seconds = FIT_STEPS * last_step_seconds(task) * (
            factor_cost(rows, then) / factor_cost(sum(loss.counts), now))
        fits, needed = system_fits(rows, then, loss.batch.interior)
        return seconds, fits, needed

    def refine(self, task: Task, done: dict[str, Any]) -> dict[str, Any] | None:
        """Lay out the level after ``done`` when Newton is short of a solution on ``done``
        and the next level fits (see the module docstring); its description (None:
        stop)."""
        loss, model = task.loss, task.model
        assert isinstance(model, GMNM)
        if not self.short(task):
            return None
        outputs, rows, d = loss.problem.n_outputs, sum(loss.counts), model.layer.in_features
        m = model.layer.components * 2**d  # twice as many along each axis
        scale = max(1, math.ceil(ROWS * m * outputs / rows))  # the points they need
        predicted, fits, needed = self.predicted(task, done, scale * rows, m, local=False)
        if not predicted <= UNIFORM_SHARE * task.clock.left() or not fits:
            task.events.append({"event": "refine skipped", "stage": self.kind, "step": task.step,
                                "components": m, "predicted_s": predicted, "bytes": needed})
            return None
        coarse = self.coarse(task, done)
        frozen = copy.deepcopy(model).requires_grad_(False)
        level = done["level"] + 1
        scale *= coarse["scale"]
        points = refinement_points(task, level, scale)
        task.respread(m, points, seed=task.seed + level, factor=1.0)
        task.sync_params()
        fit_state(model, loss.batch.interior, frozen)  # start from the coarse solution
        task.evaluate_loss()  # (counts the new rows)
        return {"level": level, "phase": 0, "coarse": coarse, "components": m,
                "points": len(points), "scale": scale, "local": False}

    def grow(self, task: Task, done: dict[str, Any]) -> dict[str, Any] | None:
        """A local round after ``done`` when Newton is short of a solution on it and its
        Newton fits (as :meth:`refine`): ``FRACTION`` more Gaussians where the residual is
        largest, each with points of its own (grow's round, :func:`~.growth.add_at_peaks`);
        its description (None: stop)."""
        loss, model = task.loss, task.model
        assert isinstance(model, GMNM)
        if done.get("round", 0) >= self.rounds or not self.short(task):
            return None
        m, d = model.layer.components, model.layer.in_features
        count = max(1, math.ceil(FRACTION * m))
        predicted, fits, needed = self.predicted(
            task, done, sum(loss.counts) + local_rows(count, d), m + count, local=True)
        if not predicted <= task.clock.left() or not fits:
            task.events.append({"event": "round skipped", "stage": self.kind, "step": task.step,
                                "components": m + count, "predicted_s": predicted,
                                "bytes": needed})
            return None
        coarse = self.coarse(task, done)
        sigma, added = add_at_peaks(task, count, points=True)
        task.evaluate_loss()  # (counts the new rows)
        return {"level": done["level"] + 1, "phase": 0, "coarse": coarse,
                "components": model.layer.components, "points": added,
                "scale": done["scale"], "local": True, "round": done.get("round", 0) + 1,
                "width": float(sigma.min())}

    def newton(self, task: Task, level: dict[str, Any], state: dict[str, Any] | None) -> None:
        """The level's Newton phases, from the start or from the safe point ``state``."""
        phases = self.phases(task, level.get("local", False))
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
                            "level": level["level"], "local": level.get("local", False),
                            "components": level["components"], "width": level.get("width"),
                            "points": level["points"], "held_out": now,
                            "held_out_coarse": before, "kept": kept})
        if not kept:
            task.model.load_state_dict(coarse["model"])
            task.sync_params()
            task.loss.load_weights_state(coarse["weights"])
            if "interior" in coarse:
                task.loss.batch = Batch(coarse["interior"], tuple(coarse["conditions"]))
            else:  # (a state saved before local rounds)
                refinement_points(task, level["level"] - 1, coarse["scale"])
            task.evaluate_loss()  # (counts the rows)
            return False
        return not task.out_of_time() and math.isfinite(now)
