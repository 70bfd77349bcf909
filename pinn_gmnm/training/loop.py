"""Running a list of stages: resuming inside one, rolling back after divergence, stopping
cleanly on request.

The status of a run says how it ended:

=================  ============================================================
``completed``      every stage ran to its end
``out-of-budget``  the time budget ran out (resumable with a larger budget)
``interrupted``    a stop was requested (Ctrl-C, SIGTERM); resumable
``diverged``       divergence persisted after the allowed roll-backs; the model
                   holds the last good state
=================  ============================================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ..errors import GMNMError
from .stages import Stage
from .state import Diverged, Snapshot, Stopped
from .task import Callback, Task


def _notify(callbacks: Sequence[Callback], event: str, stage: Stage, task: Task) -> None:
    for cb in callbacks:
        if hasattr(cb, event):
            getattr(cb, event)(stage, task)


def run_stages(task: Task, callbacks: Sequence[Callback] = ()) -> str:
    """Run ``task.stages[task.stage_index:]``; returns the status (see above).

    ``task.stages`` is updated in place when a stage's learning rate is lowered. On return the
    model holds the state of ``task.snapshot`` unless the run completed or ran out of
    budget (then it holds the final state, which is also the snapshot's).
    """
    retries = 0
    stages = task.stages
    if task.snapshot is None:
        try:  # the state to roll back to before any step
            task.safe_point(None, loss=task.initial_loss)
        except Stopped:
            return "interrupted"
        except Diverged as d:
            raise GMNMError(f"cannot start training: {d.reason} at the initial model") from None
    while task.stage_index < len(stages):
        i = task.stage_index
        stage = stages[i]
        _notify(callbacks, "on_stage_start", stage, task)
        try:
            stage.run(task)
            if task.out_of_time():
                return "out-of-budget"  # keep the snapshot inside the stage: resumable
            task.advance_stage()
            # The stage boundary: the next stage starts afresh, from verified parameters.
            task.safe_point(None, loss=float(task.evaluate_loss()[0]))
        except Stopped:
            task.events.append({"event": "interrupted", "step": task.step, "stage": stage.kind})
            return "interrupted"
        except Diverged as d:
            snap = task.good
            assert snap is not None
            task.restore(snap)
            culprit = stages[snap.stage]
            lowered = culprit.with_lower_lr(task.divergence.lr_factor)
            event: dict[str, Any] = {"event": "diverged", "stage": stage.kind, "step": d.step,
                                     "reason": d.reason, "rolled_back_to": snap.step}
            task.events.append(event)
            if lowered is None or retries >= task.divergence.retries:
                event["action"] = ("stopped: " + ("no learning rate to lower" if lowered is None
                                                  else f"{retries} roll-backs did not help"))
                return "diverged"
            retries += 1
            event["action"] = f"lowered the learning rate of {culprit.kind} to {lowered.lr:.3g}"  # type: ignore[attr-defined]
            stages[snap.stage] = lowered
            continue
        _notify(callbacks, "on_stage_end", stage, task)
    return "out-of-budget" if task.out_of_time() else "completed"


def apply_resume(task: Task, state: dict[str, Any]) -> None:
    """Put ``task`` (and its stages, for learning rates lowered before the stop) in the
    state of a saved snapshot (see :meth:`Snapshot.to_dict`)."""
    Snapshot.check_dict(state)
    stages = task.stages
    saved = state["stages"]
    if [s.get("type") for s in saved] != [s.kind for s in stages]:
        raise GMNMError(
            "cannot resume: the saved run trained with stages "
            f"{[s.get('type') for s in saved]}, this one with {[s.kind for s in stages]}"
        )
    for i, (stage, spec) in enumerate(zip(stages, saved)):
        if stage.to_dict() != spec:
            fields = {k: v for k, v in spec.items() if k != "type"}
            stages[i] = dataclasses.replace(stage, **fields)
    try:
        task.model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise GMNMError(f"cannot resume: the saved parameters do not fit this model ({exc})") from None
    snap = Snapshot(stage=int(state["stage"]), stage_state=state["stage_state"],
                    model={k: v.detach().clone() for k, v in task.model.state_dict().items()},
                    step=int(state["step"]), history_len=len(state["history"]),
                    last_eval=int(state["last_eval"]), elapsed=float(state["elapsed"]),
                    rng=state["rng"], extra=state.get("extra", {}))
    task.history[:] = [dict(r) for r in state["history"]]
    task.events[:] = [dict(e) for e in state["events"]]
    task.initial_loss = float(state["initial_loss"])
    task.restore(snap)
    task.clock.set_elapsed(snap.elapsed)
    task.events.append({"event": "resumed", "step": task.step,
                        "stage": stages[snap.stage].kind if snap.stage < len(stages) else "end"})


def snapshot_dict(task: Task) -> dict[str, Any] | None:
    """The task's last snapshot as plain data for a checkpoint (None before the first)."""
    if task.snapshot is None:
        return None
    return task.snapshot.to_dict(stages=[s.to_dict() for s in task.stages], history=task.history,
                                 events=task.events, initial_loss=task.initial_loss)
