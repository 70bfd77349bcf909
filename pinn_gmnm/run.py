"""From a :class:`~pinn_gmnm.config.RunConfig` to a finished run directory.

This is where configuration strings become objects (problem, model, sampler, stages),
and what ``gmnm-pde solve`` calls.
"""

from __future__ import annotations

import dataclasses
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__, distributed
from .artifacts import new_run_dir, save_checkpoint, write_history, write_json
from .config import RunConfig
from .errors import GMNMError
from .models import build_model
from .models.hard import hard_constraint
from .plotting import plot_snapshots, plot_solution, plot_training, plot_unknowns
from .problem import Problem, get_problem
from .references import load_reference
from .sampling import get_sampler
from .training import (Collocation, GradNormBalance, Refine, Resample, Solution, solve,
                       stage_from_dict)
from .training.solve import least_squares_applies, prefers_least_squares
from .training.stages import Stage
from .training.task import Callback

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_device(name: str) -> torch.device:
    """``auto`` (a GPU when there is one), ``cpu``, ``cuda`` or ``cuda:N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise GMNMError(f"unknown device '{name}'; use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise GMNMError(f"unsupported device '{name}'; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise GMNMError(f"device '{name}' was asked for, but this torch sees no CUDA GPU")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise GMNMError(
                f"device '{name}' does not exist; this machine has {torch.cuda.device_count()} GPU(s)"
            )
    return device


def stages_for(config: RunConfig, problem: Problem, model: nn.Module) -> tuple[str, list[Stage]]:
    """The training stages of a run and the name of the method they implement."""
    if config.stages is not None:
        method = config.method if config.method != "auto" else "custom"
        return method, [stage_from_dict(s) for s in config.stages]
    recipe = getattr(model, "training_recipe", None)  # a model with a fixed recipe (pinn)
    if recipe is not None:
        method, specs = recipe(config.adam_steps, config.lbfgs_steps)
        return method, [stage_from_dict(s) for s in specs]
    method = config.method
    if method == "custom":
        raise GMNMError("method 'custom' needs a list of stages in the config file")
    if method == "auto":
        method = "varpro" if prefers_least_squares(problem, model) else "adam-lbfgs"
    if method in ("lstsq", "varpro") and not least_squares_applies(problem, model):
        why = ("the problem is not declared linear" if problem.linear is not True
               else f"model '{config.model}' has no linear output layer")
        raise GMNMError(f"method '{method}' needs least squares, but {why}; use --method adam-lbfgs")
    # inverse problems: learn the unknown coefficients with the head re-solved first
    learn = [stage_from_dict({"type": "coefficients"})] if problem.unknowns else []
    if method == "lstsq":
        return method, [stage_from_dict({"type": "lstsq"})] + learn
    if method == "varpro":
        return method, [stage_from_dict({"type": "lstsq"})] + learn + [
            stage_from_dict({"type": "varpro", "steps": config.varpro_steps})]
    return method, [
        stage_from_dict({"type": "adam", "steps": config.adam_steps, "lr": config.lr,
                         "final_lr": config.lr / 100}),
        stage_from_dict({"type": "lbfgs", "steps": config.lbfgs_steps}),
    ]


@dataclass
class RunResult:
    """A finished run: its resolved config, solution and where its artifacts are."""

    config: RunConfig
    method: str
    solution: Solution
    directory: Path | None
    wall_time: float


def prepare(config: RunConfig) -> tuple[Problem, nn.Module, str, list[Stage]]:
    """Build problem, model and stages for ``config`` (seeding the model's initialisation)."""
    problem = get_problem(config.problem, **config.params)
    if config.reference is not None:  # the user's reference replaces the problem's own
        ref = load_reference(config.reference, problem.dim, problem.n_outputs)
        problem = dataclasses.replace(problem, exact=None, reference=ref)
    torch.manual_seed(config.seed)
    model = build_model(config.model, problem.dim, problem.n_outputs,
                        bounds=problem.geometry.bbox, **config.model_options)
    if config.hard:
        model = hard_constraint(problem, model)
    method, stages = stages_for(config, problem, model)
    return problem, model, method, stages


def run(config: RunConfig, *, out: Path | None = Path("runs"), callbacks: Sequence[Callback] = (),
        name: str | None = None) -> RunResult:
    """Run ``config``; with ``out``, write a run directory under it."""
    start = time.perf_counter()
    problem, model, method, stages = prepare(config)
    parallel, device = distributed.setup(resolve_device(config.device))
    solution = solve(
        problem, model, stages=stages,
        collocation=Collocation(config.interior, config.boundary, get_sampler(config.sampler)),
        seed=config.seed, dtype=DTYPES[config.dtype], device=device, weights=config.weights,
        budget=config.budget, eval_every=config.eval_every,
        callbacks=[*adaptive_callbacks(config), *callbacks], parallel=parallel,
    )
    reference = None if config.reference is None else str(Path(config.reference).resolve())
    resolved = RunConfig.from_dict({**config.to_dict(), "params": dict(problem.params),
                                    "reference": reference,
                                    "method": method,
                                    "stages": [s.to_dict() for s in stages]})
    directory = None
    if out is not None and parallel.is_main:  # only rank 0 writes
        directory = new_run_dir(Path(out), name or f"{config.problem}-{config.model}")
        write_artifacts(directory, resolved, solution, method, time.perf_counter() - start)
    return RunResult(resolved, method, solution, directory, time.perf_counter() - start)


def adaptive_callbacks(config: RunConfig) -> list[Callback]:
    """Resampling, refinement and loss balancing as the config asks (0 = off)."""
    out: list[Callback] = []
    if config.resample_every:
        out.append(Resample(every=config.resample_every))
    if config.refine_every:
        out.append(Refine(every=config.refine_every, add=max(1, config.interior // 20)))
    if config.balance_every:
        out.append(GradNormBalance(every=config.balance_every))
    return out


def environment() -> dict[str, Any]:
    return {"gmnm_pde": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "threads": torch.get_num_threads()}


def write_artifacts(directory: Path, config: RunConfig, solution: Solution, method: str,
                    wall_time: float) -> None:
    """config.json, metrics.json, history.csv, model.pt, solution.png, training.png, and
    snapshots.png (time-dependent problems) and unknowns.png (inverse problems)."""
    problem = solution.problem
    write_json(directory / "config.json", {"version": 1, **config.to_dict()})
    metrics = {"problem": problem.name, "model": config.model, "method": method,
               "parameters": solution.parameters, **solution.metrics,
               "wall_time": wall_time, "environment": environment()}
    write_json(directory / "metrics.json", metrics)
    write_history(directory / "history.csv", solution.history)
    save_checkpoint(directory / "model.pt", solution.model, {"config": config.to_dict()})
    title = f"{problem.name} · {config.model} ({solution.parameters} parameters, {method})"
    plot_solution(problem, solution.model, directory / "solution.png", title)
    plot_training(solution.history, directory / "training.png", title)
    if problem.geometry.time_dependent:
        plot_snapshots(problem, solution.model, directory / "snapshots.png", title)
    if problem.unknowns:
        plot_unknowns(solution.history, directory / "unknowns.png",
                      {k.name: k.true for k in problem.unknowns}, title)
