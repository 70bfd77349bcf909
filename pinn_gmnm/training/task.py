"""What a training stage acts on: the model, its loss, a clock and a recorder."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from ..evaluation import Evaluator
from .batch import Batch, Collocation
from .loss import Loss
from .state import Diverged, Divergence, Snapshot, Stopped, copy_state


class Clock:
    """Wall-clock training time, with evaluation pauses left out, against a budget.

    A stage whose steps are long (a Gauss–Newton step on a large model: tens of seconds)
    asks :meth:`fits` before each step; when the step would not end within the budget the
    clock counts as expired from then on (``spent``), so that no later stage starts a step
    either. A resumed run gets a fresh clock."""

    def __init__(self, budget: float | None = None) -> None:
        self.budget = budget
        self._start = time.perf_counter()
        self._paused = 0.0
        self.spent = False

    def left(self) -> float:
        """Training seconds left (inf without a budget)."""
        return math.inf if self.budget is None else self.budget - self.elapsed()

    def fits(self, seconds: float) -> bool:
        """Whether ``seconds`` more end within the budget; if not, the clock is spent."""
        if self.left() < seconds:
            self.spent = True
        return not self.spent

    def elapsed(self) -> float:
        return time.perf_counter() - self._start - self._paused

    def set_elapsed(self, seconds: float) -> None:
        """Continue counting from ``seconds`` of training time (a resumed run)."""
        self._start = time.perf_counter() - seconds - self._paused

    def expired(self) -> bool:
        return self.spent or (self.budget is not None and self.elapsed() >= self.budget)

    class _Pause:
        def __init__(self, clock: Clock) -> None:
            self.clock = clock

        def __enter__(self) -> None:
            self.t0 = time.perf_counter()

        def __exit__(self, *exc: object) -> None:
            self.clock._paused += time.perf_counter() - self.t0

    def paused(self) -> Clock._Pause:
        """``with clock.paused():`` — time spent inside is not training time."""
        return Clock._Pause(self)


class SlabClock(Clock):
    """The run's clock, with an earlier ``deadline`` (training seconds): for one slab of a
    march, or a stage that may take only a share of the time left."""

    def __init__(self, clock: Clock, deadline: float | None) -> None:
        super().__init__(clock.budget)
        self.run_clock, self.deadline = clock, deadline

    @classmethod
    def sharing(cls, clock: Clock, share: float) -> SlabClock:
        """``clock`` with a deadline once ``share`` of the time it has left is spent from
        now (none without a budget)."""
        left = clock.left()
        return cls(clock, None if math.isinf(left) else clock.elapsed() + share * left)

    def elapsed(self) -> float:
        return self.run_clock.elapsed()

    def set_elapsed(self, seconds: float) -> None:
        self.run_clock.set_elapsed(seconds)

    def left(self) -> float:
        mine = math.inf if self.deadline is None else self.deadline - self.elapsed()
        return min(self.run_clock.left(), mine)

    def fits(self, seconds: float) -> bool:
        if self.run_clock.left() < seconds:  # past the run's budget: spent for every slab
            self.run_clock.spent = True
        return super().fits(seconds)

    def expired(self) -> bool:
        return self.spent or self.run_clock.expired() or (self.deadline is not None
                                                          and self.elapsed() >= self.deadline)

    def paused(self) -> Clock._Pause:
        return self.run_clock.paused()


class Callback(Protocol):
    """Observes training; every method is optional."""

    def on_stage_start(self, stage: object, task: Task) -> None: ...
    def on_record(self, row: dict[str, float | str], task: Task) -> None: ...
    def on_stage_end(self, stage: object, task: Task) -> None: ...


LOSS_PIECE = 16384
"""Points above which :meth:`Task.evaluate_loss` evaluates the loss in pieces (of at
most this many; fewer for wide models, see :func:`piece_rows`)."""

PIECE_BYTES = 1 << 28
"""Memory a piece's features may take (256 MiB): with 20 000 Gaussians in 3-D a point's
values and derivatives take 1.6 MB, so 16 384 points at once would hold 26 GB."""


def model_width(model: nn.Module) -> int:
    """A model's widest parameter dimension (GMNM: its number of Gaussians; an MLP's or
    KAN's hidden width): how many features each point carries."""
    return max(1, max((max(p.shape, default=1) for p in model.parameters()), default=1))


def feature_bytes(width: int, dim: int, bytes_per_value: int) -> int:
    """Bytes one point's features take: each feature's value and derivatives, kept again
    for back-propagation (the estimate of :mod:`pinn_gmnm.memory`)."""
    return width * (2 + dim) * 2 * bytes_per_value


def piece_rows(width: int, dim: int, bytes_per_value: int) -> int:
    """Points per piece of a loss evaluated in pieces: at most :data:`LOSS_PIECE`, fewer
    when their features would take more than :data:`PIECE_BYTES` (at least 256)."""
    return max(256, min(LOSS_PIECE, PIECE_BYTES // feature_bytes(width, dim, bytes_per_value)))


@dataclass
class Task:
    """The state shared by the stages of one training run.

    ``history`` gets one row per recorded step: stage, step (counted across stages),
    time (training seconds), loss, each loss term (``terms``: those of the latest
    evaluation, by :meth:`closure` or :meth:`evaluate_loss`), and ``rel_l2`` when the
    error was evaluated at that step (NaN otherwise).
    """

    model: nn.Module
    loss: Loss
    params: list[nn.Parameter]
    clock: Clock
    evaluator: Evaluator
    eval_every: int = 50
    callbacks: Sequence[Callback] = ()
    history: list[dict[str, float | str]] = field(default_factory=list)
    step: int = 0
    collocation: Collocation | None = None  # how the batch was drawn (for resampling)
    seed: int = 0
    _last_eval: int = -1
    divergence: Divergence = field(default_factory=Divergence)
    stop: Callable[[], bool] | None = None
    stages: list[Any] = field(default_factory=list)
    stage_index: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    snapshot: Snapshot | None = None
    good: Snapshot | None = None
    snapshot_every: int = 10
    initial_loss: float = math.nan
    terms: dict[str, Tensor] = field(default_factory=dict)
    _pending: dict[str, Any] | None = None
    _batch0: Batch | None = None

    def closure(self) -> Tensor:
        """Zero the gradients, evaluate the loss and back-propagate it; returns the loss.

        In data-parallel training the gradients and values are summed over the ranks."""
        for p in self.params:
            p.grad = None
        total, parts = self.loss(self.model)
        total.backward()
        self.loss.parallel.sum_grads(self.params)
        return self._summed(total, parts)[0]

    def _summed(self, total: Tensor, parts: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        total, self.terms = self._reduced(total, parts)
        return total, self.terms

    def _reduced(self, total: Tensor, parts: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """``total`` and ``parts`` detached and summed over the ranks."""
        values = [total.detach().clone(), *(v.detach().clone() for v in parts.values())]
        self.loss.parallel.sum_(values)
        return values[0], dict(zip(parts, values[1:]))

    def evaluate_loss(self) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss and its terms at the current parameters, without back-propagation;
        on more than :data:`LOSS_PIECE` points, in pieces of that many (the features of
        every point at once can outweigh a streamed least-squares solve many times)."""
        total, self.terms = self.loss_of(self.model)
        return total, self.terms

    def loss_of(self, model: nn.Module) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss and its terms of ``model`` (the task's model, or one made from it) on
        this task's points, as :meth:`evaluate_loss` computes them; the task's ``terms``
        are left as they were."""
        x = self.loss.batch.interior
        rows = piece_rows(model_width(model), x.shape[1], x.element_size())
        if self.loss.batch.size <= rows:
            return self._reduced(*self.loss(model))
        return self._reduced(*self.loss.in_pieces(model, rows))

    def out_of_time(self) -> bool:
        """Whether the budget is spent (on any rank: all ranks stop together)."""
        return self.loss.parallel.any(self.clock.expired())

    def step_fits(self, seconds: float) -> bool:
        """Whether a step of ``seconds`` ends within the budget on every rank (see
        :meth:`Clock.fits`: if not, the budget counts as spent)."""
        short = self.loss.parallel.any(not self.clock.fits(seconds))
        if short:
            self.clock.spent = True
        return not short

    def record(self, stage: str, loss: float, steps: int = 1, *, force_eval: bool = False) -> None:
        """Advance the step counter by ``steps`` and log the current loss."""
        self.step += steps
        row: dict[str, float | str] = {"stage": stage, "step": self.step,
                                       "time": self.clock.elapsed(), "loss": float(loss)}
        for name, value in self.terms.items():
            row[f"loss_{name}"] = float(value)
        for unknown in self.loss.problem.unknowns:
            row[f"unknown_{unknown.name}"] = float(unknown)
        due = self.step // self.eval_every != self._last_eval // self.eval_every
        if force_eval or due or self._last_eval < 0:
            with self.clock.paused():
                row["rel_l2"] = self.evaluator.quick_error(self.model)
            self._last_eval = self.step
        else:
            row["rel_l2"] = math.nan
        self.history.append(row)
        for cb in self.callbacks:
            if hasattr(cb, "on_record"):
                cb.on_record(row, self)

    def advance_stage(self) -> None:
        """The current stage has finished: the next one starts afresh (any state saved
        inside the finished stage is not passed on)."""
        self.stage_index += 1
        self._pending = None

    def resumed(self) -> dict[str, Any] | None:
        """The state the current stage last passed to :meth:`safe_point` when the run is
        resumed (or rolled back) inside that stage, else None; a stage asks once, when it
        starts."""
        state, self._pending = self._pending, None
        return state

    def safe_point(self, state: dict[str, Any] | None = None, *, loss: float | None = None) -> None:
        """Mark a consistent point between two steps of the current stage (call it after
        :meth:`record`). ``state`` is what the stage needs to continue from here, besides
        the model's parameters: plain data (tensors, dicts, lists, numbers, strings), for
        instance ``{"step": i, "optimizer": opt.state_dict()}``.

        Divergence is judged on the last recorded loss; for most optimisers that is the
        loss *before* the step (it vouches for the previous safe point). Pass ``loss``
        when it is the loss at the current parameters, so this point counts as good too.

        Raises :class:`Diverged` when the loss or a parameter is not finite (or the loss
        blew up), and :class:`Stopped` when a stop was requested; stages let both
        propagate.
        """
        current = loss is not None
        if loss is None:
            loss = float(self.history[-1]["loss"]) if self.history else float(self.initial_loss)
        reason = self.divergence.check(loss, self.params, self.initial_loss)
        if reason is not None:
            raise Diverged(reason, self.step, loss)
        if self.snapshot is not None and (current or self.snapshot.step < self.step):
            self.good = self.snapshot  # a loss evaluated at (or after) its parameters was fine
        # Every rank of a data-parallel run stops at the same point, whichever got the signal.
        stop = self.loss.parallel.any(self.stop is not None and self.stop())
        # Snapshots cost a copy of the model and optimiser state: take one every few steps
        # (a roll-back goes back at most that far), and always where resuming needs one.
        if (stop or current or self.snapshot is None or self.clock.expired()
                or self.step - self.snapshot.step >= self.snapshot_every):
            self.snapshot = Snapshot(
                stage=self.stage_index, stage_state=copy_state(state),
                model=copy_state(self.model.state_dict()), step=self.step,
                history_len=len(self.history), last_eval=self._last_eval,
                elapsed=self.clock.elapsed(), rng=torch.get_rng_state(),
                extra=copy_state(self._extra_state()),
            )
            if current or self.good is None:
                self.good = self.snapshot
        if stop:
            raise Stopped()

    def _extra_state(self) -> dict[str, Any]:
        """What training changes besides the model: unknown coefficients (inverse
        problems), loss weights (balancing), callbacks' counters (``state_dict()``) and,
        when resampling or refinement replaced them, the points."""
        loss = self.loss
        if self._batch0 is None:
            self._batch0 = loss.batch
        extra: dict[str, Any] = {
            "unknowns": [p.detach() for k in loss.problem.unknowns for p in k.parameters()],
            "weights": loss.weights_state(),
            "callbacks": {key: cb.state_dict() for key, cb in _keyed(self.callbacks)
                          if hasattr(cb, "state_dict")},
        }
        points = self.replaced_points()
        if points is not None:
            extra["batch"] = points
        return extra

    def held_out_points(self, batch: Batch) -> Batch:
        """The points of a held-out check (:class:`~.heldout.HeldOut`), given ``batch``
        drawn as the training points were but with another seed: ``batch`` itself here
        (a compact slab adds its focused ones)."""
        return batch

    def replaced_points(self) -> list[Tensor] | None:
        """The loss's points (interior, then each condition's) when resampling, refinement
        or growth replaced the first ones, else None. Each rank holds its own share of the
        points: only a single process saves them."""
        b = self.loss.batch
        if self._batch0 is None or b is self._batch0 or self.loss.parallel.world != 1:
            return None
        return [b.interior, *b.conditions]

    def restore_points(self, points: Sequence[Tensor]) -> None:
        """Put back points saved by :meth:`replaced_points` (in the loss's dtype and device)."""
        x = self.loss.batch.interior
        interior, *conditions = (t.to(device=x.device, dtype=x.dtype) for t in points)
        self.loss.batch = Batch(interior, tuple(conditions))

    def _restore_extra(self, extra: dict[str, Any]) -> None:
        loss = self.loss
        if self._batch0 is None:  # resuming: the points drawn for this run are the first ones
            self._batch0 = loss.batch
        with torch.no_grad():
            unknowns = [p for k in loss.problem.unknowns for p in k.parameters()]
            for p, v in zip(unknowns, extra.get("unknowns", [])):
                p.copy_(v)
        if extra.get("weights") is not None:
            loss.load_weights_state(extra["weights"])
        saved = extra.get("callbacks", {})
        for key, cb in _keyed(self.callbacks):
            if key in saved and hasattr(cb, "load_state_dict"):
                cb.load_state_dict(saved[key])
        if "batch" in extra:
            self.restore_points(extra["batch"])
        elif self._batch0 is not None:
            loss.batch = self._batch0

    def restore(self, snapshot: Snapshot) -> None:
        """Go back to ``snapshot``: parameters, step, history and the random state; its
        stage state is handed to the stage on its next start."""
        with torch.no_grad():
            self.model.load_state_dict(snapshot.model)
        self.sync_params()  # a grown or pruned model may come back at another size
        self._restore_extra(snapshot.extra)
        self.step, self._last_eval = snapshot.step, snapshot.last_eval
        del self.history[snapshot.history_len:]
        torch.set_rng_state(snapshot.rng)
        self.stage_index = snapshot.stage
        self._pending = copy_state(snapshot.stage_state)
        self.snapshot = self.good = snapshot

    def sync_params(self) -> None:
        """Rebuild :attr:`params` (in place) after the model's parameters were replaced,
        as when a GMNM grows or is pruned: the model's trainable parameters, then the
        unknown coefficients' (the order :func:`~.solve.solve` uses)."""
        self.params[:] = [*(p for p in self.model.parameters() if p.requires_grad),
                          *(p for k in self.loss.problem.unknowns for p in k.parameters())]

    @property
    def current_stage(self) -> Any:
        """The stage being run (None before the first and after the last)."""
        return self.stages[self.stage_index] if self.stage_index < len(self.stages) else None

    def respread(self, m: int, points: Tensor, *, seed: int, factor: float) -> dict[str, float]:
        """Replace the model's mixture by ``m`` Gaussians spread over the domain that
        ``points`` sample, ``factor`` × the model's own width (a uniform refinement, see
        :meth:`~pinn_gmnm.models.gmnm.GMNM.respread`, which returns what this returns)."""
        model = self.model
        return model.respread(m, points, seed=seed, width_factor=model.width_factor * factor)

    def interior_points(self) -> Tensor:
        """Every interior collocation point of the run, gathered from all ranks."""
        return self.loss.parallel.gather_rows(self.loss.batch.interior)

    @property
    def last_error(self) -> float:
        for row in reversed(self.history):
            if not math.isnan(float(row["rel_l2"])):
                return float(row["rel_l2"])
        return math.nan


def _keyed(callbacks: Sequence[Callback]) -> list[tuple[str, Callback]]:
    """Callbacks named by class and rank among those of the same class (``Resample#0``):
    keys that survive a resume with other callbacks (a progress bar) around them."""
    seen: dict[str, int] = {}
    out = []
    for cb in callbacks:
        name = type(cb).__name__
        out.append((f"{name}#{seen.get(name, 0)}", cb))
        seen[name] = seen.get(name, 0) + 1
    return out


def parameter_vector(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """All parameters flattened into one vector (a copy)."""
    return torch.cat([p.detach().reshape(-1) for p in params])


def assign_vector(params: Sequence[torch.Tensor], flat: torch.Tensor) -> None:
    """Write a flat vector (as :func:`parameter_vector` makes) into ``params``, in order."""
    with torch.no_grad():
        i = 0
        for p in params:
            p.copy_(flat[i:i + p.numel()].reshape(p.shape))
            i += p.numel()
