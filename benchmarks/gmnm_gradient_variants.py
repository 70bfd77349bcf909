"""GMNM's gradient-training variants (issue 16): plain or scaled projections, with or
without per-group Adam learning rates, under Adam 500 (1e-2 → 1e-4) + L-BFGS 200 with the
default model and collocation. One thread per run (a shared 2-core machine).

    python benchmarks/gmnm_gradient_variants.py plain|scaled|groups|scaled-groups [PROBLEM]

Results: results/benchmarks/gmnm-gradient-training.md.
"""

import sys
import time

import torch

from pinn_gmnm import GMNM, LBFGS, Adam, get_problem, solve

torch.set_num_threads(1)
variant = sys.argv[1]
problem = get_problem(sys.argv[2] if len(sys.argv) > 2 else "poisson")
torch.manual_seed(0)
param = "scaled" if "scaled" in variant else "plain"
model = GMNM(problem.dim, bounds=problem.geometry.bbox, parametrisation=param)
groups = None
if "groups" in variant:
    groups = {"means": 0.1, "weights": 3.0}
    groups.update({"log_scale": 0.3, "directions": 0.3} if param == "scaled" else {"proj": 0.3})
t = time.time()
s = solve(problem, model, stages=[Adam(steps=500, lr=1e-2, final_lr=1e-4, group_lr=groups),
                                  LBFGS(steps=200)], seed=0, eval_every=100)
print(variant, problem.name, f"rel_l2={s.metrics['rel_l2']:.3e}", f"{time.time() - t:.0f}s")
