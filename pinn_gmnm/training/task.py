"""What a training stage acts on: the model, its loss, a clock and a recorder."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor, nn

from ..evaluation import Evaluator
from .batch import Collocation
from .loss import Loss


class Clock:
    """Wall-clock training time, with evaluation pauses left out, against a budget."""

    def __init__(self, budget: float | None = None) -> None:
        self.budget = budget
        self._start = time.perf_counter()
        self._paused = 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self._start - self._paused

    def expired(self) -> bool:
        return self.budget is not None and self.elapsed() >= self.budget

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


class Callback(Protocol):
    """Observes training; every method is optional."""

    def on_stage_start(self, stage: object, task: Task) -> None: ...
    def on_record(self, row: dict[str, float | str], task: Task) -> None: ...
    def on_stage_end(self, stage: object, task: Task) -> None: ...


@dataclass
class Task:
    """The state shared by the stages of one training run.

    ``history`` gets one row per recorded step: stage, step (counted across stages),
    time (training seconds), loss, each loss term, and ``rel_l2`` when the error was
    evaluated at that step (NaN otherwise).
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

    def closure(self) -> Tensor:
        """Zero the gradients, evaluate the loss and back-propagate it; returns the loss.

        In data-parallel training the gradients and values are summed over the ranks."""
        for p in self.params:
            p.grad = None
        total, parts = self.loss(self.model)
        total.backward()
        self.loss.parallel.sum_grads(self.params)
        total, self._parts = self._summed(total, parts)
        return total

    def _summed(self, total: Tensor, parts: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        values = [total.detach().clone(), *(v.detach().clone() for v in parts.values())]
        self.loss.parallel.sum_(values)
        return values[0], dict(zip(parts, values[1:]))

    def evaluate_loss(self) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss and its terms at the current parameters, without back-propagation."""
        return self._summed(*self.loss(self.model))

    def out_of_time(self) -> bool:
        """Whether the budget is spent (on any rank: all ranks stop together)."""
        return self.loss.parallel.any(self.clock.expired())

    def record(self, stage: str, loss: float, steps: int = 1, *, force_eval: bool = False) -> None:
        """Advance the step counter by ``steps`` and log the current loss."""
        self.step += steps
        row: dict[str, float | str] = {"stage": stage, "step": self.step,
                                       "time": self.clock.elapsed(), "loss": float(loss)}
        for name, value in getattr(self, "_parts", {}).items():
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

    @property
    def last_error(self) -> float:
        for row in reversed(self.history):
            if not math.isnan(float(row["rel_l2"])):
                return float(row["rel_l2"])
        return math.nan


def parameter_vector(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """All parameters flattened into one vector (a copy)."""
    return torch.cat([p.detach().reshape(-1) for p in params])
