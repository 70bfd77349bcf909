"""Training stages. A run is a list of them, executed in order on the same model.

Stages are option objects (``Adam(steps=2000, lr=1e-3)``, ``LBFGS(steps=500)``); the
CLI and config files name them by ``type`` and :func:`stage_from_dict` turns the names
into objects, in this one place.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from fnmatch import fnmatch
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ..errors import GMNMError, require_positive
from .task import Task


def _check_steps(name: str, steps: int | None, *, open_ended: bool = False) -> None:
    """Step counts are whole numbers >= 0 (0 skips the stage); ``open_ended`` stages
    also take None: no step limit, until the budget or their own stopping rule."""
    if steps is None and open_ended:
        return
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        allowed = "a whole number >= 0 or None (until the budget)" if open_ended else \
            "a whole number >= 0"
        raise GMNMError(f"{name} must be {allowed}, got {steps!r}")


def step_limit(steps: int | None) -> float:
    """A stage's step count as a loop bound: None (until the budget) is unbounded."""
    return math.inf if steps is None else steps


@dataclass(frozen=True)
class Stage(ABC):
    """One phase of training.

    To be resumable after Ctrl-C and to recover from divergence, a stage follows this
    contract (Adam, LBFGS and VarPro are examples):

    - when it starts, ``state = task.resumed()``: not None when the run continues inside
      this stage; restore the stage's own progress from it (step within the stage,
      optimiser ``load_state_dict``). The model's parameters are already restored.
    - after each step (or group of steps), once :meth:`Task.record` has logged it, call
      ``task.safe_point(state)`` with what is needed to continue from there besides the
      parameters, as plain data (tensors, dicts, lists, numbers, strings), e.g.
      ``{"step": i + 1, "optimizer": opt.state_dict()}``. It may raise (to stop, or to
      roll back after divergence): let those exceptions propagate, and don't hold
      resources that need cleaning up across it.
    - a stage with an ``lr`` field gets it lowered on divergence by :meth:`with_lower_lr`
      (override that for another knob); a restored optimiser must then take its learning
      rate from the stage's options, not from the saved state.

    A stage that never calls ``safe_point`` still works: on resume (or after divergence)
    it restarts from its beginning, from the state the previous stage left.
    """

    kind: ClassVar[str] = ""

    @abstractmethod
    def run(self, task: Task) -> None:
        """Train ``task.model`` until the stage's own stopping rule or the budget ends it."""

    @property
    def steps_planned(self) -> int | None:
        """The steps this stage plans to take; None when it runs until the budget."""
        names = {f.name for f in dataclasses.fields(self)}
        return self.steps if "steps" in names else 0  # type: ignore[attr-defined]

    def with_lower_lr(self, factor: float) -> Stage | None:
        """This stage with its learning rate (``lr``, and ``final_lr`` when set)
        multiplied by ``factor``, or None when it has no learning rate to lower."""
        names = {f.name for f in dataclasses.fields(self)}
        if "lr" not in names:
            return None
        changes = {"lr": self.lr * factor}  # type: ignore[attr-defined]
        if getattr(self, "final_lr", None) is not None:
            changes["final_lr"] = self.final_lr * factor  # type: ignore[attr-defined]
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class Adam(Stage):
    """Adam for ``steps`` steps, the learning rate decaying exponentially from ``lr``
    to ``final_lr`` (constant when ``final_lr`` is None).

    ``group_lr`` gives parameter groups their own learning rates, as factors of ``lr``
    keyed by name patterns: ``Adam(lr=1e-2, group_lr={"means": 0.1, "weights": 3.0})``.
    A pattern (``fnmatch`` style) matches a parameter's full name (``layer.means``) or
    its last part (``means``); the first matching pattern wins and unmatched parameters
    keep factor 1. Every pattern must match some parameter being trained."""

    steps: int = 1000
    lr: float = 1e-3
    final_lr: float | None = None
    group_lr: Mapping[str, float] | None = None
    kind: ClassVar[str] = "adam"

    def __post_init__(self) -> None:
        _check_steps("adam steps", self.steps)
        require_positive("learning rate", self.lr)
        if self.final_lr is not None:
            require_positive("final learning rate", self.final_lr)
        for pattern, factor in (self.group_lr or {}).items():
            require_positive(f"learning-rate factor of '{pattern}'", factor)

    def param_groups(self, model: torch.nn.Module, params: list[torch.nn.Parameter]
                     ) -> list[dict[str, Any]]:
        """``params`` split into optimiser groups by ``group_lr`` (one group without it),
        each with its factor under ``"factor"`` and its learning rate ``lr × factor``."""
        if not self.group_lr:
            return [{"params": params, "factor": 1.0, "lr": self.lr}]
        names = {id(p): n for n, p in model.named_parameters()}
        groups: dict[str, list[torch.nn.Parameter]] = {}
        for p in params:
            name = names.get(id(p), "")
            key = next((pat for pat in self.group_lr
                        if fnmatch(name, pat) or fnmatch(name.rsplit(".", 1)[-1], pat)), "")
            groups.setdefault(key, []).append(p)
        unused = [pat for pat in self.group_lr if pat not in groups]
        if unused:
            raise GMNMError(f"adam group_lr pattern(s) {', '.join(map(repr, unused))} match no "
                            f"trained parameter; parameters: {', '.join(names.values())}")
        return [{"params": ps, "factor": self.group_lr.get(key, 1.0),
                 "lr": self.lr * self.group_lr.get(key, 1.0)} for key, ps in groups.items()]

    def run(self, task: Task) -> None:
        if self.steps == 0:
            return
        opt = torch.optim.Adam(self.param_groups(task.model, task.params), lr=self.lr)
        gamma = (self.final_lr / self.lr) ** (1.0 / self.steps) if self.final_lr else 1.0
        start = 0
        if (state := task.resumed()) is not None:
            opt.load_state_dict(state["optimizer"])
            start = state["step"]
        for i in range(start, self.steps):
            for group in opt.param_groups:  # the schedule is stateless: resumable as is
                group["lr"] = self.lr * group["factor"] * gamma**i
            loss = task.closure()
            opt.step()
            task.record(self.kind, float(loss.detach()), force_eval=i == self.steps - 1)
            task.safe_point({"step": i + 1, "optimizer": opt.state_dict()})
            if task.out_of_time():
                break


@dataclass(frozen=True)
class LBFGS(Stage):
    """L-BFGS with a strong-Wolfe line search for up to ``steps`` iterations.

    In float32 L-BFGS often stalls early (rounding hides the curvature it relies on);
    float64 lets it converge much further, which is why runs default to float64.
    ``steps=None`` runs until the budget or convergence.
    """

    steps: int | None = 500
    history: int = 50
    lr: float = 1.0
    kind: ClassVar[str] = "lbfgs"

    def __post_init__(self) -> None:
        _check_steps("lbfgs steps", self.steps, open_ended=True)
        require_positive("lbfgs history", self.history, integer=True)

    def run(self, task: Task) -> None:
        run_lbfgs(task, task.params, task.closure, self.steps, self.history, self.kind,
                  lr=self.lr, saved=task.resumed())


def run_lbfgs(task: Task, params: list[torch.nn.Parameter], closure: Callable[[], torch.Tensor],
              steps: int | None, history: int, kind: str,
              after_chunk: Callable[[], bool | None] | None = None,
              *, lr: float = 1.0, chunk: int = 10, evals_per_iter: float = 4.0,
              min_progress: float = 0.0, initial_loss: float = math.inf,
              saved: dict[str, Any] | None) -> None:
    """L-BFGS (strong-Wolfe line search) on ``params`` for up to ``steps`` iterations,
    (None: no limit), reporting every ``chunk`` iterations and stopping early when it converges, when a
    chunk lowers the loss by less than the fraction ``min_progress``, or when the budget
    is spent. ``after_chunk`` runs after each report interval (before recording) and
    stops the iterations when it returns True;
    ``initial_loss`` lets the first chunk count as stalled too. ``saved`` is the calling
    stage's ``task.resumed()``: where to continue from inside the stage, or None."""
    if steps == 0 or not params:
        return
    limit = step_limit(steps)
    eps = torch.finfo(params[0].dtype).eps
    opt = torch.optim.LBFGS(params, lr=lr, history_size=history, line_search_fn="strong_wolfe",
                            tolerance_grad=eps, tolerance_change=eps)
    done, previous = 0, initial_loss
    if saved is not None:
        opt.load_state_dict(saved["optimizer"])
        done, previous = saved["done"], saved["previous"]
    group = opt.param_groups[0]
    group["lr"] = lr  # from the options: lower after a divergence than when saved
    state = opt.state[params[0]]
    while done < limit:
        group["max_iter"] = int(min(chunk, limit - done))
        group["max_eval"] = max(group["max_iter"] + 1, int(evals_per_iter * group["max_iter"]))
        iters0, evals0 = state.get("n_iter", 0), state.get("func_evals", 0)
        opt.step(closure)
        iters = max(1, state["n_iter"] - iters0)
        evals = state["func_evals"] - evals0
        done += iters
        halt = bool(after_chunk()) if after_chunk is not None else False
        total, _ = task.evaluate_loss()
        # Fewer iterations than asked, with evaluations to spare: L-BFGS met its
        # tolerance (or its line search could not move): it has converged.
        converged = iters < group["max_iter"] and evals < group["max_eval"]
        stalled = float(total) > (1 - min_progress) * previous
        previous = float(total)
        task.record(kind, float(total), iters,
                    force_eval=converged or stalled or halt or done >= limit)
        task.safe_point({"done": done, "previous": previous, "optimizer": opt.state_dict()},
                        loss=float(total))
        if converged or stalled or halt or task.out_of_time():
            break
