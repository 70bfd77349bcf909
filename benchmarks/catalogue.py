"""The catalogue dashboard: every catalogue PDE and fitting target, solved with defaults.

    python benchmarks/catalogue.py [--budget 60] [--only poisson,front] [--models gmnm,pinn,fem]
                                   [--out results/catalogue.md]

Each (problem, model) is one `gmnm-pde solve NAME --model MODEL --budget SECONDS` run in a
fresh process (start-up and reference solutions included in the wall time, not in the
training time), with every other option at its default. The table gives the relative L2
and max error, training and wall time, method, parameter count and the stages that ran,
one row per run (and, for systems, the relative L2 of each output and declared group of
outputs); a run that fails or times out keeps its row, saying so. The markdown is
written to ``--out`` (rewritten after every row, so an interrupted sweep keeps what it did;
with ``--only``, the rows rerun replace theirs in the existing file and the others and
its notes are kept; the dated account of reruns, before → after, goes in
``results/catalogue-history.md``) and is the regression table every change is judged by (see
the design notes).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import header, merge_tables

from pinn_gmnm.compare import not_applicable
from pinn_gmnm.comparison import NOT_APPLICABLE
from pinn_gmnm.config import RunConfig
from pinn_gmnm.fitting import FIT_GROUP
from pinn_gmnm.problem import PROBLEMS

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Row:
    problem: str
    group: str
    model: str
    status: str = "ok"
    rel_l2: float = float("nan")
    max_abs: float = float("nan")
    train_time: float = float("nan")
    wall_time: float = float("nan")
    method: str = ""
    parameters: int | None = None
    stages: str = ""
    fields: str = ""


def catalogue(only: list[str] | None) -> list[tuple[str, str]]:
    """(name, group) of every registered problem and fitting target, PDEs first."""
    entries = [(e.name, e.group) for e in PROBLEMS]
    if only:
        known = {name for name, _ in entries}
        for name in only:
            if name not in known:
                raise SystemExit(f"unknown problem '{name}'; known: {', '.join(sorted(known))}")
        entries = [(n, g) for n, g in entries if n in only]
    return sorted(entries, key=lambda e: (e[1] == FIT_GROUP, e[1], e[0]))


def stages_run(run_dir: Path) -> str:
    """The stages that recorded steps, in order, with their step counts: ``lstsq 1 → varpro 3``."""
    path = run_dir / "history.csv"
    if not path.is_file():
        return ""
    order: list[list] = []
    with path.open() as f:
        for row in csv.DictReader(f):
            if order and order[-1][0] == row["stage"]:
                order[-1][1] += 1
            else:
                order.append([row["stage"], 1])
    return " → ".join(f"{stage} {n}" for stage, n in order)


def inapplicable(name: str, model: str) -> str | None:
    """Why ``model``'s fixed method cannot solve ``name`` at all (``fem`` on a nonlinear
    problem), from the method's declared conditions; None when the run can go ahead."""
    blocked = not_applicable(RunConfig(problem=name, model=model))
    return None if blocked is None else blocked[1]


def run_one(name: str, group: str, model: str, budget: float, timeout: float, work: Path,
            label: str | None = None) -> Row:
    """``gmnm-pde solve NAME --model MODEL --budget BUDGET`` in a fresh process under
    ``work`` (in a folder named after ``label``, default the name), as a table row."""
    row = Row(label or name, group, model)
    why = inapplicable(name, model)
    if why is not None:
        row.status = f"{NOT_APPLICABLE}: {why}"
        return row
    out = work / f"{label or name}-{model}"
    cmd = [sys.executable, "-m", "pinn_gmnm.cli.main", "solve", name, "--model", model,
           "--budget", str(budget), "--out", str(out), "--quiet"]
    start = time.perf_counter()
    try:  # run outside the checkout: its source folders would shadow the installed package
        done = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        row.status = f"timed out after {timeout:.0f} s"
        row.wall_time = time.perf_counter() - start
        return row
    row.wall_time = time.perf_counter() - start
    dirs = sorted(out.glob("*/metrics.json"))
    if not dirs:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        row.status = f"failed (exit {done.returncode}): {last[:160]}"
        return row
    metrics = json.loads(dirs[-1].read_text())
    row.rel_l2 = float(metrics.get("rel_l2", float("nan")))
    row.max_abs = float(metrics.get("max_abs", float("nan")))
    row.train_time = float(metrics.get("train_time", float("nan")))
    row.method = str(metrics.get("method", ""))
    row.parameters = metrics.get("parameters")
    row.stages = stages_run(dirs[-1].parent)
    row.fields = ", ".join(f"{k[len('rel_l2_'):]} {_num(float(v))}" for k, v in metrics.items()
                           if k.startswith("rel_l2_") and v is not None)
    status = str(metrics.get("status", "completed"))
    if done.returncode != 0 or status not in ("completed", "out-of-budget"):
        row.status = f"{status} (exit {done.returncode})"
    elif status == "out-of-budget":
        row.status = "ok (budget spent)"
    return row


def _num(v: float) -> str:
    return "—" if v != v else f"{v:.2e}"


def markdown(rows: list[Row], title: str) -> str:
    lines = [
        "# Catalogue dashboard", "", title, "",
        "Every catalogue problem with its defaults (`gmnm-pde solve NAME --model MODEL --budget B`); "
        "relative L2 and max error on the problem's evaluation set, training time and wall time "
        "(start-up and reference solutions included), the method, parameters and the stages that "
        "recorded steps. For systems, *by field* gives the relative L2 of each output and of each "
        "group of outputs the problem declares as one vector field (a flow's velocity (u, v)). "
        "The `fem` rows are the classical baseline (finite elements at their "
        "default order and size; its parameters are degrees of freedom) where its method applies. "
        "Regenerate with `python benchmarks/catalogue.py`.", "",
        "| problem | kind | model | rel. L2 | by field | max error | train s | wall s | method "
        "| parameters | stages | status |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r.problem} | {r.group} | {r.model} | {_num(r.rel_l2)} | {r.fields or '—'} | "
            f"{_num(r.max_abs)} | "
            f"{'—' if r.train_time != r.train_time else f'{r.train_time:.1f}'} | "
            f"{'—' if r.wall_time != r.wall_time else f'{r.wall_time:.1f}'} | {r.method or '—'} | "
            f"{r.parameters if r.parameters is not None else '—'} | {r.stages or '—'} | {r.status} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=60.0, help="training seconds per run (default 60)")
    ap.add_argument("--only", default="", help="comma-separated problem names (default: all)")
    ap.add_argument("--models", default="gmnm,pinn,fem",
                    help="comma-separated models (default gmnm,pinn,fem; fem rows say where it "
                         "does not apply)")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "catalogue.md")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds before a run is stopped (default 3 × budget + 300)")
    args = ap.parse_args()
    if not args.budget > 0:
        raise SystemExit(f"--budget must be positive, got {args.budget}")
    models = [m for m in args.models.split(",") if m]
    entries = catalogue([n for n in args.only.split(",") if n] or None)
    timeout = args.timeout or 3 * args.budget + 300
    threads = int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))
    title = header(threads, f"budget {args.budget:g} s per run", f"models {', '.join(models)}")
    rows: list[Row] = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    kept = args.out.read_text() if args.only and args.out.is_file() else None  # (merged into)
    with tempfile.TemporaryDirectory() as tmp:
        for name, group in entries:
            for model in models:
                row = run_one(name, group, model, args.budget, timeout, Path(tmp))
                rows.append(row)
                print(f"{name:<16} {model:<5} rel L2 {_num(row.rel_l2):>9}  "
                      f"{row.wall_time:6.1f} s  {row.status}", flush=True)
                partial = args.out.with_suffix(".md.tmp")
                text = markdown(rows, title)
                partial.write_text(text if kept is None else merge_tables(kept, text))
                partial.replace(args.out)  # atomically: a sweep stopped midway keeps its rows


if __name__ == "__main__":
    main()
