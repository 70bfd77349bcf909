"""Wall-clock time (start-up included) and accuracy of `gmnm-pde solve PROBLEM` with its
defaults, for GMNM and for the MLP ablation, each run as a fresh process.

    python benchmarks/solve_defaults.py [PROBLEM] [--repeats N]

Prints one line per model: median wall seconds over the repeats and the relative L2
error from the run's metrics.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_run(problem: str, model: str, out: Path) -> tuple[float, float]:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pinn_gmnm.cli.main", "solve", problem, "--model", model,
                    "--out", str(out), "--quiet"], check=True, stdout=subprocess.DEVNULL,
                   cwd=out)  # not the checkout: its source folder would shadow the install
    wall = time.perf_counter() - start
    newest = max(out.iterdir(), key=lambda p: p.stat().st_mtime)
    return wall, json.loads((newest / "metrics.json").read_text())["rel_l2"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("problem", nargs="?", default="poisson")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", default="gmnm,mlp")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            runs = [one_run(args.problem, model, Path(tmp)) for _ in range(args.repeats)]
            walls = [w for w, _ in runs]
            print(f"{args.problem:<12} {model:<6} wall median {statistics.median(walls):6.2f} s "
                  f"(min {min(walls):.2f}, max {max(walls):.2f})  relative L2 {runs[-1][1]:.3e}")


if __name__ == "__main__":
    main()
