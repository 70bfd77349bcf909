"""What the reliability machinery costs, and whether it holds on a given device.

Prints, for Adam on the 2-D Poisson problem (GMNM and MLP):
  - the training time (evaluation excluded) with safe points (divergence check + snapshot after every step)
    against the same run with safe points switched off, as a ratio (alternating runs,
    median of --repeats);
and checks on the device:
  - a run stopped inside Adam and inside L-BFGS, then resumed, ends with the parameters of
    an uninterrupted run (max |difference| printed; 0 means bit for bit);
  - a run with an absurd learning rate ends with status 'diverged' and finite parameters.

    python benchmarks/safe_point_overhead.py --device cpu
    python benchmarks/safe_point_overhead.py --device cuda --steps 300
"""

from __future__ import annotations

import argparse
import statistics

import torch

from pinn_gmnm import GMNM, LBFGS, MLP, Adam, Collocation, get_problem, solve
from pinn_gmnm.interrupt import StopAfter
from pinn_gmnm.training.task import Task


def train_time(device: str, make, steps: int, points: int, safe_points: bool) -> float:
    problem = get_problem("poisson")
    torch.manual_seed(0)
    model = make(problem)
    original = Task.safe_point
    if not safe_points:
        Task.safe_point = lambda self, state=None, *, loss=None: None  # type: ignore[method-assign]
    try:  # training time only: the final evaluation is left out
        return solve(problem, model, stages=[Adam(steps=steps, lr=1e-3)], device=device,
                     collocation=Collocation(points, points // 5), eval_every=10**9).train_time
    finally:
        Task.safe_point = original  # type: ignore[method-assign]


def resume_gap(device: str, stop_at: int) -> float:
    problem = get_problem("poisson-1d")

    def run(**kw):
        torch.manual_seed(0)
        model = MLP(1, 1, 20, 2, bounds=problem.geometry.bbox)
        return solve(problem, model, stages=[Adam(steps=60, lr=1e-2, final_lr=1e-3), LBFGS(steps=40)],
                     collocation=Collocation(64, 2), device=device, **kw)

    full = run()
    stop = StopAfter(stop_at)
    stopped = run(stop=stop, callbacks=[stop])
    assert stopped.status == "interrupted", stopped.status
    resumed = run(resume=stopped.state)
    return max(float((a - b).detach().abs().max()) for a, b in zip(full.model.parameters(),
                                                                    resumed.model.parameters()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--points", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    d = args.device
    print(f"device {d} · torch {torch.__version__} · Adam {args.steps} steps · {args.points} points")
    models = {
        "gmnm (400 Gaussians)": lambda p: GMNM(2, components=400, bounds=p.geometry.bbox),
        "mlp (3 x 50 tanh)": lambda p: MLP(2, 1, 50, 3, bounds=p.geometry.bbox),
    }
    for name, make in models.items():
        train_time(d, make, 5, args.points, True)  # warm-up
        ratios, on, off = [], [], []
        for _ in range(args.repeats):
            a = train_time(d, make, args.steps, args.points, True)
            b = train_time(d, make, args.steps, args.points, False)
            on.append(a)
            off.append(b)
            ratios.append(a / b)
        print(f"  {name:<22} with safe points {statistics.median(on):.3f} s, without "
              f"{statistics.median(off):.3f} s, ratio {statistics.median(ratios):.3f} "
              f"(all: {', '.join(f'{r:.3f}' for r in ratios)})")
    for at, where in ((37, "inside Adam"), (75, "inside L-BFGS")):
        print(f"  resume {where:<14} max |parameter difference| from uninterrupted: "
              f"{resume_gap(d, at):.3g}")
    problem = get_problem("poisson-1d")
    torch.manual_seed(0)
    model = MLP(1, 1, 20, 2, bounds=problem.geometry.bbox)
    s = solve(problem, model, stages=[Adam(steps=20, lr=1e200)], collocation=Collocation(64, 2),
              device=d)
    finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    print(f"  absurd learning rate: status {s.status}, {len(s.events)} events, "
          f"parameters finite: {finite}")


if __name__ == "__main__":
    main()
