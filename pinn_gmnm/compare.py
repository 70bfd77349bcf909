"""Side-by-side comparisons: several models on one problem, several seeds each, with
equal budgets and matched sizes.

What is held equal, and what is not:

- **Size.** Every model is sized to the same parameter count (±10 %): ``params``, or by
  default the size of the default GMNM for the problem (see :mod:`.models.sizing`).
- **Budget.** Either the same wall-clock training budget per run (``budget`` seconds;
  a run that converges sooner stops sooner and says so; the CLI lets the open-ended last
  stage, L-BFGS, variable projection or Gauss–Newton, run until the budget unless steps
  are given: :data:`~.config.UNTIL_BUDGET`), or — without a budget — the
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from .artifacts import new_run_dir, write_json
from .config import UNTIL_BUDGET, RunConfig
from .errors import GMNMError, require_positive
from .interrupt import StopOnSignal
from .models import MODELS
from .models.sizing import match_parameters, parameter_count
from .plotting import slice_grid
from .problem import Problem, get_problem
from .run import RunResult, prepare, run, write_artifacts
from .training.stages import Stage
from .training.task import Callback

MODEL_ORDER = ("gmnm", "pinn", "mlp", "kan")
"""The default models, in table order."""


@dataclass(frozen=True)
class Comparison:
    """What to compare: ``models`` on ``base.problem``, ``seeds`` runs each (seeds
    base.seed, base.seed + 1, …), sized to ``params`` parameters (None: the default
    GMNM's size). ``base`` carries the shared settings: method, steps, budget, points,
    sampler, dtype, device, problem parameters."""

    base: RunConfig
    models: tuple[str, ...] = MODEL_ORDER
    seeds: int = 3
    params: int | None = None
    jobs: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", tuple(self.models))
        if not self.models:
            raise GMNMError("give at least one model to compare, e.g. --models gmnm,mlp")
        for name in self.models:
            MODELS.entry(name)  # unknown model: the standard error
        if len(set(self.models)) != len(self.models):
            raise GMNMError(f"models are listed twice: {','.join(self.models)}")
        require_positive("seeds", self.seeds, integer=True)
        if self.params is not None:
            require_positive("target parameter count (--params)", self.params, integer=True)
        require_positive("jobs", self.jobs, integer=True)

    @property
    def budget_text(self) -> str:
        b = self.base
        if b.budget is not None:
            text = f"equal wall-clock budget: {b.budget:g} s of training per run"
            if UNTIL_BUDGET in (b.lbfgs_steps, b.varpro_steps, b.gn_steps):
                text += " (the last stage runs until the budget or its own stopping rule)"
            return text
        return (f"equal steps: Adam {b.adam_steps} + L-BFGS {b.lbfgs_steps}, "
                f"or least squares + variable projection {b.varpro_steps}, per the row's method")


@dataclass
class RunRecord:
    """One finished (or failed) run of a comparison."""

    model: str
    seed: int
    status: str                       # "ok", "diverged", "interrupted" or "failed: …"
    method: str
    training: str                     # the stages, in words
    parameters: int
    metrics: dict[str, float]
    history: list[dict[str, Any]]
    directory: Path | None

    def summary(self) -> dict[str, Any]:
        return {"model": self.model, "seed": self.seed, "status": self.status,
                "method": self.method, "training": self.training,
                "parameters": self.parameters, **self.metrics,
                "directory": None if self.directory is None else str(self.directory)}


@dataclass
class ComparisonResult:
    comparison: Comparison
    problem: Problem
    target: int
    records: list[RunRecord]
    directory: Path | None
    fields: dict[str, np.ndarray] = field(default_factory=dict)  # model → slice prediction
    interrupted: str | None = None    # the signal that stopped the comparison early


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
                else f"{s.kind} {'until budget' if steps == UNTIL_BUDGET else steps}")
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
    return parameter_count("gmnm", problem.dim, problem.n_outputs, bounds=problem.geometry.bbox)


def plan(comparison: Comparison) -> tuple[Problem, int, list[RunConfig]]:
    """The problem, the matched size and one config per (model, seed), models outer."""
    base = comparison.base
    problem = get_problem(base.problem, **base.params)
    target = target_size(comparison, problem)
    gmnm_config = dataclasses.replace(base, model="gmnm", model_options={}, stages=None)
    gmnm_method = prepare(gmnm_config)[2]  # what GMNM's run will use (auto resolved)
    configs = []
    for name in comparison.models:
        options = match_parameters(name, problem.dim, problem.n_outputs, target,
                                   bounds=problem.geometry.bbox)
        method = gmnm_method if name == "mlp" else base.method
        for i in range(comparison.seeds):
            cfg = dataclasses.replace(base, model=name, model_options=options, method=method,
                                      stages=None, seed=base.seed + i)
            configs.append(_fallback_method(cfg))
    return problem, target, configs


def _fallback_method(cfg: RunConfig) -> RunConfig:
    """A model without a linear output layer cannot follow a least-squares method:
    it trains with adam-lbfgs instead (the table says so)."""
    try:
        prepare(cfg)
    except GMNMError as exc:
        if cfg.method in ("lstsq", "varpro") and "needs least squares" in str(exc):
            return dataclasses.replace(cfg, method="adam-lbfgs")
        raise
    return cfg


def run_comparison(comparison: Comparison, *, out: Path | None = Path("runs"),
                   observer: Observer | None = None, stop: StopOnSignal | None = None
                   ) -> ComparisonResult:
    """Run every (model, seed) and, with ``out``, write the comparison directory:
    ``summary.md``, ``summary.json``, ``convergence.png``, ``fields.png`` and
    ``runs/MODEL-seedS/`` (each run's own directory).

    Ctrl-C or SIGTERM (one handler for the whole comparison, or ``stop``) ends the current
    run at its next step and the comparison after it: the report covers the runs done so
    far and ``interrupted`` names the signal."""
    from .compare_report import write_report

    problem, target, configs = plan(comparison)
    directory = None
    if out is not None:
        directory = new_run_dir(Path(out), f"compare-{comparison.base.problem}")
    result = ComparisonResult(comparison, problem, target, [], directory)
    with StopOnSignal() if stop is None else nullcontext(stop) as signals:
        if comparison.jobs > 1:
            records = run_parallel(configs, comparison.jobs, directory, observer, signals)
        else:
            records = []
            for index, cfg in enumerate(configs):
                stages = prepare(cfg)[3]
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
    if directory is not None:
        write_report(result)
    return result


_HALT: Any = None
"""In a sweep worker process: the parent's event asking running runs to stop."""


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
    problem, _, _, stages = prepare(cfg)
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
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = max(1, cores // jobs)
    ctx = multiprocessing.get_context("spawn")
    counter, halt = ctx.Value("i", 0), ctx.Event()
    out: list[tuple[RunRecord, np.ndarray | None] | None] = [None] * len(configs)
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init,
                             initargs=(counter, threads, halt)) as pool:
        futures = {pool.submit(_worker_run, cfg, directory): i for i, cfg in enumerate(configs)}
        for i, cfg in enumerate(configs):
            if observer:
                observer.on_run_start(i, len(configs), cfg, prepare(cfg)[3])
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
    start = time.perf_counter()
    try:
        res = run(cfg, out=None, callbacks=callbacks, stop=stop)
    except (RuntimeError, ArithmeticError) as exc:  # e.g. a singular solve after divergence
        nan = math.nan
        metrics = {"rel_l2": nan, "max_abs": nan, "residual_rms": nan,
                   "train_time": time.perf_counter() - start, "steps": 0, "wall_time": nan,
                   "time_per_step": nan}
        status = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
        run_dir = None
        if directory is not None:
            run_dir = directory / "runs" / f"{cfg.model}-seed{cfg.seed}"
            write_json(run_dir / "error.json", {"config": cfg.to_dict(), "error": status})
        params = parameter_count(cfg.model, problem.dim, problem.n_outputs,
                                 bounds=problem.geometry.bbox, **cfg.model_options)
        return RunRecord(cfg.model, cfg.seed, status, cfg.method, describe_stages(stages),
                         params, metrics, [], run_dir), None
    m = dict(res.solution.metrics)
    m["wall_time"] = res.wall_time
    m["time_per_step"] = m["train_time"] / max(1, int(m["steps"]))
    finite = all(math.isfinite(float(r["loss"])) for r in res.solution.history[-1:])
    if res.solution.problem.exact is not None:
        finite = finite and math.isfinite(m["rel_l2"])
    status = res.status if res.status in ("diverged", "interrupted") else "ok" if finite else "diverged"
    run_dir = None
    if directory is not None:
        run_dir = directory / "runs" / f"{cfg.model}-seed{cfg.seed}"
        run_dir.mkdir(parents=True, exist_ok=True)
        write_artifacts(run_dir, res.config, res.solution, res.method, res.wall_time)
    record = RunRecord(cfg.model, cfg.seed, status, res.method,
                       describe_stages(res.solution.stages), res.solution.parameters, m,
                       res.solution.history, run_dir)
    return record, _slice_prediction(res, problem)


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
