"""How well a uniform refinement's solve time is predicted before it runs.

    python benchmarks/refine_time.py [--budget 60] [--only poisson-3d,heat-2d]

The default GMNM solver refines a PDE's collocation points and Gaussians uniformly only
when the finer solve is predicted to fit in the time left (:meth:`Grow.refine_seconds`):
an overestimate skips refinements that would have fitted, an underestimate overruns a
slab's share of the budget. Each problem is solved with defaults (``gmnm-pde solve NAME
--budget B``, one fresh process each, one after another) and every refinement its run
tried is printed: the predicted seconds against the seconds the finer solve took (the
least squares, the features and the held-out check: ``solve_s + other_s`` of its
``refined`` event), or ``skipped`` with the prediction and the time that was left.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

PROBLEMS = ("poisson-3d", "poisson-5d", "poisson-holes", "poisson-lshape", "heat-2d")


def refinements(problem: str, budget: float) -> tuple[float, list[dict]]:
    """The run's relative L2 error and its refinement events."""
    with tempfile.TemporaryDirectory() as out:
        # (run outside the checkout, as catalogue.py does: its source folders would shadow
        # the installed package)
        subprocess.run([sys.executable, "-m", "pinn_gmnm.cli.main", "solve", problem,
                        "--budget", str(budget), "--out", out, "--quiet"],
                       check=True, stdout=subprocess.DEVNULL, cwd=out)
        metrics = json.loads(next(Path(out).glob("*/metrics.json")).read_text())
    events = [e for e in metrics["events"] if e["event"] in ("refined", "refine skipped")]
    return metrics["rel_l2"], events


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float, default=60.0)
    ap.add_argument("--only", default=",".join(PROBLEMS), help="comma-separated problems")
    args = ap.parse_args()
    ratios = []
    for problem in args.only.split(","):
        rel_l2, events = refinements(problem, args.budget)
        print(f"{problem}: relative L2 {rel_l2:.2e}", flush=True)
        for e in events:
            if e["event"] == "refined":
                actual = e["solve_s"] + e["other_s"]
                ratios.append(e["predicted_s"] / actual)
                print(f"  step {e['step']:3d}  predicted {e['predicted_s']:6.1f} s  "
                      f"took {actual:6.1f} s  ({ratios[-1]:.2f}×)", flush=True)
            else:
                print(f"  step {e['step']:3d}  predicted {e['predicted_s']:6.1f} s  skipped "
                      f"({e['left_s']:.1f} s left)", flush=True)
    if ratios:
        print(f"predicted / actual: {min(ratios):.2f} to {max(ratios):.2f} "
              f"over {len(ratios)} refined solves")


if __name__ == "__main__":
    main()
