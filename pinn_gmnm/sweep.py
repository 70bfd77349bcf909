"""Comparison sweeps as independent commands: any scheduler (a Slurm array, Ray, Dask, a
shell loop on several hosts) runs some (model, seed) runs of one comparison each, all
writing into one comparison directory, and :func:`collect` reports whatever is finished.

The comparison directory holds:

- ``plan.json`` — the comparison's settings and matched size, written once by the first
  command (an exclusive hard link, so two hosts starting together cannot both write it);
  every later command checks that its own settings agree and refuses otherwise.
- ``runs/MODEL-seedS/`` — one run each, written only by the command that ran it. Its
  ``record.json`` (the table row) and ``slice.npy`` (the prediction on the plotting slice)
  are written last, atomically: a run without ``record.json`` is not finished.

A plain ``compare`` writes the same files, so any comparison directory can be collected.
"""

from __future__ import annotations

import csv
import json
import math
import os
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import atomic_write, write_json
from .comparison import Comparison, ComparisonResult, RunRecord
from .config import RunConfig
from .errors import GMNMError

PLAN = "plan.json"
RECORD = "record.json"
SLICE = "slice.npy"
MISSING = "missing"
"""The status of a planned run with no finished record (not run yet, still running, or lost)."""


def run_dir(directory: Path, model: str, seed: int) -> Path:
    return directory / "runs" / f"{model}-seed{seed}"


def plan_data(comparison: Comparison, target: int) -> dict[str, Any]:
    """What every command writing into one comparison directory must agree on."""
    return {"version": 1, "models": list(comparison.models), "seeds": comparison.seeds,
            "params": comparison.params, "target_parameters": target,
            "settings": comparison.base.to_dict(),
            **({"options": comparison.options} if comparison.options else {})}


def claim_plan(directory: Path, comparison: Comparison, target: int) -> None:
    """Write ``plan.json`` unless it exists; if it does, refuse different settings."""
    mine = json.loads(json.dumps(plan_data(comparison, target)))  # as it reads back
    path = directory / PLAN
    directory.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = directory / f".{PLAN}.{secrets.token_hex(8)}.tmp"  # unique across hosts
        atomic_write(tmp, lambda f: json.dump(mine, f, indent=2))
        try:
            os.link(tmp, path)  # fails if another command got there first
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    theirs = read_plan(directory)
    if theirs != mine:
        raise GMNMError(f"{directory} holds a comparison with other settings ({_differences(theirs, mine)}); "
                        "give the same settings, or another directory")


def _differences(theirs: dict[str, Any], mine: dict[str, Any]) -> str:
    flat_t = {**{k: v for k, v in theirs.items() if k != "settings"}, **theirs.get("settings", {})}
    flat_m = {**{k: v for k, v in mine.items() if k != "settings"}, **mine.get("settings", {})}
    keys = [k for k in dict.fromkeys([*flat_t, *flat_m]) if flat_t.get(k) != flat_m.get(k)]
    return ", ".join(f"{k}: {flat_t.get(k)!r} there, {flat_m.get(k)!r} here" for k in keys)


def read_plan(directory: Path) -> dict[str, Any]:
    path = Path(directory) / PLAN
    if not path.is_file():
        raise GMNMError(f"{directory} holds no {PLAN}; is it a comparison directory (made by "
                        "`gmnm-pde compare ... --into DIR`)?")
    return json.loads(path.read_text())


def parse_only(items: Iterable[str]) -> list[tuple[str, int]]:
    """``["gmnm:0,pinn:1", "kan:2"]`` → [("gmnm", 0), ("pinn", 1), ("kan", 2)]."""
    pairs = []
    for item in (p.strip() for text in items for p in text.split(",")):
        if not item:
            continue
        model, sep, seed = item.rpartition(":")
        if not sep or not model or not seed.lstrip("-").isdigit():
            raise GMNMError(f"--only expects MODEL:SEED, e.g. gmnm:0, got '{item}'")
        pairs.append((model, int(seed)))
    return pairs


def select(configs: Sequence[RunConfig], only: Sequence[tuple[str, int]]) -> list[RunConfig]:
    """The planned configs named by ``only`` (in plan order); an unknown pair is an error
    that lists the valid ones."""
    valid = [(c.model, c.seed) for c in configs]
    for pair in only:
        if pair not in valid:
            raise GMNMError(f"--only {pair[0]}:{pair[1]} is not a run of this comparison; valid "
                            "MODEL:SEED pairs: " + ", ".join(f"{m}:{s}" for m, s in valid))
    return [c for c in configs if (c.model, c.seed) in only]


def write_record(record: RunRecord, prediction: np.ndarray | None) -> None:
    """A finished run's table row (and its slice prediction), written last."""
    assert record.directory is not None
    if prediction is not None:
        atomic_write(record.directory / SLICE, lambda f: np.save(f, prediction), "wb")
    row = record.summary()
    row["directory"] = record.directory.name
    write_json(record.directory / RECORD, row)


def _read_record(directory: Path, model: str, seed: int) -> tuple[RunRecord, np.ndarray | None]:
    path = run_dir(directory, model, seed)
    if not (path / RECORD).is_file():
        return missing_record(model, seed), None
    row = json.loads((path / RECORD).read_text())
    metrics = {k: math.nan if row.get(k) is None else float(row[k])
               for k in ("rel_l2", "max_abs", "residual_rms", "train_time", "steps", "wall_time",
                         "time_per_step")}
    metrics["steps"] = int(metrics["steps"]) if math.isfinite(metrics["steps"]) else 0
    record = RunRecord(model, seed, row["status"], row["method"], row["training"],
                       int(row["parameters"]), metrics, _read_history(path / "history.csv"), path)
    prediction = np.load(path / SLICE) if (path / SLICE).is_file() else None
    return record, prediction


def _read_history(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with path.open() as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def missing_record(model: str, seed: int) -> RunRecord:
    nan = math.nan
    metrics = {"rel_l2": nan, "max_abs": nan, "residual_rms": nan, "train_time": nan,
               "steps": 0, "wall_time": nan, "time_per_step": nan}
    return RunRecord(model, seed, MISSING, "", "", 0, metrics, [], None)


def collect(directory: Path) -> ComparisonResult:
    """The comparison in ``directory`` from its finished runs; planned runs without a
    record appear with status 'missing'. Writes summary.md, summary.json and the plots."""
    from .compare import plan
    from .compare_report import write_report

    directory = Path(directory)
    saved = read_plan(directory)
    comparison = Comparison(RunConfig.from_dict(saved["settings"]), tuple(saved["models"]),
                            saved["seeds"], saved["params"], options=saved.get("options", {}))
    problem, target, configs = plan(comparison)
    result = ComparisonResult(comparison, problem, target, [], directory)
    for cfg in configs:
        record, prediction = _read_record(directory, cfg.model, cfg.seed)
        if prediction is not None and record.model not in result.fields:
            result.fields[record.model] = prediction
        result.records.append(record)
    write_report(result)
    return result
