"""Peak memory per rank of one least-squares solve: 1 process against 2 gloo ranks.

    python benchmarks/ls_ranks.py [--components 600] [--interior 20000] [--boundary 2000]
                                  [--out results/benchmarks/ls-ranks.md]

The same GMNM system on `poisson` (float64) is solved by each configuration in fresh
processes (torchrun for 2 ranks, one thread each); each rank samples its resident memory
every 2 ms during the solve alone and reports the peak above what it held just before
(the points, the model and torch itself are not counted). Configurations:

- ``dense``: the whole system (gathered from every rank) and its SVD — what least squares
  did under torchrun before the R-factor reduction;
- ``streamed``: row blocks of max(2048, P) points folded into an R factor; with 2 ranks
  each rank folds its own rows and the R factors are reduced (TSQR);
- ``streamed-1-block``: the same with each rank's rows in one block, which shows the
  per-rank memory falling with the number of ranks when blocks do not bound it already;
- ``gauss-newton-gathered`` / ``gauss-newton``: one Gauss–Newton step on all parameters of
  a smaller GMNM, its Jacobian gathered onto every rank (as before) or each rank's rows
  reduced to an R factor (TSQR, ``DampedSolver.reduced``).

The solutions are compared by the loss after the solve (or the step).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakSampler:
    """The largest resident set seen while the block runs, sampled every 2 ms."""

    def __enter__(self) -> PeakSampler:
        self.base = self.peak = rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, rss())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss())


def worker(args: argparse.Namespace) -> None:
    import torch

    from pinn_gmnm import GMNM, Collocation, get_problem
    from pinn_gmnm.distributed import setup
    from pinn_gmnm.training import Loss, sample_batch
    from pinn_gmnm.training.linear import fit_head, linear_head
    from pinn_gmnm.training.gauss_newton import DampedSolver
    from pinn_gmnm.training.jacobian import residual_jacobian
    from pinn_gmnm.training.solvers import Dense, Streamed
    from pinn_gmnm.training.task import assign_vector, parameter_vector

    torch.set_num_threads(1)
    parallel, device = setup(torch.device("cpu"))
    p = get_problem("poisson")
    torch.manual_seed(0)
    newton = args.solver.startswith("gauss-newton")
    m = args.gn_components if newton else args.components
    model = GMNM(2, components=m, bounds=p.geometry.bbox).double()
    batch = sample_batch(p, Collocation(args.interior, args.boundary), seed=0)
    loss = Loss(p, batch.to(torch.float64, "cpu").shard(parallel), parallel=parallel)
    with torch.no_grad():
        loss(model)
    head = linear_head(model)
    start = time.perf_counter()
    if newton:  # one Gauss–Newton step on every parameter
        params = [q for q in model.parameters() if q.requires_grad]
        with PeakSampler() as peak:
            r, J = residual_jacobian(loss, model, params)
            if args.solver == "gauss-newton-gathered":  # what every rank did before TSQR
                solver = DampedSolver(parallel.gather_rows(J),
                                      parallel.gather_rows(r[:, None])[:, 0])
            else:
                solver = DampedSolver.reduced(J, r, parallel)
            del r, J
            step, _ = solver.step(1e-6)
            assign_vector(params, parameter_vector(params) + step)
    else:
        solver = {"dense": Dense(), "streamed": Streamed(),
                  "streamed-1-block": Streamed(rows=10**9)}[args.solver]
        with PeakSampler() as peak:
            fit_head(loss, model, head, solver=solver)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        total = loss(model)[0].reshape(1)
    parallel.sum_([total])
    print(json.dumps({"rank": parallel.rank, "peak": peak.peak - peak.base, "seconds": seconds,
                      "loss": float(total[0]),
                      "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def gn_parameters(components: int) -> int:
    from pinn_gmnm import GMNM

    model = GMNM(2, components=components, bounds=((0.0, 0.0), (1.0, 1.0)))
    return sum(q.numel() for q in model.parameters() if q.requires_grad)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args: argparse.Namespace, solver: str, ranks: int) -> list[dict]:
    opts = ["--worker", "--solver", solver, "--components", str(args.components),
            "--gn-components", str(args.gn_components),
            "--interior", str(args.interior), "--boundary", str(args.boundary)]
    me = str(Path(__file__).resolve())
    if ranks == 1:
        cmd = [sys.executable, me, *opts]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={ranks}",
               f"--master-port={free_port()}", "--master-addr=127.0.0.1", me, *opts]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    found = json_objects(out.stdout)
    if out.returncode != 0 and len(found) == ranks:  # every rank reported, then exit failed
        print(f"note: {solver} on {ranks} ranks exited with {out.returncode} after reporting",
              flush=True)
        return found
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return found


def json_objects(text: str) -> list[dict]:
    """Every JSON object printed in ``text``: the ranks share one stdout, and two ranks'
    lines can arrive joined."""
    decoder, found, i = json.JSONDecoder(), [], text.find("{")
    while i != -1:
        obj, end = decoder.raw_decode(text, i)
        found.append(obj)
        i = text.find("{", end)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--solver", default="streamed")
    parser.add_argument("--components", type=int, default=600)
    parser.add_argument("--gn-components", type=int, default=150,
                        help="Gaussians of the Gauss-Newton rows (all their parameters)")
    parser.add_argument("--interior", type=int, default=20000)
    parser.add_argument("--boundary", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks/ls-ranks.md"))
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    from common import header

    rows = []
    for solver in ("dense", "streamed", "streamed-1-block", "gauss-newton-gathered",
                   "gauss-newton"):
        for ranks in (1, 2):
            reports = launch(args, solver, ranks)
            peak = max(r["peak"] for r in reports)
            rows.append((solver, ranks, peak, max(r["seconds"] for r in reports),
                         reports[0]["loss"]))
            print(rows[-1], flush=True)
    one = {s: peak for s, ranks, peak, *_ in rows if ranks == 1}
    P = args.components + 1
    lines = [
        "# Peak memory per rank of one least-squares solve",
        "",
        header(1, f"poisson, GMNM {args.components} Gaussians (P = {P}), "
               f"{args.interior} + {args.boundary} points, float64"),
        "",
        "Written by `benchmarks/ls_ranks.py`. Peak resident memory above what the rank held",
        "before the solve, sampled every 2 ms; seconds measured on a 2-core machine shared",
        "with other work (under contention: only the memory columns are firm).",
        "",
        "| solve | ranks | peak per rank (MiB) | vs 1 process (dense / gathered) | seconds | "
        "loss after |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for solver, ranks, peak, seconds, loss in rows:
        base = one["gauss-newton-gathered" if solver.startswith("gauss-newton") else "dense"]
        lines.append(f"| {solver} | {ranks} | {peak / 2**20:.0f} | {peak / base:.2f} | "
                     f"{seconds:.1f} | {loss:.6e} |")
    lines += [
        "",
        f"The Gauss–Newton rows: one step on all parameters of a GMNM with {args.gn_components}",
        f"Gaussians (P = {gn_parameters(args.gn_components)}), the ratio against the gathered "
        "step in one process. `gauss-newton-gathered` is what every rank did before: the whole",
        "Jacobian on every rank; `gauss-newton` reduces each rank's rows to an R factor (TSQR).",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
