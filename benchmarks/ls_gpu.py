"""Least squares on a GPU: the dense, streamed and sparse solvers and a Gauss–Newton step
on CUDA tensors, against the same solves on the CPU; then one large streamed solve.

    python benchmarks/ls_gpu.py [--components 1500] [--interior 30000]
        [--large-components 8000] [--large-interior 200000] [--out ls-gpu.md]

Problem: poisson-3d, GMNM with centres over the box grown by 0.2, float64: Gaussians of
``--width`` (1.25 × the spacing: narrow, where the sparse solver is meant to run) for the
solver rows, of the default width 4 for the Gauss–Newton rows and the large solve. For each solver the system is
equilibrated and solved as the least-squares stage does (``fit_head``), on the GPU and on
the CPU, from the same model and points; reported: seconds, the GPU's peak allocated
memory during the solve, the loss after the solve (the objective: equal to rounding) and the relative L2
error against the exact solution on 20 000 random points. The sparse solver builds its
rows and solves on the CPU whatever the device (scipy), and hands the head back on it.
The Gauss–Newton rows time one damped step on every parameter of a smaller GMNM. The
large solve streams 200 000 points through the R factor on the GPU, where the dense system
would take 8 · N · P bytes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def error(problem, model, device) -> float:
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(20000, 3, generator=g, dtype=torch.float64) * 2 - 1).to(device)
    with torch.no_grad():
        u = torch.cat([model(c)[:, 0] for c in x.split(2000)])
    exact = problem.exact(x).reshape(-1)
    return float((u - exact).norm() / exact.norm())


def least_squares(solver_name: str, components: int, interior: int, device: str,
                  width: float) -> dict:
    from pinn_gmnm import GMNM, Collocation, get_problem
    from pinn_gmnm.training import Loss, sample_batch
    from pinn_gmnm.training.linear import fit_head, linear_head
    from pinn_gmnm.training.solvers import solver_from

    p = get_problem("poisson-3d")
    torch.manual_seed(0)
    model = GMNM(3, components=components, bounds=p.geometry.bbox, width_factor=width,
                 margin=0.2).double().to(device)
    batch = sample_batch(p, Collocation(interior, interior // 10), seed=0)
    loss = Loss(p, batch.to(torch.float64, device))
    head = linear_head(model)
    solver = solver_from(solver_name)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    sums = solver.row_sums(loss, model, head)
    loss.scale_terms([c / float(s) for s, c in zip(sums, loss.counts)])
    fit_head(loss, model, head, solver=solver)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else 0
    with torch.no_grad():  # in pieces: the features of every point at once outweigh the solve
        after = float(loss.in_pieces(model, 16384)[0])
    return {"seconds": seconds, "peak": peak, "loss": after, "rel_l2": error(p, model, device),
            "head_device": str(head.get().device)}


def gauss_newton_step(components: int, interior: int, device: str) -> dict:
    from pinn_gmnm import GMNM, Collocation, get_problem
    from pinn_gmnm.distributed import SERIAL
    from pinn_gmnm.training import Loss, sample_batch
    from pinn_gmnm.training.gauss_newton import DampedSolver
    from pinn_gmnm.training.jacobian import residual_jacobian, residual_vector
    from pinn_gmnm.training.task import assign_vector, parameter_vector

    p = get_problem("poisson-3d")
    torch.manual_seed(0)
    model = GMNM(3, components=components, bounds=p.geometry.bbox, width_factor=4.0,
                 margin=0.2).double().to(device)
    loss = Loss(p, sample_batch(p, Collocation(interior, interior // 10), seed=0)
                .to(torch.float64, device))
    params = [q for q in model.parameters() if q.requires_grad]
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    r, J = residual_jacobian(loss, model, params)
    step, predicted = DampedSolver.reduced(J, r, SERIAL).step(1e-6)
    assign_vector(params, parameter_vector(params) + step)
    with torch.no_grad():
        after = float(residual_vector(loss, model).square().sum())
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else 0
    return {"seconds": seconds, "peak": peak, "loss": after, "rel_l2": error(p, model, device),
            "head_device": device, "parameters": J.shape[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, default=1500)
    parser.add_argument("--interior", type=int, default=30000)
    parser.add_argument("--width", type=float, default=1.25,
                        help="Gaussians' width (x spacing) for the solver rows: narrow, where "
                             "the sparse solver is meant to run")
    parser.add_argument("--gn-components", type=int, default=150)
    parser.add_argument("--large-components", type=int, default=8000)
    parser.add_argument("--large-interior", type=int, default=200000)
    parser.add_argument("--large-only", action="store_true", help="only the large solve, printed")
    parser.add_argument("--out", type=Path, default=Path("ls-gpu.md"))
    args = parser.parse_args()
    from common import header

    if not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA GPU")
    name = torch.cuda.get_device_name()
    threads = torch.get_num_threads()
    rows = []
    if args.large_only:
        large = least_squares("streamed", args.large_components, args.large_interior, "cuda", 4.0)
        print("large", large, flush=True)
        return
    for solver in ("dense", "streamed", "sparse"):
        for device in ("cuda", "cpu"):
            r = least_squares(solver, args.components, args.interior, device, args.width)
            rows.append((f"lstsq, {solver}", device, r))
            print(rows[-1], flush=True)
    for device in ("cuda", "cpu"):
        r = gauss_newton_step(args.gn_components, args.interior, device)
        rows.append((f"gauss-newton step ({r['parameters']} parameters)", device, r))
        print(rows[-1], flush=True)
    large = least_squares("streamed", args.large_components, args.large_interior, "cuda", 4.0)
    print("large", large, flush=True)
    lines = [
        "# Least squares on a GPU",
        "",
        header(threads, f"{name}; poisson-3d, GMNM, margin 0.2, float64"),
        "",
        "Written by `benchmarks/ls_gpu.py` on the GPU machine (CPU rows: its own CPU, "
        f"{threads} threads). {args.components} Gaussians and {args.interior} + "
        f"{args.interior // 10} points, width {args.width} for the solver rows; seconds "
        "include building the rows and equilibrating.",
        "",
        "| solve | device | seconds | GPU peak (MiB) | loss after | relative L2 error | head on |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for label, device, r in rows:
        lines.append(f"| {label} | {device} | {r['seconds']:.2f} | {r['peak'] / 2**20:.0f} | "
                     f"{r['loss']:.6e} | {r['rel_l2']:.2e} | {r['head_device']} |")
    n = args.large_interior + args.large_interior // 10
    lines += [
        "",
        f"One large streamed solve on the GPU: {args.large_components} Gaussians, "
        f"{args.large_interior} + {args.large_interior // 10} points (dense, the system alone "
        f"would take {8 * n * (args.large_components + 1) / 2**30:.0f} GiB): "
        f"{large['seconds']:.1f} s, GPU peak {large['peak'] / 2**30:.2f} GiB, relative L2 "
        f"error {large['rel_l2']:.2e}.",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
