"""Time and peak memory of one least-squares solve against N (rows) and P (unknowns), for the
dense, streamed and sparse solvers, with fitted exponents; and the accuracy of streaming
by R factor against streaming by normal equations.

    python benchmarks/ls_growth.py [--quick] [--out results/benchmarks/ls-growth.md]

Every solve runs in a fresh process (one thread) on `poisson` with a GMNM of Gaussians
1 × their spacing (narrow enough for the sparse solver to see zeros; the same system for
all three), equilibrated as the least-squares stage does; the peak is the resident
memory above what the process held before the solve (sampled every 2 ms). The grid is
modest (N up to 43 200 rows, P up to 1 601) because it runs on a 2-core machine shared
with other sessions: times are under contention, exponents are rough.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ls_ranks import PeakSampler  # noqa: E402


def one_solve(solver_name: str, components: int, interior: int) -> dict:
    import torch

    from pinn_gmnm import GMNM, Collocation, get_problem
    from pinn_gmnm.training import Loss, sample_batch
    from pinn_gmnm.training.linear import fit_head, linear_head
    from pinn_gmnm.training.solvers import solver_from

    torch.set_num_threads(1)
    p = get_problem("poisson")
    torch.manual_seed(0)
    model = GMNM(2, components=components, bounds=p.geometry.bbox, width_factor=1.0).double()
    loss = Loss(p, sample_batch(p, Collocation(interior, interior // 5), seed=0)
                .to(torch.float64, "cpu"))
    head = linear_head(model)
    solver = solver_from(solver_name)
    start = time.perf_counter()
    with PeakSampler() as peak:
        sums = solver.row_sums(loss, model, head)
        loss.scale_terms([c / float(s) for s, c in zip(sums, loss.counts)])
        fit_head(loss, model, head, solver=solver)
    seconds = time.perf_counter() - start
    x = torch.rand(4000, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        u = torch.cat([model(c)[:, 0] for c in x.split(500)])
    exact = p.exact(x).reshape(-1)
    rows = interior + sum(len(c) for c in loss.batch.conditions)
    return {"seconds": seconds, "peak": peak.peak - peak.base, "rows": rows,
            "unknowns": components + 1, "rel_l2": float((u - exact).norm() / exact.norm())}


def accuracy() -> list[str]:
    """Dense SVD, streamed R factor and streamed normal equations (with 0 and 2 steps of
    iterative refinement, each a second pass over the rows) on an ill-conditioned GMNM
    system: the default broad Gaussians (4 × their spacing)."""
    import torch

    from pinn_gmnm import GMNM, Collocation, get_problem
    from pinn_gmnm.training import Loss, sample_batch
    from pinn_gmnm.training.linear import linear_head
    from pinn_gmnm.training.lsq import linear_system, solve_lstsq
    from pinn_gmnm.training.solvers import Dense
    from pinn_gmnm.training.streamed import r_factor, solve_r

    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    p = get_problem("poisson")
    torch.manual_seed(0)
    model = GMNM(2, components=400, bounds=p.geometry.bbox).double()
    loss = Loss(p, sample_batch(p, Collocation(4000, 800), seed=0).to(torch.float64, "cpu"))
    head = linear_head(model)
    sums = Dense().row_sums(loss, model, head)
    loss.scale_terms([c / float(s) for s, c in zip(sums, loss.counts)])
    with torch.no_grad():
        J, r0 = linear_system(loss, model, head)
    b = -r0
    rcond = 100 * torch.finfo(torch.float64).eps
    results = {"dense SVD": solve_lstsq(J, b), "streamed R factor":
               solve_r(r_factor(loss, model, head, 1000), torch.float64)}
    conds = {k: v.cond for k, v in results.items()}
    thetas = {k: v.theta for k, v in results.items()}
    # normal equations, streamed the same way: G = Σ J_kᵀ J_k, with the same column scaling
    # and Tikhonov damping (rcond · s_max)², solved by Cholesky
    scale = J.norm(dim=0)
    Js = J / scale
    G = Js.T @ Js
    top = float(torch.linalg.eigvalsh(G)[-1])
    # the dense solve's damping (rcond · s_max)² first; where G + that is not numerically
    # positive definite (cond(G) = cond(J)²), 10×, 100×, … the machine epsilon × s_max²
    for damping in [rcond ** 2, *(10.0**k * torch.finfo(torch.float64).eps for k in range(12))]:
        L, info = torch.linalg.cholesky_ex(G + damping * top * torch.eye(len(G), dtype=G.dtype))
        if int(info) == 0:
            break
    theta = torch.cholesky_solve((Js.T @ b)[:, None], L)[:, 0]
    normal = f"normal equations (damping {damping:.0e} · s_max², the least that factors)"
    thetas[normal] = theta / scale
    for _ in range(2):
        theta = theta + torch.cholesky_solve((Js.T @ (b - Js @ theta))[:, None], L)[:, 0]
    thetas[normal.replace(")", "), + 2 refinement steps")] = theta / scale
    base = float((J @ thetas["dense SVD"] - b).square().sum())
    lines = [
        "## Streaming by R factor or by normal equations",
        "",
        f"poisson, GMNM 400 Gaussians at the default width (4 × their spacing), 4000 + 800 "
        f"points, equilibrated; condition number of the column-scaled J: "
        f"{conds['dense SVD']:.1e}. The objective ‖Jθ + r₀‖² and the error of the fitted "
        "model (relative L2 on 4000 random points):",
        "",
        "| solve | objective / dense SVD's | relative L2 error |",
        "| --- | ---: | ---: |",
    ]
    x = torch.rand(4000, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1
    exact = p.exact(x).reshape(-1)
    for name, th in thetas.items():
        head.set(th.reshape(1, -1).T)
        with torch.no_grad():
            err = float((model(x)[:, 0] - exact).norm() / exact.norm())
        objective = float((J @ th - b).square().sum())
        lines.append(f"| {name} | {objective / base:.6g} | {err:.3e} |")
    return lines


def fit(xs: list[float], ys: list[float]) -> float:
    """The slope of log y against log x (least squares)."""
    lx, ly = [math.log(x) for x in xs], [math.log(max(y, 1e-9)) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return (sum((a - mx) * (b - my) for a, b in zip(lx, ly))
            / sum((a - mx) ** 2 for a in lx))


def launch(solver: str, components: int, interior: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", solver, str(components),
           str(interior)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.splitlines()[-1])


def large(out: Path) -> None:
    """The solvers that scale, at sizes the dense one cannot reach here (it would need
    4 · 8 · N · P bytes: 33 GiB at N = 1.3e6, P = 801): a section appended to ``out``."""
    from common import header

    runs = ([("streamed", 800, n) for n in (120000, 360000, 1080000)]
            + [("sparse", 800, n) for n in (120000, 360000, 1080000)]
            + [("sparse", p, 40000) for p in (3200, 6400, 12800)]
            + [("streamed", 3200, 40000)])
    results = []
    for solver, components, interior in runs:
        r = launch(solver, components, interior)
        print(solver, components, interior, r, flush=True)
        results.append((solver, interior, r))
    lines = ["", "## Past the dense solver", "", header(1, "the same problem and model"), "",
             "Appended by `benchmarks/ls_growth.py --large` (same machine and load note as "
             "above).", "",
             "| solver | N | P | seconds | peak MiB | relative L2 error |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for solver, _, r in results:
        lines.append(f"| {solver} | {r['rows']} | {r['unknowns']} | {r['seconds']:.1f} | "
                     f"{r['peak'] / 2**20:.0f} | {r['rel_l2']:.2e} |")
    lines.append("")
    for solver, key, label in (("streamed", "rows", "N"), ("sparse", "rows", "N"),
                               ("sparse", "unknowns", "P")):
        pick = [r for s, n, r in results if s == solver
                and (r["unknowns"] == 801 if key == "rows" else n == 40000)]
        xs = [r[key] for r in pick]
        lines.append(f"- {solver}, against {label}: time ∝ {label}^"
                     f"{fit(xs, [r['seconds'] for r in pick]):.2f}, peak memory ∝ {label}^"
                     f"{fit(xs, [r['peak'] for r in pick]):.2f}")
    with out.open("a") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=3)
    parser.add_argument("--quick", action="store_true", help="a tiny grid, to try the script")
    parser.add_argument("--large", action="store_true",
                        help="only the sizes past the dense solver: streamed and sparse up to "
                             "~1e6 rows, sparse up to ~1.3e4 unknowns; appended to --out")
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/ls-growth.md"))
    args = parser.parse_args()
    if args.worker:
        solver, components, interior = args.worker
        print(json.dumps(one_solve(solver, int(components), int(interior))))
        return
    from common import header

    if args.large:
        large(args.out)
        return

    by_n = (800, [4000, 12000, 36000]) if not args.quick else (100, [500, 1000])
    by_p = (8000, [200, 400, 800, 1600]) if not args.quick else (1000, [50, 100])
    solvers = ("dense", "streamed", "sparse")
    lines = ["# Growth of one least-squares solve with rows and unknowns", "",
             header(1, "poisson, GMNM Gaussians 1 × their spacing, float64"), "",
             "Written by `benchmarks/ls_growth.py` (see its docstring). Measured on a 2-core",
             "machine shared with five other sessions: times under contention. Peak: resident",
             "memory above the process's before the solve. Exponents: slopes of log-log fits.",
             ""]
    for label, fixed, grid, key in (("N", by_n[0], by_n[1], "rows"),
                                    ("P", by_p[0], by_p[1], "unknowns")):
        table = {}
        for solver in solvers:
            for value in grid:
                components, interior = (fixed, value) if label == "N" else (value, fixed)
                table[solver, value] = r = launch(solver, components, interior)
                print(solver, label, value, r, flush=True)
        what = (f"P = {fixed + 1} unknowns" if label == "N"
                else f"{fixed} interior points (N = {table['dense', grid[0]]['rows']} rows)")
        lines += [f"## Against {label} ({what})", "",
                  f"| solver | {label} | seconds | peak MiB | relative L2 error |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for solver in solvers:
            for value in grid:
                r = table[solver, value]
                lines.append(f"| {solver} | {r[key]} | {r['seconds']:.2f} | "
                             f"{r['peak'] / 2**20:.0f} | {r['rel_l2']:.2e} |")
        lines += ["", f"| solver | time ∝ {label}^a | peak memory ∝ {label}^b |", "| --- | ---: | ---: |"]
        for solver in solvers:
            xs = [table[solver, v][key] for v in grid]
            lines.append(f"| {solver} | {fit(xs, [table[solver, v]['seconds'] for v in grid]):.2f} | "
                         f"{fit(xs, [table[solver, v]['peak'] for v in grid]):.2f} |")
        lines.append("")
    lines += accuracy()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
