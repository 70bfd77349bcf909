"""Where in time the error of a time-dependent run sits: its relative L2 error overall and,
for each time level of the evaluation set, the RMS, relative and largest error there.

    python benchmarks/error_by_time.py RUN_DIR [RUN_DIR ...] [--reference FILE] [--plot PNG]

A run directory is what `gmnm-pde solve ... --out DIR` wrote (or DIR itself when it holds
one run). The points are the problem's evaluation set (its reference's grid, or its exact
solution at the evaluation points), or those of ``--reference`` (the formats `--reference`
reads). ``--plot`` draws each run's relative L2 per level against time (log scale) into
one PNG. Levels are the distinct values of the last coordinate, time, so a reference on a
grid in time gives one line per level; scattered points give one line per point and are
better binned before.

A march's error is not spread evenly: on `heat-2d` at 60 s (2-core CPU, alone) the overall
8.4e-5 is the t = 0 level's 1.3e-4 RMS, then 2.4e-5 at t = 0.05 and 1e-6 to 5e-6 later
(the initial state's layer at the edges, see `pinn_gmnm.training.march.START`); once the
first slab could take a quarter of the time (`FIRST_SHARE` there), 4.0e-5 overall, the
t = 0 level's 5.8e-5 RMS and t = 0.05's 2.4e-5. This script is how that was measured.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import header  # noqa: E402


def run_directory(path: Path) -> Path:
    """``path`` itself when it holds a run (its ``metrics.json``), else its only run."""
    if (path / "metrics.json").is_file():
        return path
    runs = sorted(p for p in path.iterdir() if (p / "metrics.json").is_file()) if path.is_dir() else []
    if len(runs) != 1:
        raise SystemExit(f"error: {path} is not a run directory and does not hold exactly one "
                         f"(found {len(runs)})")
    return runs[0]


def evaluation_set(solution, reference: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """The points (n, d) and reference values (n, outputs) to measure against."""
    from pinn_gmnm.evaluation import Evaluator
    from pinn_gmnm.references.base import load_reference

    problem = solution.problem
    if reference is not None:
        x, v = load_reference(reference, problem.dim, problem.n_outputs,
                              names=problem.outputs).known()
    else:
        ev = Evaluator.for_problem(problem)
        if ev.exact is None:
            raise SystemExit(f"error: problem '{problem.name}' has no exact solution or "
                             "reference: pass --reference FILE")
        x, v = ev.points, ev.exact
    x, v = np.asarray(x, dtype=np.float64), np.asarray(v, dtype=np.float64)
    return x, v.reshape(len(x), -1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run directories")
    ap.add_argument("--reference", type=Path, default=None,
                    help="reference points and values (default: the problem's own)")
    ap.add_argument("--plot", type=Path, default=None,
                    help="PNG of the relative L2 per level against time, one line per run")
    args = ap.parse_args()

    from pinn_gmnm import load_solution

    print(header(torch.get_num_threads(), "error by time level"))
    curves: list[tuple[str, np.ndarray, np.ndarray]] = []
    for path in args.runs:
        run = run_directory(path)
        solution = load_solution(run)
        if not solution.problem.geometry.time_dependent:
            raise SystemExit(f"error: {run} solved '{solution.problem.name}', which does not "
                             "depend on time")
        x, v = evaluation_set(solution, args.reference)
        u = np.asarray(solution(x), dtype=np.float64).reshape(v.shape)
        err = u - v
        total = np.sqrt((err ** 2).sum() / (v ** 2).sum())
        print(f"\n{run}: {solution.problem.name}, relative L2 {total:.3e} on {len(x)} points\n")
        print("| t | points | RMS error | relative L2 | max error |")
        print("| --- | --- | --- | --- | --- |")
        t = x[:, -1]
        levels, rels = np.unique(t), []
        for level in levels:
            m = t == level
            e, r = err[m], v[m]
            norm = np.sqrt((r ** 2).sum())
            rel = np.sqrt((e ** 2).sum()) / norm if norm > 0 else float("nan")
            rels.append(rel)
            print(f"| {level:.4g} | {int(m.sum())} | {np.sqrt((e ** 2).mean()):.2e} | "
                  f"{rel:.2e} | {np.abs(e).max():.2e} |")
        curves.append((f"{run.name} ({total:.1e})", levels, np.array(rels)))
    if args.plot is not None:
        plot(curves, args.plot)
        print(f"\nplot: {args.plot}")


def plot(curves: list[tuple[str, np.ndarray, np.ndarray]], path: Path) -> None:
    """Each run's relative L2 per time level, log scale, into the PNG ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for label, t, rel in curves:
        ax.semilogy(t, rel, marker="o", markersize=3, label=label)
    ax.set_xlabel("t")
    ax.set_ylabel("relative L2 at that time")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
