"""``solve``: train a model on a problem through a list of stages."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..distributed import SERIAL, Serial
from ..errors import GMNMError, require_positive
from ..evaluation import Evaluator
from ..methods import METHODS, Steps
from ..models import count_parameters
from ..models.contract import training_callbacks
from ..problem import Problem
from ..validation import check_conditions, check_initial_loss, check_model
from .batch import Collocation, sample_batch
from .linear import fit_state
from .loss import Loss
from .loop import apply_resume, run_stages, snapshot_dict
from .stages import Stage
from .state import Divergence
from .task import Callback, Clock, Task


def default_stages(problem: Problem, model: nn.Module) -> list[Stage]:
    """The stages of the ``auto`` method (:class:`~pinn_gmnm.methods.AutoMethod`) with
    the default step counts: least squares then up to 100 variable-projection
    iterations; or Levenberg–Marquardt on the output layer then on everything (up to 100
    iterations each); or Adam (lr 1e-2 decaying to 1e-4 over 1000 steps) then up to 2000
    L-BFGS iterations; or the model's own fixed method (the PINN baseline). Problems with
    unknown coefficients learn them right after least squares, with the head re-solved
    (:class:`~.inverse.Coefficients`)."""
    return METHODS.get("auto").build(problem, model, Steps())


def start_from_guess(problem: Problem, model: nn.Module, x: torch.Tensor) -> None:
    """Fit ``model``'s output layer to ``problem.guess`` at the points ``x`` (see
    :class:`~pinn_gmnm.problem.Problem`); a clear error for a guess of the wrong shape."""
    guess = problem.guess
    k = problem.n_outputs

    def state(y: torch.Tensor) -> torch.Tensor:
        if not callable(guess):
            return y.new_full((len(y), k), float(guess))  # type: ignore[arg-type]
        with torch.no_grad():
            v = torch.as_tensor(guess(y), dtype=y.dtype, device=y.device)
        if v.numel() != len(y) * k:
            raise GMNMError(f"guess returned shape {tuple(v.shape)} for {len(y)} points; "
                            f"expected ({len(y)},) or ({len(y)}, {k})")
        return v.reshape(len(y), k)

    fit_state(model, x, state)


@dataclass
class Solution:
    """A trained model with what was measured about it."""

    problem: Problem
    model: nn.Module
    metrics: dict[str, float]
    history: list[dict[str, float | str]]
    train_time: float
    parameters: int
    stages: list[Stage] = field(default_factory=list)
    status: str = "completed"
    """``completed``, ``out-of-budget``, ``interrupted`` or ``diverged`` (see
    :mod:`pinn_gmnm.training.loop`)."""
    events: list[dict[str, Any]] = field(default_factory=list)
    """What happened besides plain training: divergences and roll-backs, stops, resumes,
    and metrics that are not finite (where, see :meth:`~pinn_gmnm.evaluation.Evaluator.measure`)."""
    state: dict[str, Any] | None = None
    """The training state to resume from (plain data, see :mod:`.state`); None when the
    run completed."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The trained model's prediction at points ``x`` (n, d) → (n, k), on ``x``'s device."""
        with torch.no_grad():
            return self.model(x.to(next(self.model.parameters()))).to(x.device)


def solve(problem: Problem, model: nn.Module, *, stages: Sequence[Stage] | None = None,
          collocation: Collocation | None = None, seed: int = 0,
          dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu",
          weights: Mapping[str, float] | None = None, budget: float | None = None,
          eval_every: int = 50, callbacks: Sequence[Callback] = (),
          parallel: Serial = SERIAL, divergence: Divergence | None = None,
          stop: Callable[[], bool] | None = None, resume: dict[str, Any] | None = None
          ) -> Solution:
    """Train ``model`` to solve ``problem`` and measure it.

    The problem's unknown coefficients (inverse problems) are trained with the model and
    reported in ``metrics`` as ``unknown_<name>`` (and ``unknown_<name>_error``, relative,
    when the true value is known). Training changes them in place.

    Args:
        stages: training stages run in order (default: :func:`default_stages`).
        collocation: how many points, and which sampler (default 2000 interior + 400 boundary, Sobol').
        seed: seeds the point sampling (seed the model's initialisation yourself, before
            building it, for a fully reproducible run).
        dtype: float64 (default) or float32.
        weights: loss weights by term name (``pde``, ``dirichlet``, …).
        budget: wall-clock training seconds; stages stop when it is spent.
        eval_every: steps between error evaluations recorded in the history.
        callbacks: observers of training (e.g. a progress bar); the callbacks the model
            declares (:meth:`~pinn_gmnm.models.contract.Surrogate.training_callbacks`) run
            after these.
        parallel: the data-parallel context (see :mod:`pinn_gmnm.distributed`); each rank
            trains on its shard of the points and all ranks end with the same model.
        divergence: what to do when the loss or parameters stop being finite (default:
            roll back and lower the learning rate up to 3 times, see :class:`Divergence`).
        stop: polled at every safe point; when it returns True training stops there and
            the solution's ``state`` can be passed back as ``resume`` (see
            :class:`~pinn_gmnm.interrupt.StopOnSignal`).
        resume: a saved ``Solution.state``: continue that run exactly where it stopped
            (same problem, model, stages and settings).
    """
    stages = list(default_stages(problem, model) if stages is None else stages)
    # A model may need to act during training (KAN: grid updates from the points).
    callbacks = [*callbacks, *training_callbacks(model)]
    collocation = collocation or Collocation()
    if dtype not in (torch.float32, torch.float64):
        raise GMNMError(f"dtype must be float32 or float64, got {dtype}")
    if budget is not None:
        require_positive("budget (seconds)", budget)
    require_positive("eval_every", eval_every, integer=True)
    for s in stages:
        if not isinstance(s, Stage):
            raise GMNMError(f"stages must be Stage objects such as Adam(...) or LBFGS(...), got {s!r}")

    model.to(device=device, dtype=dtype)
    check_model(problem, model, dtype, device)
    check_conditions(problem)
    for coefficient in problem.unknowns:  # inverse problems: they train with the model
        coefficient.to(device=device, dtype=dtype)
    drawn = sample_batch(problem, collocation, seed)
    if problem.guess is not None and resume is None:
        start_from_guess(problem, model, drawn.interior.to(device=device, dtype=dtype))
    batch = drawn.shard(parallel).to(dtype, device)
    parallel.broadcast_([p.data for p in model.parameters()])
    loss = Loss(problem, batch, weights, parallel=parallel)
    evaluator = Evaluator.for_problem(problem, dtype, device)
    params = [p for p in model.parameters() if p.requires_grad]
    params += [p for k in problem.unknowns for p in k.parameters()]
    task = Task(model, loss, params, Clock(budget), evaluator, eval_every, callbacks,
                collocation=collocation, seed=seed, divergence=divergence or Divergence(),
                stop=stop, stages=stages)
    # Evaluate once before training: checks the residual's shape and names the loss terms.
    task.initial_loss = check_initial_loss(problem, task.evaluate_loss)
    if resume is not None:
        apply_resume(task, resume)

    status = run_stages(task, callbacks)
    train_time = task.clock.elapsed()
    metrics, not_finite = evaluator.measure(model)
    for coefficient in problem.unknowns:
        metrics.update(coefficient.report())
    metrics["train_time"] = train_time
    metrics["steps"] = task.step
    state = snapshot_dict(task) if status != "completed" else None
    return Solution(problem, model, metrics, task.history, train_time,
                    count_parameters(model), stages, status, [*task.events, *not_finite], state)
