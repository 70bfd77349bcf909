"""``solve``: train a model on a problem through a list of stages."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..distributed import SERIAL, Serial
from ..errors import GMNMError, require_positive, unknown
from ..evaluation import Evaluator
from ..models import count_parameters
from ..problem import Problem
from ..validation import check_conditions, check_initial_loss, check_model
from .batch import Collocation, sample_batch
from .loss import Loss
from .gauss_newton import GaussNewton
from .inverse import Coefficients
from .linear import LeastSquares, VarPro, detect_linear
from .loop import apply_resume, run_stages, snapshot_dict
from .stages import LBFGS, Adam, Stage
from .state import Divergence
from .task import Callback, Clock, Task


def least_squares_applies(problem: Problem, model: nn.Module) -> bool:
    """Least squares applies when the problem is linear (declared, or detected when not
    declared: see :func:`~.linear.detect_linear`) and the model has a linear output layer."""
    if not hasattr(model, "linear_head"):
        return False
    return problem.linear is True or (problem.linear is None and detect_linear(problem, model))


def prefers_least_squares(problem: Problem, model: nn.Module) -> bool:
    """What the default (``auto``) picks: least squares when it applies, unless the model
    opts out with ``auto_least_squares = False`` (KAN: least squares over its random
    initial spline features is ill-conditioned and fits unseen points badly)."""
    return least_squares_applies(problem, model) and getattr(model, "auto_least_squares", True)


def default_method(problem: Problem, model: nn.Module) -> str:
    """The strongest method that applies: ``varpro`` when :func:`prefers_least_squares`;
    else ``gauss-newton`` for models of up to ``GaussNewton.max_parameters`` parameters
    (not for models that opt out of automatic least squares, whose head-only first stage
    is least squares in all but name); else ``adam-lbfgs``."""
    if prefers_least_squares(problem, model):
        return "varpro"
    if (getattr(model, "auto_least_squares", True)
            and count_parameters(model) <= GaussNewton.max_parameters):
        return "gauss-newton"
    return "adam-lbfgs"


def method_stages(method: str, problem: Problem, model: nn.Module, *, varpro_steps: int = 100,
                  gn_steps: int = 100, adam_steps: int = 1000, lbfgs_steps: int = 2000,
                  lr: float = 1e-2) -> list[Stage]:
    """The stages of a named method (see :data:`~pinn_gmnm.config.METHODS`). Inverse
    problems learn their unknown coefficients right after the least-squares solve
    (:class:`Coefficients`); Gauss–Newton trains them with everything else."""
    learn = [Coefficients()] if problem.unknowns else []
    if method == "lstsq":
        return [LeastSquares(), *learn]
    if method == "varpro":
        return [LeastSquares(), *learn, VarPro(steps=varpro_steps)]
    if method == "gauss-newton":
        # Newton on the output layer stops once its steps gain under 2 % (a creeping tail
        # of ever smaller damping); the full stage is patient through slow phases.
        head = ([GaussNewton(steps=gn_steps, head_only=True, min_progress=0.02, patience=3)]
                if hasattr(model, "linear_head") else [])
        return [*head, GaussNewton(steps=gn_steps)]
    if method == "adam-lbfgs":
        return [Adam(steps=adam_steps, lr=lr, final_lr=lr / 100), LBFGS(steps=lbfgs_steps)]
    raise unknown("training method", method, ("lstsq", "varpro", "gauss-newton", "adam-lbfgs"))


def default_stages(problem: Problem, model: nn.Module) -> list[Stage]:
    """The stages of :func:`default_method`: least squares then 100 variable-projection
    iterations; or Levenberg–Marquardt on the output layer then on everything (up to 100
    iterations each); or Adam (lr 1e-2 decaying to 1e-4 over 1000 steps) then up to 2000
    L-BFGS iterations. Problems with unknown coefficients learn them right after least
    squares, with the head re-solved (:class:`Coefficients`)."""
    return method_stages(default_method(problem, model), problem, model)


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
        """The trained model's prediction at points ``x`` (n, d) → (n, k)."""
        with torch.no_grad():
            return self.model(x.to(next(self.model.parameters())))


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
        callbacks: observers of training (e.g. a progress bar); a model's own
            ``training_callbacks()``, when it has them, run after these.
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
    callbacks = [*callbacks, *getattr(model, "training_callbacks", lambda: [])()]
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
    batch = sample_batch(problem, collocation, seed).shard(parallel).to(dtype, device)
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
