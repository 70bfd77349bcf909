"""Training-step time against the number of collocation points, on the CPU and (when
present) a GPU, and the speed-up of data-parallel training with 2 gloo processes.

    python benchmarks/scaling.py [--sizes 1000,10000,100000] [--steps 10] [--ranks 2]
                                 [--out results/benchmarks/scaling.md]

Part 1 times Adam steps (forward, derivatives, backward, update) in this process for the
GMNM (400 Gaussians, closed-form derivatives) and the 3 × 50 tanh MLP (forward-mode
derivatives) on `poisson`, in float32 and float64. Part 2 runs `gmnm-pde solve` under
torchrun with 1 and with N CPU processes (one thread each) on the same points and reports
the time per step from the runs' histories.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from pinn_gmnm import GMNM, MLP, Collocation, get_problem
from pinn_gmnm.training import Loss, sample_batch


def step_time(model_name: str, n: int, device: torch.device, dtype: torch.dtype, steps: int) -> float:
    """Median seconds per Adam step."""
    p = get_problem("poisson")
    torch.manual_seed(0)
    model = (GMNM(2, bounds=p.geometry.bbox) if model_name == "gmnm"
             else MLP(2, bounds=p.geometry.bbox)).to(device=device, dtype=dtype)
    batch = sample_batch(p, Collocation(n, max(4, n // 5)), 0).to(dtype, device)
    loss = Loss(p, batch)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    times = []
    for i in range(steps + 3):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad()
        total, _ = loss(model)
        total.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_step_time(ranks: int, points: int, steps: int) -> float:
    """Seconds per Adam step of `gmnm-pde solve` under torchrun with ``ranks`` CPU processes."""
    with tempfile.TemporaryDirectory() as tmp:
        args = ["-m", "pinn_gmnm.cli.main", "solve", "poisson", "--model", "gmnm", "--device", "cpu",
                "--method", "adam-lbfgs", "--adam-steps", str(steps), "--lbfgs-steps", "0",
                "--points", str(points), "--boundary-points", str(points // 5), "--quiet",
                "--out", tmp]
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={ranks}",
               f"--master-port={free_port()}", "--master-addr=127.0.0.1", *args]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       cwd=tmp)  # not the checkout: its source folder would shadow the install
        (run_dir,) = Path(tmp).iterdir()
        rows = list(csv.DictReader((run_dir / "history.csv").open()))
        t = [float(r["time"]) for r in rows]
        return (t[-1] - t[2]) / (len(t) - 3)  # skip the first steps (warm-up)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,3000,10000,30000,100000")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--ranks", type=int, default=2, help="processes for part 2 (0 skips it)")
    ap.add_argument("--devices", default="all", help="all, cpu or cuda")
    ap.add_argument("--parallel-points", type=int, default=20000)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    if args.devices != "all":
        devices = [d for d in devices if d.type == args.devices]
    lines = [f"# Step time vs collocation points ({time.strftime('%Y-%m-%d')})", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads"
             + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"),
             "Command: `python benchmarks/scaling.py " + " ".join(sys.argv[1:]) + "`", "",
             "| device | model | dtype | " + " | ".join(f"n={n}" for n in sizes) + " |",
             "|---|---|---|" + "---|" * len(sizes)]
    for device in devices:
        for model in ("gmnm", "mlp"):
            for dtype in (torch.float32, torch.float64):
                cells = [f"{1e3 * step_time(model, n, device, dtype, args.steps):.1f} ms" for n in sizes]
                lines.append(f"| {device.type} | {model} | {str(dtype)[6:]} | " + " | ".join(cells) + " |")
                print(lines[-1], flush=True)
    if args.ranks:
        lines += parallel_lines(args)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")


def parallel_lines(args: argparse.Namespace) -> list[str]:
    one = torchrun_step_time(1, args.parallel_points, 60)
    many = torchrun_step_time(args.ranks, args.parallel_points, 60)
    lines = ["", f"Data-parallel (gloo, CPU, 1 thread per process, GMNM, {args.parallel_points} + "
             f"{args.parallel_points // 5} points, float64 Adam steps):", "",
             f"- 1 process: {1e3 * one:.1f} ms/step",
             f"- {args.ranks} processes: {1e3 * many:.1f} ms/step (speed-up {one / many:.2f}×)"]
    print("\n".join(lines))
    return lines


if __name__ == "__main__":
    main()
