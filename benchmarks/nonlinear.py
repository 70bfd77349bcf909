"""Gauss–Newton against Adam → L-BFGS on two small nonlinear problems with exact solutions,
for GMNM and the MLP: error reached and training time. The stages are those of
``gmnm-pde solve --method gauss-newton`` (Levenberg–Marquardt on the output layer, then on
every parameter) and ``--method adam-lbfgs``.

    python benchmarks/nonlinear.py [--quick] [--threads T] [--out results/benchmarks/nonlinear.md]

Problems (defined here, not in the catalogue):
  bratu:       u'' + e^u = 0 on [0, 1], u(0) = u(1) = 0;
               u = −2 ln(cosh((x − ½)θ/2) / cosh(θ/4)), θ = √2 cosh(θ/4) (lower branch)
  cubic-2d:    −Δu + u³ = f on [−1, 1]², u = 0 on the boundary, u = sin(πx) sin(πy)
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
from common import header

from pinn_gmnm import (GMNM, MLP, Collocation, Dirichlet, Interval, Problem,
                       Rectangle, solve)
from pinn_gmnm.methods import METHODS, Steps


def bratu() -> Problem:
    theta = 1.0
    for _ in range(100):  # fixed point of θ = √2 cosh(θ/4), lower branch
        theta = math.sqrt(2.0) * math.cosh(theta / 4)

    def exact(x):
        return -2 * torch.log(torch.cosh((x[:, 0] - 0.5) * theta / 2) / math.cosh(theta / 4))

    return Problem(Interval(0, 1), lambda u, x: u.d("xx") + torch.exp(u()), [Dirichlet(0.0)],
                   exact=exact, name="bratu", linear=False)


def cubic_2d() -> Problem:
    def exact(x):
        return torch.sin(math.pi * x[:, 0]) * torch.sin(math.pi * x[:, 1])

    def residual(u, x):
        s = exact(x)
        return -u.laplacian() + u() ** 3 - (2 * math.pi**2 * s + s**3)

    return Problem(Rectangle((-1, -1), (1, 1)), residual, [Dirichlet(0.0)], exact=exact,
                   name="cubic-2d", linear=False)


def models(problem: Problem, quick: bool):
    d, box = problem.dim, problem.geometry.bbox
    width = 20 if quick else 50
    return {
        "gmnm": lambda: GMNM(d, bounds=box),  # the default size for the dimension
        f"mlp 3×{width}": lambda: MLP(d, 1, width, 3, bounds=box),
    }


def methods(problem: Problem, model, quick: bool):
    """The two methods as ``gmnm-pde solve --method`` builds them (quick: fewer steps)."""
    k = 4 if quick else 1
    steps = Steps(gn_steps=100 // k, adam_steps=1000 // k, lbfgs_steps=2000 // k)
    return {name: METHODS.get(name).build(problem, model, steps)
            for name in ("gauss-newton", "adam-lbfgs")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller models and budgets")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    head = header(args.threads, "float64", "--quick" if args.quick else "")
    lines = ["# Nonlinear problems: Gauss–Newton vs Adam → L-BFGS", "", head, "",
             "| problem | model | params | method | rel. L2 | train s | steps |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    print("\n".join(lines))
    for problem in (bratu(), cubic_2d()):
        n = (256, 2) if problem.dim == 1 else ((1000, 200) if args.quick else (2000, 400))
        for name, make in models(problem, args.quick).items():
            for method in ("gauss-newton", "adam-lbfgs"):
                torch.manual_seed(0)
                model = make()
                stages = methods(problem, model, args.quick)[method]
                t = time.perf_counter()
                s = solve(problem, model, stages=stages, collocation=Collocation(*n))
                row = (f"| {problem.name} | {name} | {s.parameters} | {method} | "
                       f"{s.metrics['rel_l2']:.2e} | {time.perf_counter() - t:.1f} | "
                       f"{s.metrics['steps']} |")
                print(row, flush=True)
                lines.append(row)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
