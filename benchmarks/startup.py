"""Start-up time of the `gmnm-pde` command: help, list and the default `solve poisson`,
each run as a fresh process, against a bare `import torch`.

    python benchmarks/startup.py [--repeats N] [--out results/benchmarks/startup.md]

The commands are run in turns (one of each, N times over), so that a change of load on
the machine touches all of them alike, after one warm-up round that is not counted.
Prints and writes the median wall seconds of each, whether it imported torch, and the
targets: help under 1 s without torch, `list` at most 0.5 s more than `import torch`,
`solve poisson` (plots included) under 5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402  (only for the header: the commands run in their own processes)
from common import header  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SOLVE = "gmnm-pde solve poisson -q --out TMP"


def gmnm_pde() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m``."""
    script = Path(sys.executable).with_name("gmnm-pde")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "pinn_gmnm.cli.main"]


def commands(tmp: Path) -> dict[str, list[str]]:
    cli = gmnm_pde()
    return {
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
        "gmnm-pde --help": [*cli, "--help"],
        "gmnm-pde solve --help": [*cli, "solve", "--help"],
        "gmnm-pde list": [*cli, "list"],
        SOLVE: [*cli, "solve", "poisson", "-q", "--out", str(tmp / "runs")],
    }


def timed(argv: list[str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU (user + system, all threads) seconds of one run of ``argv`` (which
    must succeed). CPU time depends less on the load of a shared machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, check=True, cwd=cwd, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def imports_torch(argv: list[str], cwd: Path) -> bool:
    """Whether ``argv`` (a Python program) imports torch, from ``-X importtime``."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    err = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=True).stderr
    return any(line.rsplit("|", 1)[-1].strip() == "torch" for line in err.splitlines())


def newest_metrics(runs: Path) -> dict:
    newest = max(runs.iterdir(), key=lambda p: p.stat().st_mtime)
    return json.loads((newest / "metrics.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks" / "startup.md")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)  # also the working folder: the checkout would shadow the install
        cmds = commands(tmp)
        torch_imported = {label: imports_torch(argv, tmp) for label, argv in cmds.items()}
        times: dict[str, list[float]] = {label: [] for label in cmds}
        cpu: dict[str, list[float]] = {label: [] for label in cmds}
        train: list[float] = []  # training seconds of each solve
        inside: list[float] = []  # seconds in run() before the figures (metrics.json)
        for round_ in range(args.repeats + 1):  # round 0 warms the file cache
            for label, argv in cmds.items():
                wall, cpu_s = timed(argv, tmp)
                if round_ == 0:
                    continue
                times[label].append(wall)
                cpu[label].append(cpu_s)
                if label == SOLVE:
                    metrics = newest_metrics(tmp / "runs")
                    train.append(metrics["train_time"])
                    inside.append(metrics["wall_time"])
    med = {label: statistics.median(v) for label, v in times.items()}
    torch_s = med["python -c 'import torch'"]
    checks = [
        ("gmnm-pde --help", med["gmnm-pde --help"] < 1.0
         and not torch_imported["gmnm-pde --help"], "< 1 s, no torch"),
        ("gmnm-pde solve --help", med["gmnm-pde solve --help"] < 1.0
         and not torch_imported["gmnm-pde solve --help"], "< 1 s, no torch"),
        ("gmnm-pde list", med["gmnm-pde list"] - torch_s <= 0.5,
         f"≤ import torch + 0.5 s (is + {med['gmnm-pde list'] - torch_s:.2f} s)"),
        (SOLVE, med[SOLVE] < 5.0, "< 5 s"),
    ]
    rows = [f"| `{label}` | {med[label]:.2f} | {min(v):.2f} – {max(v):.2f} | "
            f"{med[label] / torch_s:.2f} | {statistics.median(cpu[label]):.2f} | "
            f"{'yes' if torch_imported[label] else 'no'} |"
            for label, v in times.items()]
    train_med, inside_med = statistics.median(train), statistics.median(inside)
    lines = [
        "# Start-up time of gmnm-pde",
        "",
        header(torch.get_num_threads(), f"{args.repeats} runs each, fresh processes, in turns, after a warm-up round"),
        "",
        "Median wall seconds; ratio = median / median of `import torch`; CPU = median user + "
        "system seconds (all threads), which the load of a shared machine sways less; torch = "
        "whether the command imports torch. The machine is shared and noisy: compare within "
        "one table.",
        "",
        "| command | median s | min – max s | ratio to import torch | CPU s | torch |",
        "| --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        f"`solve poisson` (medians): training {train_med:.2f} s (this includes torch's own "
        "import of torch._dynamo when the first optimizer is made); problem, model, "
        f"evaluation and files {inside_med - train_med:.2f} s; interpreter, imports, figures "
        f"and exit {med[SOLVE] - inside_med:.2f} s.",
        "",
        "| target | met |",
        "| --- | --- |",
        *[f"| `{label}` {what} | {'yes' if ok else '**no**'} |" for label, ok, what in checks],
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
