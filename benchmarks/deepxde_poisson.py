"""Error reached against wall-clock time on ``poisson``: gmnm-pde's default GMNM next to
DeepXDE's PINN with its usual recipe, in one script and one process each.

    pip install ".[peers]"        # DeepXDE, run with its PyTorch backend
    python benchmarks/deepxde_poisson.py [--adam 1000] [--lbfgs 1000] [--threads T]
                                         [--out results/benchmarks]

DeepXDE: FNN 3 × 50 tanh (Glorot normal), 2000 domain + 400 boundary points, Adam
(lr 1e-3) then L-BFGS, float32 (its default; ``--dde-float64`` for float64). gmnm-pde:
``gmnm-pde solve poisson`` with its defaults (GMNM, least squares + variable projection,
float64, 2000 + 400 Sobol' points), and optionally (``--ours-mlp``) our own MLP with the
same Adam → L-BFGS recipe. Errors are relative L2 on the same 141 × 141 grid for all, and
time is training time with the error evaluations left out. Start-up is not counted for
either side (`benchmarks/solve_defaults.py` measures the CLI's wall time, start-up
included). Writes ``deepxde_poisson.md``, ``.csv`` and ``.png`` under ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from common import header

from pinn_gmnm import Evaluator, get_problem
from pinn_gmnm.config import RunConfig
from pinn_gmnm.run import run


def ours(config: RunConfig) -> tuple[list[tuple[float, float]], float, str]:
    """(curve of (training seconds, relative L2), final error, method) for one of our runs."""
    result = run(config, out=None)
    curve = [(float(r["time"]), float(r["rel_l2"])) for r in result.solution.history
             if not math.isnan(float(r["rel_l2"]))]
    return curve, result.solution.metrics["rel_l2"], result.method


def deepxde(adam: int, lbfgs: int, seed: int, float64: bool, every: int
            ) -> tuple[list[tuple[float, float]], float]:
    """DeepXDE's PINN on the same problem; its error every ``every`` iterations."""
    os.environ.setdefault("DDE_BACKEND", "pytorch")
    import deepxde as dde  # noqa: PLC0415  (optional peer, imported only here)

    if float64:
        dde.config.set_default_float("float64")
    dde.config.set_random_seed(seed)
    evaluator = Evaluator.for_problem(get_problem("poisson"))
    points = evaluator.points.numpy()
    exact = evaluator.exact.numpy()[:, 0]

    def pde(x, u):
        f = 2 * math.pi**2 * torch.sin(math.pi * x[:, 0:1]) * torch.sin(math.pi * x[:, 1:2])
        return -dde.grad.hessian(u, x, i=0, j=0) - dde.grad.hessian(u, x, i=1, j=1) - f

    geom = dde.geometry.Rectangle([-1, -1], [1, 1])
    bc = dde.icbc.DirichletBC(geom, lambda x: 0, lambda x, on_boundary: on_boundary)
    data = dde.data.PDE(geom, pde, bc, num_domain=2000, num_boundary=400)
    net = dde.nn.FNN([2] + [50] * 3 + [1], "tanh", "Glorot normal")
    model = dde.Model(data, net)

    curve: list[tuple[float, float]] = []
    clock = {"start": 0.0, "paused": 0.0}

    class Log(dde.callbacks.Callback):
        def __init__(self, period: int) -> None:
            super().__init__()
            self.period, self.count = period, 0

        def on_epoch_end(self) -> None:
            self.count += 1
            if self.count % self.period == 0:
                record()

    def record() -> None:
        t0 = time.perf_counter()
        err = np.linalg.norm(model.predict(points)[:, 0] - exact) / np.linalg.norm(exact)
        elapsed = t0 - clock["start"] - clock["paused"]
        clock["paused"] += time.perf_counter() - t0
        curve.append((elapsed, float(err)))

    model.compile("adam", lr=1e-3)
    clock["start"] = time.perf_counter()
    model.train(iterations=adam, callbacks=[Log(every)], display_every=max(adam, 1), verbose=0)
    if lbfgs:
        dde.optimizers.set_LBFGS_options(maxiter=lbfgs)
        opts = dde.optimizers.config.LBFGS_options  # report every `every` iterations
        opts["iter_per_step"] = min(every, lbfgs)
        opts["fun_per_step"] = opts["maxfun"] * opts["iter_per_step"] // opts["maxiter"]
        model.compile("L-BFGS")
        model.train(callbacks=[Log(1)], display_every=max(lbfgs, 1), verbose=0)
    record()
    return curve, curve[-1][1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adam", type=int, default=1000, help="Adam iterations (both PINNs)")
    ap.add_argument("--lbfgs", type=int, default=1000, help="L-BFGS iterations (both PINNs)")
    ap.add_argument("--every", type=int, default=50, help="iterations between error points")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--dde-float64", action="store_true")
    ap.add_argument("--ours-mlp", action="store_true", help="also our MLP with the same recipe")
    ap.add_argument("--out", type=Path, default=Path("results/benchmarks"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    runs: dict[str, tuple[list[tuple[float, float]], float]] = {}
    curve, final, method = ours(RunConfig(seed=args.seed))
    runs[f"gmnm-pde GMNM ({method}, float64)"] = (curve, final)
    if args.ours_mlp:
        cfg = RunConfig(model="mlp", method="adam-lbfgs", adam_steps=args.adam,
                        lbfgs_steps=args.lbfgs, lr=1e-3, dtype="float32", seed=args.seed,
                        eval_every=args.every)
        curve, final, method = ours(cfg)
        runs["gmnm-pde MLP 3×50 (adam-lbfgs, float32)"] = (curve, final)
    dtype = "float64" if args.dde_float64 else "float32"
    runs[f"DeepXDE FNN 3×50 (adam-lbfgs, {dtype})"] = deepxde(
        args.adam, args.lbfgs, args.seed, args.dde_float64, args.every)
    report(runs, args)


def report(runs: dict, args) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    head = header(args.threads, f"Adam {args.adam} + L-BFGS {args.lbfgs} for the PINNs",
                  f"seed {args.seed}")
    lines = ["# poisson: error against training time, gmnm-pde vs DeepXDE", "", head, "",
             "| run | relative L2 (final) | training s | first time ≤ 1e-2 | first time ≤ 1e-4 |",
             "| --- | --- | --- | --- | --- |"]

    def first(curve, level):
        t = next((t for t, e in curve if e <= level), None)
        return "never" if t is None else f"{t:.2f} s"

    with open(args.out / "deepxde_poisson.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run", "seconds", "rel_l2"])
        for name, (curve, final) in runs.items():
            w.writerows([name, f"{t:.4f}", f"{e:.4e}"] for t, e in curve)
            lines.append(f"| {name} | {final:.2e} | {curve[-1][0]:.1f} | {first(curve, 1e-2)} | "
                         f"{first(curve, 1e-4)} |")
    (args.out / "deepxde_poisson.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (curve, _) in runs.items():
        ax.loglog([t for t, _ in curve], [e for _, e in curve], "o-", ms=3, label=name)
    ax.set(xlabel="training time (s)", ylabel="relative L2 error", title="poisson")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.text(0.01, 0.01, head, fontsize=5)
    fig.tight_layout()
    fig.savefig(args.out / "deepxde_poisson.png", dpi=120)


if __name__ == "__main__":
    main()
