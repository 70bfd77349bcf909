"""Time and peak memory of one training step (loss with a Laplacian + backward) on
``poisson``, against the number of collocation points n and of Gaussians m, for GMNM with
closed-form derivatives, GMNM through nested autograd, the MLP (forward-mode jets, nested
autograd and torch.func) and KAN (the same three); with fitted growth exponents.

    python benchmarks/step_time.py [--quick] [--threads T] [--variants a,b] [--out results/benchmarks]

Each point runs in a fresh process, which reports the median of several steps after a
warm-up and its peak resident memory during the steps (``ru_maxrss`` after the steps minus
before: the extra memory one step needs). Writes ``step_time.md``, ``step_time.csv`` and
``step_time.png`` under ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

VARIANTS = {
    # name: (model, derivatives): True = the model's own engine (closed form, jets),
    # False = nested autograd, "func" = torch.func (vmap of jacfwd over jacrev)
    "gmnm closed form": ("gmnm", True),
    "gmnm autograd": ("gmnm", False),
    "mlp jets": ("mlp", True),
    "mlp autograd": ("mlp", False),
    "mlp torch.func": ("mlp", "func"),
    "kan jets": ("kan", True),
    "kan autograd": ("kan", False),
    "kan torch.func": ("kan", "func"),
}


def child(spec: dict) -> None:
    """Run in the subprocess: build, warm up, time, report JSON on stdout."""
    import resource
    import time

    import torch

    from pinn_gmnm import Collocation, get_problem
    from pinn_gmnm.models import MODELS, build_model
    from pinn_gmnm.derivatives import FuncEngine
    from pinn_gmnm.training import Loss, sample_batch

    torch.set_num_threads(spec["threads"])
    dtype = getattr(torch, spec["dtype"])
    p = get_problem("poisson")
    if spec["model"] not in MODELS:
        print(json.dumps({"skipped": True}))
        return
    torch.manual_seed(0)
    options = {"components": spec["m"]} if spec["model"] == "gmnm" else {}
    model = build_model(spec["model"], 2, 1, bounds=p.geometry.bbox, **options).to(dtype)
    batch = sample_batch(p, Collocation(spec["n"], max(4, spec["n"] // 5)), 0).to(dtype, "cpu")
    if spec["closed_form"] == "func":  # the Field asks the model for its engine: give it this one
        model.derivative_engine = lambda x: FuncEngine(model, x)
    loss = Loss(p, batch, closed_form=bool(spec["closed_form"]))

    def step() -> None:
        for q in model.parameters():
            q.grad = None
        total, _ = loss(model)
        total.backward()

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step()
    times = []
    for _ in range(spec["reps"]):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(json.dumps({"seconds": statistics.median(times), "peak_mb": peak / 1024,
                      "parameters": sum(q.numel() for q in model.parameters())}))


def measure(variant: str, n: int, m: int, args) -> dict | None:
    model, closed_form = VARIANTS[variant]
    spec = {"model": model, "closed_form": closed_form, "n": n, "m": m, "reps": args.reps,
            "threads": args.threads, "dtype": args.dtype}
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                         capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        print(f"  {variant} n={n} m={m} failed: {out.stderr.strip().splitlines()[-1]}")
        return None
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result.get("skipped"):
        return None
    return {"variant": variant, "n": n, "m": m, **result}


def exponent(xs: list[float], ys: list[float]) -> float:
    """Slope of log y against log x (least squares)."""
    if len(xs) < 2:
        return math.nan
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="fewer, smaller sizes")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help="comma-separated subset of: " + ", ".join(VARIANTS))
    ap.add_argument("--out", type=Path, default=Path("results/benchmarks"))
    args = ap.parse_args()
    if args.child:
        child(json.loads(args.child))
        return

    n_grid = [1000, 2000, 10000, 30000] if args.quick else [1000, 2000, 10000, 30000, 100000]
    m_grid = [16, 64, 100, 256] if args.quick else [16, 64, 100, 256, 1024]
    rows: list[dict] = []
    for variant in args.variants.split(","):
        if variant not in VARIANTS:
            raise SystemExit(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
        for n in n_grid:
            if (r := measure(variant, n, 100, args)) is not None:
                rows.append(r)
                print(f"{variant:<18} n={n:<7} m=100  {r['seconds'] * 1e3:9.1f} ms  "
                      f"{r['peak_mb']:8.1f} MB", flush=True)
        if VARIANTS[variant][0] != "gmnm":
            continue
        for m in m_grid:
            if m != 100 and (r := measure(variant, 2000, m, args)) is not None:
                rows.append(r)
                print(f"{variant:<18} n=2000    m={m:<5}{r['seconds'] * 1e3:9.1f} ms  "
                      f"{r['peak_mb']:8.1f} MB", flush=True)
    report(rows, args, n_grid, m_grid)


def report(rows: list[dict], args, n_grid: list[int], m_grid: list[int]) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "step_time.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["variant", "n", "m", "parameters", "seconds", "peak_mb"])
        w.writeheader()
        for r in rows:
            w.writerow({k: r[k] for k in w.fieldnames})
    from common import header

    head = header(args.threads, args.dtype, "--quick" if args.quick else "")
    lines = ["# Time per training step (poisson: Laplacian residual + boundary values, "
             "loss and backward)", "", head, "",
             "Median seconds per step over the repeats; peak = extra resident memory of the "
             "steps (MB). n interior points plus n/5 boundary points; m = 100 Gaussians in the n "
             "sweep, n = 2000 (+ 400) in the m sweep; "
             "the MLP is 3 × 50 tanh, the KAN its default (2 × 15, grid 5, cubic). Exponents: slope of log time against log n (or m).", "",
             "| variant | sweep | sizes | ms per step | peak MB | exponent |",
             "| --- | --- | --- | --- | --- | --- |"]
    for variant in VARIANTS:
        for sweep, key, grid, fixed in (("n", "n", n_grid, ("m", 100)), ("m", "m", m_grid, ("n", 2000))):
            sel = sorted((r for r in rows if r["variant"] == variant and r[fixed[0]] == fixed[1]
                          and r[key] in grid), key=lambda r: r[key])
            if len(sel) < 2:
                continue
            xs = [r[key] for r in sel]
            k = exponent(xs, [r["seconds"] for r in sel])
            ms = ", ".join(f"{r['seconds'] * 1e3:.1f}" for r in sel)
            mb = ", ".join(f"{r['peak_mb']:.0f}" for r in sel)
            sizes = ", ".join(map(str, xs))
            lines.append(f"| {variant} | {sweep} | {sizes} | {ms} | {mb} | {k:.2f} |")
    gm = {v: next((r["seconds"] for r in rows if r["variant"] == v and r["n"] == 2000
                   and r["m"] == 100), None) for v in ("gmnm closed form", "gmnm autograd")}
    if all(gm.values()):
        lines += ["", f"GMNM closed form / nested autograd at n = 2000 + 400, m = 100: "
                      f"**{gm['gmnm closed form'] / gm['gmnm autograd']:.2f}** (target ≤ 0.25)."]
    (args.out / "step_time.md").write_text("\n".join(lines) + "\n")
    plot(rows, args.out / "step_time.png", head)
    print("\n".join(lines))


def plot(rows: list[dict], path: Path, head: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for variant in VARIANTS:
        for ax, key, fixed in ((axes[0], "n", ("m", 100)), (axes[1], "m", ("n", 2000))):
            sel = sorted((r for r in rows if r["variant"] == variant and r[fixed[0]] == fixed[1]),
                         key=lambda r: r[key])
            if len(sel) >= 2:
                ax.loglog([r[key] for r in sel], [r["seconds"] for r in sel], "o-", label=variant)
    axes[0].set(xlabel="interior points n, + n/5 boundary (m = 100)", ylabel="seconds per step")
    axes[1].set(xlabel="Gaussians m (n = 2000 + 400)", ylabel="seconds per step")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(head, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
