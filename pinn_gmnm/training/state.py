"""Training state at safe points: what a stopped run needs to continue exactly, and what a
diverging run rolls back to.

A *safe point* is a moment between two steps of a stage where the model, the stage's
optimiser and the stage's own counters are consistent. Stages announce them with
:meth:`Task.safe_point <pinn_gmnm.training.task.Task.safe_point>`; the task then

1. checks for divergence (a NaN or infinite loss or parameter, or a loss that blew up to
   ``Divergence.blowup`` × the initial loss) and raises :class:`Diverged` if so,
2. keeps a :class:`Snapshot` of the state every few steps, and wherever a stop or the
   budget ends training: the latest (to resume from) and the last one whose loss has been
   seen to be fine (to roll back to),
3. raises :class:`Stopped` when a stop was requested (Ctrl-C, SIGTERM).

:func:`~pinn_gmnm.training.solve.solve` catches both: on divergence it restores the last
snapshot, lowers the stage's learning rate and continues (a bounded number of times); on
a stop it returns the snapshot, which :mod:`pinn_gmnm.run` saves in the checkpoint so
that ``--resume`` continues bit for bit where the run stopped.

A snapshot as saved holds only tensors, dicts, lists, numbers and strings, so a
checkpoint stays loadable with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..errors import GMNMError

SNAPSHOT_VERSION = 1


class Stopped(Exception):
    """Raised at a safe point after a stop was requested; the task's snapshot is the state
    to resume from. Stages must let it propagate."""


class Diverged(Exception):
    """Raised at a safe point when the loss or a parameter is not finite (or the loss blew
    up). Stages must let it propagate; :func:`solve` rolls back and retries."""

    def __init__(self, reason: str, step: int, loss: float) -> None:
        super().__init__(reason)
        self.reason, self.step, self.loss = reason, step, loss


@dataclass(frozen=True)
class Divergence:
    """What counts as divergence and what is done about it.

    A safe point has diverged when the loss or any parameter is NaN or infinite, or when
    the loss exceeds ``blowup`` × max(1, initial loss). The run then goes back to the last
    good snapshot, its stage's learning rate is multiplied by ``lr_factor`` (see
    :meth:`Stage.with_lower_lr <pinn_gmnm.training.stages.Stage.with_lower_lr>`) and
    training continues; after ``retries`` such roll-backs (over the whole run), or for a
    stage without a learning rate, the run stops with the last good state and the status
    ``diverged``.
    """

    retries: int = 3
    lr_factor: float = 0.1
    blowup: float = 1e6

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise GMNMError(f"divergence retries must be a whole number >= 0, got {self.retries!r}")
        if not 0 < self.lr_factor < 1:
            raise GMNMError(f"divergence lr_factor must lie in (0, 1), got {self.lr_factor!r}")
        if not 1 < self.blowup <= math.inf:
            raise GMNMError(f"divergence blowup factor must be above 1, got {self.blowup!r}")

    def check(self, loss: float, params: list[torch.nn.Parameter], initial_loss: float) -> str | None:
        """Why the state has diverged, or None when it is fine."""
        if not math.isfinite(loss):
            return f"the loss is {loss}"
        limit = self.blowup * max(1.0, initial_loss) if math.isfinite(initial_loss) else math.inf
        if loss > limit:
            return f"the loss blew up to {loss:.3g} (over {self.blowup:g} × the initial {initial_loss:.3g})"
        if any(p.numel() for p in params):  # one synchronisation for all parameters: NaN and ±inf survive amax
            peaks = torch.stack([p.detach().abs().amax() for p in params if p.numel()])
            if not bool(torch.isfinite(peaks).all()):
                return "a parameter is not finite"
        return None


def copy_state(obj: Any, device: torch.device | str | None = None) -> Any:
    """A deep copy of nested dicts, lists and tuples with every tensor detached and cloned
    (and moved to ``device`` when given): what an optimiser's ``state_dict()`` needs to be
    kept while training goes on."""
    if isinstance(obj, Tensor):
        t = obj.detach()
        return t.to(device, copy=True) if device is not None else t.clone()
    if isinstance(obj, dict):
        return {k: copy_state(v, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [copy_state(v, device) for v in obj]
    if isinstance(obj, tuple):
        return tuple(copy_state(v, device) for v in obj)
    return obj


@dataclass
class Snapshot:
    """The state of a run at a safe point.

    ``stage`` is the index of the stage to run (or continue) next and ``stage_state``
    what that stage passed to ``safe_point`` (None: start the stage from its beginning).
    ``history_len`` says how many history rows belong to this state.
    """

    stage: int
    stage_state: dict[str, Any] | None
    model: dict[str, Tensor]
    step: int
    history_len: int
    last_eval: int
    elapsed: float
    rng: Tensor
    extra: dict[str, Any] = field(default_factory=dict)
    """Unknown coefficients, loss weights, callbacks' state and changed points (see
    :meth:`Task._extra_state <pinn_gmnm.training.task.Task._extra_state>`)."""

    def to_dict(self, *, stages: list[dict[str, Any]], history: list[dict[str, Any]],
                events: list[dict[str, Any]], initial_loss: float) -> dict[str, Any]:
        """Plain data for a checkpoint (tensors on the CPU), with the run's stage list,
        history up to this state and events."""
        return {
            "version": SNAPSHOT_VERSION, "stage": self.stage,
            "stage_state": copy_state(self.stage_state, "cpu"),
            "model": copy_state(self.model, "cpu"), "step": self.step,
            "last_eval": self.last_eval, "elapsed": self.elapsed, "rng": self.rng,
            "extra": copy_state(self.extra, "cpu"),
            "stages": [dict(s) for s in stages], "history": [dict(r) for r in history[:self.history_len]],
            "events": [dict(e) for e in events], "initial_loss": initial_loss,
        }

    @staticmethod
    def check_dict(data: Any, source: str = "checkpoint") -> dict[str, Any]:
        """``data`` if it looks like :meth:`to_dict`'s output, else a clear error."""
        keys = {"version", "stage", "stage_state", "model", "step", "last_eval", "elapsed", "rng",
                "stages", "history", "events", "initial_loss"}
        if not isinstance(data, dict) or not keys <= set(data):
            raise GMNMError(f"{source} holds no resumable training state")
        if data["version"] != SNAPSHOT_VERSION:
            raise GMNMError(
                f"{source} holds training state of version {data['version']!r}; this gmnm-pde "
                f"resumes version {SNAPSHOT_VERSION}"
            )
        return data
