"""Regenerates results/fem-comparison: GMNM, the PINN baseline and finite elements on the
elliptic problems the FEM path solves.

    python results/fem-comparison/make.py            # budget 30 s per network run
    python results/fem-comparison/make.py --quick    # tiny settings into /tmp, to check it runs
    python results/fem-comparison/make.py heat-2d    # only these problems (other rows kept)

1. ``gmnm-pde compare P --models gmnm,pinn,fem`` (one seed, equal wall-clock budget for the
   networks; fem P2 at h = 0.05) for each problem, into ``P/``.
2. A sweep of sizes, each a plain run: fem P1 and P2 at h = 0.2 … 0.025, GMNM at
   100 … 1600 Gaussians (one least-squares solve: the default adds growth); ``sweep.csv``.
3. ``error_vs_time.png``: relative L2 error against training time (for fem: meshing,
   assembly and solve) and against parameters (fem: degrees of freedom).
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROBLEMS = ("poisson", "poisson-holes", "poisson-lshape", "helmholtz", "heat-2d")
FEM_SIZES = (0.2, 0.1, 0.05, 0.025)
GMNM_COMPONENTS = (100, 225, 400, 900, 1600)


def compare(problem: str, out: Path, budget: float) -> None:
    target = out / problem
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run(["gmnm-pde", "compare", problem, "--models", "gmnm,pinn,fem", "--seeds", "1",
                    "--budget", str(budget), "--fem-order", "2", "--fem-size", "0.05",
                    "--into", str(target), "-q"], check=True)
    for run in (target / "runs").iterdir():  # keep what states the run, not the weights
        for f in run.iterdir():
            if f.name not in ("config.json", "metrics.json"):
                f.unlink()


def sweep(problems: tuple[str, ...], quick: bool) -> list[dict]:
    from pinn_gmnm.config import RunConfig
    from pinn_gmnm.run import run

    rows = []
    settings = [("fem", {"fem_order": o, "fem_size": h}) for o in (1, 2)
                for h in (FEM_SIZES[:2] if quick else FEM_SIZES)]
    settings += [("gmnm", {"components": c}) for c in (GMNM_COMPONENTS[:2] if quick else GMNM_COMPONENTS)]
    for problem in problems:
        for model, options in settings:
            # GMNM by one least-squares solve (not the default growth): error against size
            method = {"method": "lstsq"} if model == "gmnm" else {}
            result = run(RunConfig(problem=problem, model=model, model_options=options,
                                   device="cpu", **method), out=None)
            m = result.solution.metrics
            rows.append({"problem": problem, "model": model,
                         "setting": ", ".join(f"{k}={v}" for k, v in options.items()),
                         "parameters": result.solution.parameters, "rel_l2": m["rel_l2"],
                         "max_abs": m["max_abs"], "train_time": m["train_time"],
                         "wall_time": result.wall_time})
            print(rows[-1], flush=True)
    return rows


def plot(rows: list[dict], pinn: dict[str, dict], path: Path) -> None:
    from pinn_gmnm.plotting import _save, new_figure

    problems = list(dict.fromkeys(r["problem"] for r in rows))
    fig = new_figure(4 * len(problems), 7.5)
    series = [("fem", "fem_order=1", "fem P1", "C1"), ("fem", "fem_order=2", "fem P2", "C2"),
              ("gmnm", "components", "gmnm (lstsq)", "C0")]
    for j, problem in enumerate(problems):
        for i, (xkey, xlabel) in enumerate((("train_time", "training / solve time [s]"),
                                            ("parameters", "parameters (fem: degrees of freedom)"))):
            ax = fig.add_subplot(2, len(problems), i * len(problems) + j + 1)
            for model, prefix, label, color in series:
                pts = sorted((float(r[xkey]), float(r["rel_l2"])) for r in rows
                             if r["problem"] == problem and r["model"] == model
                             and r["setting"].startswith(prefix))
                if pts:
                    ax.plot(*zip(*pts), "o-", color=color, label=label)
            if problem in pinn:
                ax.plot([pinn[problem][xkey]], [pinn[problem]["rel_l2"]], "s", color="C3",
                        label="pinn (budget)")
            ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel="relative L2 error",
                   title=problem)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle("relative L2 error against time and size (one CPU process)")
    _save(fig, path)


def pinn_points(out: Path) -> dict[str, dict]:
    import json

    found = {}
    for problem in PROBLEMS:
        metrics = out / problem / "runs" / "pinn-seed0" / "metrics.json"
        if metrics.is_file():
            m = json.loads(metrics.read_text())
            found[problem] = {"rel_l2": m["rel_l2"], "train_time": m["train_time"],
                              "parameters": m["parameters"]}
    return found


def main() -> None:
    quick = "--quick" in sys.argv
    out = Path("/tmp/fem-comparison-quick") if quick else HERE
    out.mkdir(parents=True, exist_ok=True)
    chosen = tuple(a for a in sys.argv[1:] if not a.startswith("--"))
    problems = PROBLEMS[:1] if quick else chosen or PROBLEMS
    if "--sweep-only" not in sys.argv:
        for problem in problems:
            compare(problem, out, 2 if quick else 30)
    rows = sweep(problems, quick)
    if (out / "sweep.csv").is_file():  # keep the rows of the problems not rerun
        with open(out / "sweep.csv", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["problem"] not in problems] + rows
        rows.sort(key=lambda r: PROBLEMS.index(r["problem"]))
    with open(out / "sweep.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, pinn_points(out), out / "error_vs_time.png")


if __name__ == "__main__":
    main()
