"""Problems nobody tuned the defaults for, solved with the defaults (``untuned_problems.py``).

    python benchmarks/untuned.py [--budget 60] [--only layer_1d,peak] [--models gmnm,pinn]
                                 [--out results/untuned.md]

The catalogue (``catalogue.py``) is what every change is judged by; these problems are
the check that its defaults carry over: written after the defaults, each with an exact
solution, run as a user would (``gmnm-pde solve benchmarks/untuned_problems.py:NAME``,
every option at its default) in a fresh process each. The markdown table is rewritten
after every row (with ``--only``, merged into the existing table: the other rows and
the notes are kept; the dated account of reruns goes in
``results/untuned-history.md``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from catalogue import Row, _num, run_one
from common import header, merge_tables
from untuned_problems import PROBLEMS

HERE = Path(__file__).resolve().parent


def table(rows: list[Row], title: str) -> str:
    lines = ["# Untuned problems", "", title, "",
             "Each problem of `benchmarks/untuned_problems.py` (its docstring states it) solved with "
             "`gmnm-pde solve benchmarks/untuned_problems.py:NAME --model MODEL --budget B`, every "
             "other option at its default. Regenerate with `python benchmarks/untuned.py`.", "",
             "| problem | model | rel. L2 | max error | train s | wall s | method | stages | status |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r.problem} | {r.model} | {_num(r.rel_l2)} | {_num(r.max_abs)} | "
                     f"{r.train_time:.1f} | {r.wall_time:.1f} | {r.method or '—'} | "
                     f"{r.stages or '—'} | {r.status} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--only", default="", help="comma-separated problem names")
    parser.add_argument("--models", default="gmnm", help="comma-separated models")
    parser.add_argument("--out", type=Path, default=HERE.parent / "results" / "untuned.md")
    args = parser.parse_args()
    only = [n for n in args.only.split(",") if n]
    unknown = [n for n in only if n not in PROBLEMS]
    if unknown:
        raise SystemExit(f"unknown problem {unknown[0]!r}; known: {', '.join(PROBLEMS)}")
    names = only or PROBLEMS
    models = [m for m in args.models.split(",") if m]
    title = header(torch.get_num_threads(), f"budget {args.budget:g} s per run",
                   f"models {', '.join(models)}")
    rows: list[Row] = []
    kept = args.out.read_text() if only and args.out.is_file() else None  # (merged into)
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            for model in models:
                row = run_one(f"{HERE / 'untuned_problems.py'}:{name}", "untuned", model,
                              args.budget, 10 * args.budget + 300, Path(tmp), label=name)
                rows.append(row)
                print(f"{name:16s} {model:5s} rel L2 {_num(row.rel_l2):>9s}  "
                      f"{row.wall_time:6.1f} s  {row.status}", flush=True)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                text = table(rows, title)
                args.out.write_text(text if kept is None else merge_tables(kept, text))


if __name__ == "__main__":
    main()
