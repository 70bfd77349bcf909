"""Side-by-side comparisons: several models on one problem, several seeds each, with
equal budgets and matched sizes.

What is held equal, and what is not:

- **Size.** Every model is sized to the same parameter count (±10 %): ``params``, or by
  default the size of the default GMNM for the problem (see :mod:`.models.sizing`).
- **Budget.** Either the same wall-clock training budget per run (``budget`` seconds;
  a run that converges sooner stops sooner and says so; the CLI lets the open-ended last
  stage, L-BFGS, variable projection or Gauss–Newton, run until the budget unless steps
  are given: a step count of None), or — without a budget — the
  same step options for every run ("equal steps"; an L-BFGS iteration is not an Adam
  step, so the table also gives the time per step).
- **Data.** Seed s draws the same collocation points and evaluation set for every model.
- **Method.** ``gmnm`` and ``kan`` train with the method asked for (``auto``: each
  model's default — least squares + variable projection for GMNM on linear problems,
  Adam then L-BFGS with pykan-style grid updates for KAN); ``mlp`` with the method the
  GMNM run uses (the architecture ablation); ``pinn`` always with its classic recipe,
  Adam (lr 1e-3) then L-BFGS. With an explicit method (e.g. ``adam-lbfgs``) every model
  but ``pinn`` uses it; the tables state each row's training.

Runs whose error is not finite (diverged) or that fail numerically are reported as
such, never dropped.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from . import distributed
from .artifacts import new_run_dir, write_json
from .comparison import (MODEL_ORDER, NOT_APPLICABLE, Comparison, ComparisonResult,  # noqa: F401
                         RunRecord)
from .config import RunConfig
from .interrupt import StopOnSignal
from .methods import METHODS, Method
from .models import MODELS
from .models.contract import capabilities
from .models.sizing import match_parameters, parameter_count
from .plotting import slice_grid
from .problem import Problem, get_problem
from .run import (RunResult, build, chosen_method, described, equations, prepare, run,
                  write_artifacts)
from .sweep import RECORD, claim_plan, run_dir, select, write_record
from .training.stages import Stage
from .training.task import Callback

class Observer(Protocol):
    """Follows a comparison (e.g. a progress bar); returns training callbacks per run."""

    def on_run_start(self, index: int, total: int, config: RunConfig,
                     stages: Sequence[Stage]) -> Sequence[Callback]: ...
    def on_run_end(self, index: int, record: RunRecord) -> None: ...


def describe_stages(stages: Sequence[Stage]) -> str:
    """``adam 1000 (lr 1e-2 → 1e-4) → lbfgs 2000``: a run's training in words."""
    parts = []
    for s in stages:
        d = s.to_dict()
        steps = d.get("steps")
        text = (s.kind if s.kind == "lstsq"
                else f"{s.kind} {'until budget' if steps is None else steps}")
        if d.get("head_only"):
            text += " (output layer only)"
        if s.kind == "adam":
            end = f" → {d['final_lr']:g}" if d.get("final_lr") else ""
            text += f" (lr {d['lr']:g}{end})"
        parts.append(text)
    return " → ".join(parts)


def target_size(comparison: Comparison, problem: Problem) -> int:
    """The parameter count every model is matched to."""
    if comparison.params is not None:
        return comparison.params
    return parameter_count("gmnm", problem.dim, problem.n_outputs, bounds=problem.geometry.bbox,
                           equations=equations(comparison.base, problem), **described(problem))


def plan(comparison: Comparison) -> tuple[Problem, int, list[RunConfig]]:
    """The problem, the matched size and one config per (model, seed), models outer."""
    base = comparison.base
    problem = get_problem(base.problem, **base.params)
    target = target_size(comparison, problem)
    gmnm_config = dataclasses.replace(base, model="gmnm", model_options={}, stages=None)
    gmnm_method = prepare(gmnm_config)[2]  # what GMNM's run will use (auto resolved)
    configs = []
    for name in comparison.models:
        run: dict[str, Any] = {}
        if comparison.tuned is not None:  # each model as tuned; sizes were part of the search
            from .tune import tuned_settings

            options = tuned_settings(comparison.tuned, base.problem, name)
            run = {k: options.pop(k) for k in ("lr",) if k in options}
        elif MODELS.get(name).size_option is None:  # nothing to match (fem): as given
            options = dict(comparison.options.get(name, {}))
        else:
            options = match_parameters(name, problem.dim, problem.n_outputs, target,
                                       bounds=problem.geometry.bbox)
        method = gmnm_method if name == "mlp" and comparison.tuned is None else base.method
        for i in range(comparison.seeds):
            cfg = dataclasses.replace(base, model=name, model_options=options, method=method,
                                      stages=None, seed=base.seed + i, **run)
            configs.append(_fallback_method(cfg))
    return problem, target, configs


def _fallback_method(cfg: RunConfig) -> RunConfig:
    """A model the method does not apply to (a least-squares method and a model
    without a linear output layer, or a nonlinear problem) trains with the method's
    fallback (``grow`` → ``lstsq``), or else with adam-lbfgs (the table says so);
    decided from what the model declares."""
    problem, model = build(cfg)
    if capabilities(model).fixed_method is not None:  # when it does not apply, _one_run says so
        return cfg
    method = chosen_method(cfg, problem, model)
    while method.unavailable(problem, model) is not None:
        if method.fallback is None:
            return dataclasses.replace(cfg, method="adam-lbfgs")
        method = METHODS.get(method.fallback)
        cfg = dataclasses.replace(cfg, method=method.name)
    return cfg


def run_comparison(comparison: Comparison, *, out: Path | None = Path("runs"),
                   into: Path | None = None, only: Sequence[tuple[str, int]] | None = None,
                   observer: Observer | None = None, stop: StopOnSignal | None = None
                   ) -> ComparisonResult:
    """Run every (model, seed) and, with ``out``, write the comparison directory:
    ``summary.md``, ``summary.json``, ``convergence.png``, ``fields.png``, ``plan.json``
    and ``runs/MODEL-seedS/`` (each run's own directory).

    ``into`` names the comparison directory instead of a new one under ``out``, so that
    several commands (on several hosts) can share it; ``only`` runs just those
    ``(model, seed)`` pairs and writes no report (``gmnm-pde compare --collect`` does, see
    :mod:`.sweep`). The directory's ``plan.json`` must agree with this comparison.

    Ctrl-C or SIGTERM (one handler for the whole comparison, or ``stop``) ends the current
    run at its next step and the comparison after it: the report covers the runs done so
    far and ``interrupted`` names the signal."""
    from .compare_report import write_report

    problem, target, configs = plan(comparison)
    if only is not None:
        configs = select(configs, only)
    directory = None
    if not distributed.is_main_process():
        pass  # one data-parallel run on several torchrun ranks: rank 0 alone writes
    elif into is not None:
        directory = Path(into)
    elif out is not None:
        directory = new_run_dir(Path(out), f"compare-{comparison.base.problem}")
    if directory is not None:
        claim_plan(directory, comparison, target)
    result = ComparisonResult(comparison, problem, target, [], directory)
    with StopOnSignal() if stop is None else nullcontext(stop) as signals:
        if comparison.jobs > 1:
            records = run_parallel(configs, comparison.jobs, directory, observer, signals)
        else:
            records = []
            for index, cfg in enumerate(configs):
                stages = planned_stages(cfg)
                callbacks = observer.on_run_start(index, len(configs), cfg, stages) if observer else ()
                records.append(_one_run(cfg, problem, stages, callbacks, directory, signals))
                if observer:
                    observer.on_run_end(index, records[-1][0])
                if signals():
                    break
        if signals():
            result.interrupted = signals.signal_name or "a stop request"
    for record, prediction in records:
        if prediction is not None and record.model not in result.fields:
            result.fields[record.model] = prediction
        result.records.append(record)
    if directory is not None and only is None:
        write_report(result)
    return result


_HALT: Any = None
"""In a sweep worker process: the parent's event asking running runs to stop."""


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system has one, so a
    container or ``taskset`` limit counts), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _worker_init(counter: Any, threads: int, halt: Any) -> None:
    """Pin a sweep worker to its own share of the cores (and as many torch threads)."""
    global _HALT
    _HALT = halt
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    share = cores[index * threads:(index + 1) * threads]
    if share:
        os.sched_setaffinity(0, share)
    torch.set_num_threads(threads)
    # Ctrl-C reaches every worker: a running run stops at its next step (its own handler),
    # an idle one ignores it; the parent's event stops runs that start later.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker_run(cfg: RunConfig, directory: Path | None) -> tuple[RunRecord, np.ndarray | None]:
    problem, stages = build(cfg)[0], planned_stages(cfg)
    with StopOnSignal(also=_HALT.is_set) as stop:
        return _one_run(cfg, problem, stages, (), directory, stop)


def run_parallel(configs: Sequence[RunConfig], jobs: int, directory: Path | None,
                 observer: Observer | None = None, stop: StopOnSignal | None = None
                 ) -> list[tuple[RunRecord, np.ndarray | None]]:
    """Run independent configs in ``jobs`` worker processes, each pinned to a share of the
    cores; results come back in the order of ``configs``.

    Every run is seeded by its own config, so with equal steps (no wall-clock budget) the
    numbers equal those of sequential execution. Workers start fresh interpreters
    (``spawn``): the problem must come from the catalogue or a ``file.py:function``.
    When ``stop`` asks, running runs stop at their next step and the others are dropped.
    """
    threads = max(1, usable_cores() // jobs)
    ctx = multiprocessing.get_context("spawn")
    counter, halt = ctx.Value("i", 0), ctx.Event()
    out: list[tuple[RunRecord, np.ndarray | None] | None] = [None] * len(configs)
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init,
                             initargs=(counter, threads, halt)) as pool:
        futures = {pool.submit(_worker_run, cfg, directory): i for i, cfg in enumerate(configs)}
        for i, cfg in enumerate(configs):
            if observer:
                observer.on_run_start(i, len(configs), cfg, planned_stages(cfg))
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in done:
                if future.cancelled():
                    continue
                i = futures[future]
                out[i] = future.result()
                if observer:
                    observer.on_run_end(i, out[i][0])
            if stop is not None and stop() and not halt.is_set():
                halt.set()
                for f in pending:
                    f.cancel()
    return [o for o in out if o is not None]


def _one_run(cfg: RunConfig, problem: Problem, stages: Sequence[Stage],
             callbacks: Sequence[Callback], directory: Path | None, stop: StopOnSignal | None = None
             ) -> tuple[RunRecord, np.ndarray | None]:
    """Run one config; numerical failures become a 'failed' record instead of an abort.
    Also returns the model's prediction on the problem's plotting slice."""
    if directory is not None:  # a rerun: unfinished until its record is written again
        (run_dir(directory, cfg.model, cfg.seed) / RECORD).unlink(missing_ok=True)
    blocked = not_applicable(cfg)
    if blocked is not None:
        method, why = blocked
        return _record_without_run(dataclasses.replace(cfg, method=method.name), problem, stages,
                                   directory, f"{NOT_APPLICABLE}: {why}", 0.0, error=False), None
    start = time.perf_counter()
    try:
        res = run(cfg, out=None, callbacks=callbacks, stop=stop)
    except (RuntimeError, ArithmeticError) as exc:  # e.g. a singular solve after divergence
        status = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
        return _record_without_run(cfg, problem, stages, directory, status,
                                   time.perf_counter() - start), None
    m = dict(res.solution.metrics)
    m["wall_time"] = res.wall_time
    m["time_per_step"] = m["train_time"] / max(1, int(m["steps"]))
    finite = all(math.isfinite(float(r["loss"])) for r in res.solution.history[-1:])
    if res.solution.problem.exact is not None:
        finite = finite and math.isfinite(m["rel_l2"])
    status = res.status if res.status in ("diverged", "interrupted") else "ok" if finite else "diverged"
    where = None
    if directory is not None:
        where = run_dir(directory, cfg.model, cfg.seed)
        where.mkdir(parents=True, exist_ok=True)
        write_artifacts(where, res.config, res.solution, res.method, res.wall_time)
    record = RunRecord(cfg.model, cfg.seed, status, res.method,
                       describe_stages(res.solution.stages), res.solution.parameters, m,
                       res.solution.history, where)
    prediction = _slice_prediction(res, problem)
    if where is not None:
        write_record(record, prediction)
    return record, prediction


def planned_stages(cfg: RunConfig) -> list[Stage]:
    """The stages a run of ``cfg`` trains with (none when its model does not apply)."""
    return [] if not_applicable(cfg) is not None else prepare(cfg)[3]


def not_applicable(cfg: RunConfig) -> tuple[Method, str] | None:
    """The fixed method of ``cfg``'s model and why it cannot solve the problem at all
    (``fem`` on a time-dependent problem), or None when the run can go ahead."""
    problem, model = build(cfg)
    method = capabilities(model).fixed_method
    why = None if method is None else method.unavailable(problem, model)
    return None if why is None else (method, why)


def _record_without_run(cfg: RunConfig, problem: Problem, stages: Sequence[Stage],
                        directory: Path | None, status: str, train_time: float, *,
                        error: bool = True) -> RunRecord:
    """The record of a run that failed or did not apply (NaN metrics); a failure also
    writes ``error.json``."""
    nan = math.nan
    metrics = {"rel_l2": nan, "max_abs": nan, "residual_rms": nan, "train_time": train_time,
               "steps": 0, "wall_time": nan, "time_per_step": nan}
    where = None
    if directory is not None:
        where = run_dir(directory, cfg.model, cfg.seed)
        if error:
            write_json(where / "error.json", {"config": cfg.to_dict(), "error": status})
    params = parameter_count(cfg.model, problem.dim, problem.n_outputs,
                             bounds=problem.geometry.bbox, equations=equations(cfg, problem),
                             **described(problem, cfg.model_options))
    record = RunRecord(cfg.model, cfg.seed, status, cfg.method, describe_stages(stages),
                       params, metrics, [], where)
    if where is not None:
        write_record(record, None)
    return record


def _slice_prediction(res: RunResult, problem: Problem) -> np.ndarray:
    """The model's first output on the 2D slice grid of :func:`slice_grid` (1D: a line)."""
    if problem.dim >= 2:
        grid = slice_grid(problem)[0]
    else:
        lo, hi = problem.geometry.bbox
        grid = torch.linspace(lo[0], hi[0], 1001, dtype=torch.float64)[:, None]
    with torch.no_grad():
        out = res.solution(grid)
    return out[:, 0].double().cpu().numpy()
