"""Equal tuning effort for every model: a hyper-parameter search with Optuna.

:func:`tune` searches one model's declared hyper-parameters (``ModelSpec.search``: the
learning rate, width and depth or components, …) on one problem with Optuna's TPE
sampler from a fixed seed: one study per (problem, model), the same number of trials
and the same per-trial settings (steps, or a wall-clock ``budget``) for every model.
The study lives in ``out/tune.sqlite``, so an interrupted search resumes where it
stopped and can be inspected with Optuna's own tools; the best settings are then rerun
over several seeds and written to ``out/tuned-PROBLEM-MODEL.json``.

Optuna comes with the ``tune`` extra (``pip install "gmnm-pde[tune]"``).
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from .artifacts import write_json
from .config import RunConfig
from .errors import GMNMError
from .models import MODELS, SearchParam

STORAGE = "tune.sqlite"
"""The study database in the output folder."""

SAMPLER_SEED = 0
"""TPE's seed: the same sequence of proposals for the same results."""

COMPARED = ("method", "adam_steps", "lbfgs_steps", "varpro_steps", "gn_steps", "budget",
            "interior", "boundary", "sampler", "dtype", "seed", "params", "model_options")
"""The settings a resumed study must share with the one it continues."""


def require_optuna() -> ModuleType:
    """Optuna, or a one-line error naming the extra that provides it."""
    try:
        return importlib.import_module("optuna")
    except ImportError:
        raise GMNMError("gmnm-pde tune needs Optuna, which is not installed; install the "
                        "'tune' extra: pip install \"gmnm-pde[tune]\"") from None


def search_space(model: str, names: Sequence[str] | None = None) -> tuple[SearchParam, ...]:
    """The parameters model ``model`` declares for tuning, or the subset ``names``."""
    declared = MODELS.get(model).search
    if not declared:
        raise GMNMError(f"model '{model}' declares no hyper-parameters to tune")
    if names is None:
        return declared
    by_name = {p.name: p for p in declared}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise GMNMError(f"model '{model}' has no tunable parameter {', '.join(map(repr, unknown))}; "
                        f"its tunable parameters: {', '.join(by_name)}")
    return tuple(by_name[n] for n in names)


def suggest(trial: Any, param: SearchParam) -> Any:
    """The trial's value for ``param``."""
    if param.choices:
        return trial.suggest_categorical(param.name, list(param.choices))
    if param.type is int:
        return trial.suggest_int(param.name, int(param.low), int(param.high), log=param.log)
    return trial.suggest_float(param.name, param.low, param.high, log=param.log)


def configure(base: RunConfig, values: dict[str, Any]) -> RunConfig:
    """``base`` with the tuned ``values``: ``lr`` as the run's, the rest as model options."""
    run = {k: v for k, v in values.items() if k == "lr"}
    options = {k: v for k, v in values.items() if k != "lr"}
    return dataclasses.replace(base, model_options={**base.model_options, **options}, **run)


def score(config: RunConfig) -> tuple[float, float]:
    """The relative L2 error of one run of ``config`` (inf when it fails) and the run's
    wall time in seconds (nan when it fails)."""
    from .run import run

    try:
        result = run(config, out=None)
    except GMNMError:
        return math.inf, math.nan
    if result.signal is not None:  # Ctrl-C or SIGTERM: not a result, the search stops
        raise Interrupted(result.signal)
    value = float(result.solution.metrics.get("rel_l2", math.nan))
    return (value if math.isfinite(value) else math.inf), float(result.wall_time)


class Interrupted(Exception):
    """A run stopped by a signal: its error is no trial's value."""


@dataclass(frozen=True)
class TuneResult:
    """The best trial's settings and error, and its reruns over seeds."""

    model: str
    best: dict[str, Any]
    best_value: float
    trials: int
    seeds: dict[int, float]
    path: Path
    seconds: dict[int, float] = dataclasses.field(default_factory=dict)
    """Each rerun's wall time (training and evaluation), by seed."""


def tune(base: RunConfig, *, trials: int, out: Path, search: Sequence[str] | None = None,
         seeds: int = 3, on_trial: Callable[[int, float], None] | None = None) -> TuneResult:
    """Search ``base.model``'s hyper-parameters on ``base.problem`` with ``trials``
    trials in all (a resumed study runs only the missing ones), then rerun the best
    settings with seeds ``base.seed … base.seed + seeds − 1``."""
    optuna = require_optuna()
    space = search_space(base.model, search)
    if trials < 1 or seeds < 0:
        raise GMNMError(f"trials must be >= 1 and seeds >= 0, got {trials} and {seeds}")
    out.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    settings = {k: v for k, v in base.to_dict().items() if k in COMPARED}
    settings["search"] = [p.name for p in space]
    name, storage = f"{base.problem}:{base.model}", f"sqlite:///{out / STORAGE}"
    study = optuna.create_study(study_name=name, storage=storage, direction="minimize",
                                load_if_exists=True)
    # A sampler seeded afresh on resuming would propose the first trials again: its seed
    # moves on with the trials already in the study (still one sequence per call history).
    study = optuna.load_study(study_name=name, storage=storage, sampler=optuna.samplers.TPESampler(
        seed=SAMPLER_SEED + len(study.trials)))
    saved = study.user_attrs.get("settings")
    if saved is None:
        study.set_user_attr("settings", settings)
    elif saved != settings:
        changed = sorted(k for k in {*saved, *settings} if saved.get(k) != settings.get(k))
        raise GMNMError(f"the study {base.problem}:{base.model} in {out / STORAGE} was run with "
                        f"other settings ({', '.join(changed)}); give the same settings to resume "
                        "it, or another --out")

    def objective(trial: Any) -> float:
        value, seconds = score(configure(base, {p.name: suggest(trial, p) for p in space}))
        trial.set_user_attr("seconds", seconds)
        return value

    def complete() -> int:
        return sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)

    def stopped(signal: Interrupted) -> GMNMError:
        return GMNMError(f"interrupted by {signal} after {complete()} complete trials of the "
                         f"study {name}; the same command resumes it")

    if trials > complete():
        callbacks = [] if on_trial is None else [
            lambda s, t: on_trial(t.number, t.value if t.value is not None else math.inf)]
        try:  # an interrupted trial is marked failed and run again on resuming
            study.optimize(objective, n_trials=trials - complete(), callbacks=callbacks)
        except Interrupted as signal:
            raise stopped(signal) from None
    best = study.best_trial
    runs = {base.seed: (float(best.value), float(best.user_attrs.get("seconds", math.nan)))}
    try:
        runs |= {base.seed + i: score(configure(dataclasses.replace(base, seed=base.seed + i),
                                                best.params))
                 for i in range(1, seeds)}
    except Interrupted as signal:
        raise stopped(signal) from None
    reruns = {s: runs[s][0] for s in range(base.seed, base.seed + seeds)}
    seconds = {s: runs[s][1] for s in reruns}
    path = out / f"tuned-{_slug(base.problem)}-{base.model}.json"
    write_json(path, {"problem": base.problem, "model": base.model, "params": best.params,
                      "trial": best.number, "trial_rel_l2": best.value,
                      "trials": complete(), "seeds": {str(k): v for k, v in reruns.items()},
                      "seconds": {str(k): v for k, v in seconds.items()},
                      "settings": settings})
    return TuneResult(base.model, dict(best.params), float(best.value), complete(), reruns,
                      path, seconds)


def _slug(problem: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in Path(problem).name)


def tuned_settings(folder: Path, problem: str, model: str) -> dict[str, Any]:
    """The best settings ``gmnm-pde tune`` found for ``model`` on ``problem`` in ``folder``
    (model options, and ``lr`` when it was searched)."""
    import json

    path = Path(folder) / f"tuned-{_slug(problem)}-{model}.json"
    if not path.is_file():
        raise GMNMError(f"no tuned settings for model '{model}' on '{problem}' in {folder} "
                        f"(expected {path.name}); run: gmnm-pde tune {problem} --model {model} "
                        f"--out {folder}")
    return dict(json.loads(path.read_text())["params"])
