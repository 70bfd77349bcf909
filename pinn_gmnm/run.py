"""From a :class:`~pinn_gmnm.config.RunConfig` to a finished run directory.

This is where configuration strings become objects (problem, model, sampler, stages),
and what ``gmnm-pde solve`` calls.
"""

from __future__ import annotations

import dataclasses
import platform
import time
from contextlib import nullcontext
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__, distributed
from .artifacts import load_checkpoint, new_run_dir, save_checkpoint, write_history, write_json
from .config import RunConfig
from .errors import GMNMError
from .interrupt import StopOnSignal
from .lock import RunLock
from .memory import check_memory
from .methods import METHODS, Method, Steps, honouring_solver
from .models import build_model
from .models.base import Bounds
from .models.contract import capabilities
from .models.hard import hard_constraint
from .models.slabs import NEWTON_WIDTH, TimeSlabs, pieces_of
from .plotting import plot_snapshots, plot_solution, plot_training, plot_unknowns
from .profiles import write_profiles
from .problem import Problem, check_unchanged, get_problem, portable_spec
from .references import load_reference
from .sampling import get_sampler
from .training import (Collocation, GradNormBalance, Refine, Resample, Solution, solve,
                       stage_from_dict)
from .training.loop import snapshot_dict
from .training.growth import Grow
from .training.compact_march import compact_stages
from .training.march import SLAB_WIDTHS, SPLITS, START, March, slab_count, slab_stages
from .training.stages import Stage
from .training.task import Callback, Task

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
    """The training stages of a run and the name of the method they implement: the
    config's explicit stages when it lists them; else the model's fixed method when it
    declares one (the PINN baseline); else the config's method (``auto`` resolved)."""
    if config.stages is not None:
        method = config.method if config.method != "auto" else "custom"
        return method, [stage_from_dict(s) for s in config.stages]
    chosen = chosen_method(config, problem, model)
    if isinstance(model, TimeSlabs):  # the method trains each slab's piece in turn
        inner = chosen.build(problem, model.pieces[0], Steps.of(config))
        per_slab = slab_stages(inner, newton_only=model.whole is not None)
        # the single block, when tried first: Newton on its output layer (or grow), then the rest
        whole = () if model.whole is None else (per_slab[0], *inner[1:])
        splits = 0 if model.whole is None else SPLITS  # the default march adapts its slabs
        march = March(stages=per_slab, whole=whole, splits=splits)
        if model.whole is not None and not march.warm:  # solved from scratch: a graded
            # start, and each slab's first solve tries its Gaussians at two widths
            per_slab = tuple(dataclasses.replace(s, widths=SLAB_WIDTHS) if isinstance(s, Grow)
                             else s for s in per_slab)
            march = dataclasses.replace(march, stages=per_slab, start=START,
                                        compact=compact_stages())
        return chosen.name, [march]
    return chosen.name, chosen.build(problem, model, Steps.of(config))


def chosen_method(config: RunConfig, problem: Problem, model: nn.Module) -> Method:
    """The method a run of ``config`` trains ``model`` with (each slab's piece, for a
    model cut into time slabs): the model's fixed method when it declares one, else the
    config's (``auto`` resolved to the method it picks)."""
    model = pieces_of(model)[0]
    fixed = capabilities(model).fixed_method
    if fixed is not None:
        return fixed.resolve(problem, model)
    method = METHODS.get(config.method)
    resolved = method.resolve(problem, model)
    return honouring_solver(resolved, config.solver) if method is not resolved else resolved


@dataclass
class RunResult:
    """A finished run: its resolved config, solution and where its artifacts are."""

    config: RunConfig
    method: str
    solution: Solution
    directory: Path | None
    wall_time: float
    signal: str | None = None
    """The signal that stopped the run (status ``interrupted``), e.g. ``SIGINT``."""

    @property
    def status(self) -> str:
        return self.solution.status


def prepare(config: RunConfig) -> tuple[Problem, nn.Module, str, list[Stage]]:
    """Build problem, model and stages for ``config`` (seeding the model's initialisation),
    and check that the run fits in memory."""
    problem, model = build(config)
    method, stages = stages_for(config, problem, model)
    inner = [i for s in stages for i in (s.stages if isinstance(s, March) else (s,))]
    check_memory(points=config.interior + config.boundary, outputs=problem.n_outputs,
                 dim=problem.dim, model=pieces_of(model)[0], stages=inner,
                 dtype=DTYPES[config.dtype],
                 device=resolve_device(config.device))  # before any point is drawn
    return problem, model, method, stages


def build(config: RunConfig) -> tuple[Problem, nn.Module]:
    """The problem and the (seeded) model of ``config``."""
    check_unchanged(config.problem, config.problem_sha256)  # before running the file's code
    problem = get_problem(config.problem, **config.params)
    if config.reference is not None:  # the user's reference replaces the problem's own
        ref = load_reference(config.reference, problem.dim, problem.n_outputs,
                             names=problem.outputs)
        problem = dataclasses.replace(problem, exact=None, reference=ref)
    torch.manual_seed(config.seed)
    model = build_model(config.model, problem.dim, problem.n_outputs,
                        bounds=problem.geometry.bbox, equations=equations(config, problem),
                        **described(problem, config.model_options))
    if config.stages is None:  # a default run marches when one block may fail
        trial = block_trial(config, problem, model)
        slabs = slab_count(config.slabs, problem, hard=config.hard, trial=trial)
        whole = config.slabs is None and slabs > 1
    else:  # a resolved (or the user's) list of stages says whether to try one block first
        slabs = slab_count(config.slabs, problem, hard=config.hard)
        march = [s for s in config.stages if s.get("type") == "march" and s.get("whole")]
        whole, trial = bool(march), march[0]["whole"][0].get("type") if march else None
    if slabs > 1:  # a default march (whole) lays its slabs out thin for Newton in one
        # space dimension, else wide in space, Newton's narrower (see models.slabs)
        newton = trial == "gauss-newton"
        thin = whole and newton and len(problem.spatial) == 1
        spatial = whole and not thin
        torch.manual_seed(config.seed)
        def piece(bounds: Bounds, slab: bool = True) -> nn.Module:
            return build_model(config.model, problem.dim, problem.n_outputs, bounds=bounds,
                               equations=equations(config, problem, slab=True),
                               **described(problem, config.model_options, slab=slab))

        model = TimeSlabs(piece, problem.geometry.bbox, slabs, whole=whole,
                          build_whole=lambda bounds: piece(bounds, slab=False), thin=thin,
                          spatial=spatial, width=NEWTON_WIDTH if spatial and newton else 1.0,
                          patch=spatial and newton)
    if config.hard:
        model = hard_constraint(problem, model)
    return problem, model


def block_trial(config: RunConfig, problem: Problem, model: nn.Module) -> str | None:
    """The method by which a default run of ``config`` can judge ``model``, a GMNM, on the
    single space-time block before it marches (see :class:`~.training.march.March`):
    ``gauss-newton`` (Newton's method on the output layer: the default for a GMNM on a
    nonlinear problem) or ``grow`` (its first least-squares solve and held-out check: the
    default on a linear one); None for other models, which keep one block by default as
    they keep their methods."""
    from .models.gmnm import GMNM

    if not isinstance(model, GMNM):
        return None
    name = chosen_method(config, problem, model).name
    return name if name in ("gauss-newton", "grow") else None


def described(problem: Problem, options: dict[str, Any] | None = None, *,
              slab: bool = False) -> dict[str, Any]:
    """The model ``options`` (the user's) with what a model that lays itself out by its
    problem (``ModelSpec.fits_collocation``) is told besides the equations: whether the
    problem has boundary or initial ``conditions``, and how its axes compare
    (``isotropic``, so that a GMNM on an elongated domain is laid out round in the
    problem's own units; with a time variable also ``time_axis``: round in space, time
    laid out as a mean axis of space) unless the options choose it. A ``slab`` of a march
    keeps the normalised layout: the march lays out its slabs itself
    (:func:`~.models.slabs.slab_layout`, round in space too)."""
    steady = len(problem.spatial) == problem.dim
    told: dict[str, Any] = {"conditions": bool(problem.conditions), "isotropic": not slab}
    if not steady and not slab:
        told["time_axis"] = True
    given = {k: v for k, v in (options or {}).items() if v is not None}
    return {**told, **given}


def equations(config: RunConfig, problem: Problem, *, slab: bool = False) -> int:
    """The collocation equations a run of ``config`` trains on, counted low: one residual
    equation per field at each interior point (a well-posed system has as many equations
    as unknown fields), plus the boundary points when the problem has conditions (each
    condition draws at least its share of them). A default GMNM is sized to these.

    A ``slab`` of a march counts its interior points once, whatever the fields: each slab
    has a share of the run's time to be solved in, and slab models sized by counting
    every field starved the march at 60 s (``gray-scott`` 3.7e-3 → 0.52,
    ``schrodinger`` 0.31 → 1.1), where a single block of a steady system gains from them
    (``lid-driven-cavity`` 1.1e-2 → 2.8e-3, ``kovasznay`` 2.7e-6 → 4.4e-7)."""
    fields = 1 if slab else problem.n_outputs
    return config.interior * fields + (config.boundary if problem.conditions else 0)


def run(config: RunConfig, *, out: Path | None = Path("runs"), callbacks: Sequence[Callback] = (),
        name: str | None = None, stop: StopOnSignal | None = None, autosave: float = 60.0
        ) -> RunResult:
    """Run ``config``; with ``out``, write a run directory under it.

    Ctrl-C or SIGTERM stops training at its next safe point; the run directory then holds
    what :func:`resume` needs (status ``interrupted``). Give ``stop`` to share one signal
    handler between several runs (as a comparison does); otherwise the run installs its own.
    The checkpoint is refreshed every ``autosave`` seconds of the run, so that a killed
    process can be resumed too.
    """
    start = time.perf_counter()
    problem, model, method, stages = prepare(config)
    reference = None if config.reference is None else str(Path(config.reference).resolve())
    resolved = RunConfig.from_dict({**config.to_dict(), "params": dict(problem.params),
                                    **_problem_source(config), "reference": reference,
                                    "method": method, "slabs": model.slabs if isinstance(model, TimeSlabs) else 1,
                                    "stages": [s.to_dict() for s in stages]})
    folder = None
    if out is not None:
        label = name or f"{config.problem}-{config.model}"
        folder = RunFolder(lambda: new_run_dir(Path(out), label), resolved, method,
                           autosave=autosave)
    return _execute(resolved, problem, model, method, stages, folder, callbacks, start, stop)


def resume(directory: Path, *, budget: float | None = None, callbacks: Sequence[Callback] = (),
           stop: StopOnSignal | None = None, autosave: float = 60.0,
           accept_changed_problem: bool = False) -> RunResult:
    """Continue the stopped run in ``directory`` where it stopped, writing to the same
    directory. On the CPU in float64 the result equals that of an uninterrupted run.
    ``budget`` replaces the run's training-time budget (total seconds, all sessions);
    ``accept_changed_problem`` continues even when the problem file changed since."""
    directory = Path(directory)
    start = time.perf_counter()
    load_run(directory)  # a resumable run directory: checked before it is locked
    with RunLock(directory) if distributed.is_main_process() else nullcontext():  # the writer
        payload = load_run(directory)  # as the last writer left it
        config = saved_config(payload, budget=budget, accept_changed_problem=accept_changed_problem)
        state = payload["resume"]
        # a run stopped by its budget continues only with a larger one: without it, it
        # would stop again at once (the budget also ends a run a step early, when the
        # next step would overrun it, so its elapsed time may be just under the budget)
        before = payload["config"].get("budget")
        if payload.get("status") == "out-of-budget" and config.budget is not None and (
                before is None or config.budget <= before
                or float(state["elapsed"]) >= config.budget):
            raise GMNMError(
                f"run {directory} stopped when its budget of {config.budget:g} s ran out; give a "
                "larger --budget (total training seconds) to continue it"
            )
        problem, model, method, stages = prepare(config)
        config = RunConfig.from_dict({**config.to_dict(), **_problem_source(config)})
        folder = RunFolder(lambda: directory, config, method, existing=True, autosave=autosave)
        return _execute(config, problem, model, method, stages, folder, callbacks, start, stop,
                        state)


def saved_config(payload: dict[str, Any], *, budget: float | None = None,
                 accept_changed_problem: bool = False) -> RunConfig:
    """The configuration a stopped run (``payload``, from :func:`load_run`) continues
    with: its own, with ``budget`` when given, and no check of the problem file when
    ``accept_changed_problem``."""
    data = dict(payload["config"])
    if budget is not None:
        data["budget"] = budget
    if accept_changed_problem:
        data["problem_sha256"] = None
    return RunConfig.from_dict(data)


def _problem_source(config: RunConfig) -> dict[str, Any]:
    """The config keys that let the run find its problem file again from any folder."""
    problem, sha256 = portable_spec(config.problem)
    return {"problem": problem, "problem_sha256": sha256}


def read_run(directory: Path) -> dict[str, Any]:
    """The checkpoint of a run directory, checked to record the run's configuration."""
    if not directory.is_dir():
        raise GMNMError(f"run directory not found: {directory}")
    path = directory / "model.pt"
    if not path.is_file():
        raise GMNMError(f"{directory} holds no model.pt; is it a gmnm-pde run directory?")
    payload = load_checkpoint(path)
    if not isinstance(payload.get("config"), dict):
        raise GMNMError(f"{path} records no run configuration, so its run cannot be rebuilt")
    return payload


def load_run(directory: Path) -> dict[str, Any]:
    """The checkpoint of a stopped run directory, checked to be resumable."""
    payload = read_run(directory)
    if payload.get("resume") is None:
        raise GMNMError(
            f"run {directory} has status '{payload.get('status', 'completed')}': there is nothing "
            "to resume"
        )
    return payload


def _execute(config: RunConfig, problem: Problem, model: nn.Module, method: str,
             stages: list[Stage], folder: RunFolder | None, callbacks: Sequence[Callback],
             start: float, stop: StopOnSignal | None, state: dict[str, Any] | None = None
             ) -> RunResult:
    parallel, device = distributed.setup(resolve_device(config.device))
    if not parallel.is_main:  # only rank 0 writes
        folder = None
    observers = [*adaptive_callbacks(config), *callbacks]
    if folder is not None:
        observers.append(folder)
    with StopOnSignal() if stop is None else nullcontext(stop) as signals:
        try:
            solution = solve(
                problem, model, stages=stages,
                collocation=Collocation(config.interior, config.boundary, get_sampler(config.sampler)),
                seed=config.seed, dtype=DTYPES[config.dtype], device=device, weights=config.weights,
                budget=config.budget, eval_every=config.eval_every, callbacks=observers,
                parallel=parallel, stop=signals, resume=state,
            )
            if folder is not None:
                folder.finish(solution, time.perf_counter() - start)
        except BaseException as exc:
            if folder is not None and folder.failed(exc):
                exc.add_note(f"the last good state (step {folder.task.snapshot.step}) is saved in "
                             f"{folder.path}; to continue: gmnm-pde solve --resume {folder.path}")
            raise
        finally:
            if folder is not None:
                folder.close()
    directory = folder.path if folder is not None else None
    return RunResult(config, method, solution, directory, time.perf_counter() - start,
                     signals.signal_name if solution.status == "interrupted" else None)


class RunFolder:
    """The run directory, kept up to date as a training callback.

    It is created when training starts (a run that fails its checks leaves nothing
    behind) with ``config.json`` written at once; the checkpoint, with the state to resume
    from, and the history are refreshed every ``autosave`` seconds, so that even a killed
    process loses little; everything is written at the end. When a run fails, the last
    good state is saved (status ``failed``) unless no step was done, in which case a
    directory created for it is removed again. A directory it creates is locked
    (:class:`~pinn_gmnm.lock.RunLock`) until :meth:`close`; an ``existing`` one is
    locked by whoever passes it in.
    """

    def __init__(self, make: Callable[[], Path], config: RunConfig, method: str, *,
                 existing: bool = False, autosave: float = 60.0) -> None:
        self._make, self.config, self.method = make, config, method
        self.existing, self.autosave = existing, autosave
        self.path: Path | None = None
        self.task: Task | None = None
        self._saved = time.monotonic()
        self._lock: RunLock | None = None

    def _open(self) -> Path:
        self.path = self._make()
        if not self.existing:
            self._lock = RunLock(self.path)
            self._lock.acquire()
        return self.path

    def close(self) -> None:
        """Release the directory's lock, if this folder took it."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def on_stage_start(self, stage: Stage, task: Task) -> None:
        self.task = task
        if self.path is None:
            write_json(self._open() / "config.json", {"version": 1, **self.config.to_dict()})

    def on_record(self, row: dict[str, Any], task: Task) -> None:
        if self.path is not None and time.monotonic() - self._saved >= self.autosave:
            self._save_state(task, "running")

    def _save_state(self, task: Task, status: str) -> None:
        assert self.path is not None
        state = snapshot_dict(task)
        save_checkpoint(self.path / "model.pt", task.model,
                        {"config": self.config.to_dict(), "status": status, "resume": state})
        write_history(self.path / "history.csv", state["history"] if state else [])
        self._saved = time.monotonic()

    def finish(self, solution: Solution, wall_time: float) -> None:
        write_artifacts(self.path or self._open(), self.config, solution, self.method, wall_time)

    def failed(self, exc: BaseException) -> bool:
        """Save what a failed run did; True when a resumable state was saved."""
        task = self.task
        if self.path is None or task is None:
            return False
        if task.snapshot is None or (task.snapshot.step == 0 and not self.existing):
            self.close()
            (self.path / "config.json").unlink(missing_ok=True)
            if not any(self.path.iterdir()):
                self.path.rmdir()
            self.path = None
            return False
        self._save_state(task, "failed")
        error = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
        write_json(self.path / "metrics.json", {
            "problem": task.loss.problem.name, "model": self.config.model, "method": self.method,
            "status": "failed", "error": error, "steps": task.snapshot.step,
            "events": task.events, "environment": environment()})
        return True


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
    """config.json, model.pt, history.csv, metrics.json, then solution.png, training.png
    (when the history has more than one record), snapshots.png (time-dependent problems),
    unknowns.png (inverse problems) and profiles.csv with profiles.png (problems that
    declare profiles); no
    figures for an interrupted run, which should exit quickly. Each file is written
    atomically; the checkpoint holds the state to resume from unless the run completed."""
    problem = solution.problem
    write_json(directory / "config.json", {"version": 1, **config.to_dict()})
    extra: dict[str, Any] = {"config": config.to_dict(), "status": solution.status}
    if solution.state is not None:
        extra["resume"] = solution.state
    save_checkpoint(directory / "model.pt", solution.model, extra)
    write_history(directory / "history.csv", solution.history)
    metrics = {"problem": problem.name, "model": config.model, "method": method,
               "parameters": solution.parameters, **solution.metrics, "status": solution.status,
               "events": solution.events, "wall_time": wall_time, "environment": environment()}
    write_json(directory / "metrics.json", metrics)
    if solution.status == "interrupted":
        return
    title = f"{problem.name} · {config.model} ({solution.parameters} parameters, {method})"
    plot_solution(problem, solution.model, directory / "solution.png", title)
    if len(solution.history) > 1:  # one record (a one-shot solve) is no curve: metrics say it
        plot_training(solution.history, directory / "training.png", title)
    if problem.geometry.time_dependent:
        plot_snapshots(problem, solution.model, directory / "snapshots.png", title)
    if problem.unknowns and solution.history:
        plot_unknowns(solution.history, directory / "unknowns.png",
                      {k.name: k.true for k in problem.unknowns}, title)
    write_profiles(problem, solution.model, directory, title)
