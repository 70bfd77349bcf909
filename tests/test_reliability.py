"""A failed run loses nothing: divergence is rolled back, Ctrl-C/SIGTERM save a resumable
state, a resumed run ends exactly where an uninterrupted one does, artifacts are never
half-written, and the same settings give the same numbers."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from typer.testing import CliRunner

from pinn_gmnm import (GMNM, LBFGS, MLP, Adam, Collocation, LeastSquares, Stage, VarPro, get_problem,
                       solve)
from pinn_gmnm.artifacts import atomic_write, load_checkpoint, new_run_dir
from pinn_gmnm.cli.main import app
from pinn_gmnm.interrupt import StopAfter, StopOnSignal
from pinn_gmnm.training import Divergence

runner = CliRunner()

# A tiny classic-recipe run: 40 Adam steps then up to 30 L-BFGS iterations (3 chunks).
RUN = ["poisson-1d", "--model", "mlp", "--width", "6", "--depth", "1", "--method", "adam-lbfgs",
       "--adam-steps", "40", "--lbfgs-steps", "30", "--points", "32", "--boundary-points", "2", "-q"]
# The same with variable projection on a GMNM (L-BFGS on the features, head re-solved).
RUN_VARPRO = ["poisson-1d", "--components", "6", "--method", "varpro", "--varpro-steps", "20",
              "--points", "32",
              "--boundary-points", "2", "-q"]


def invoke(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """``uninterrupted(args)``: the run directory of ``gmnm-pde solve *args``, run once."""
    cache: dict[tuple[str, ...], Path] = {}

    def get(args: list[str]) -> Path:
        if tuple(args) not in cache:
            out = tmp_path_factory.mktemp("uninterrupted")
            r = invoke("solve", *args, "--out", str(out))
            assert r.exit_code == 0, r.output
            cache[tuple(args)] = only_dir(out)
        return cache[tuple(args)]

    return get


def only_dir(root: Path) -> Path:
    (d,) = [p for p in root.iterdir() if p.is_dir()]
    return d


def params(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "model.pt")["state_dict"]


def assert_same_params(a: Path, b: Path) -> None:
    pa, pb = params(a), params(b)
    assert pa.keys() == pb.keys()
    for k in pa:
        assert torch.equal(pa[k], pb[k]), k


# --- divergence -----------------------------------------------------------------------

def test_absurd_learning_rate_diverges_and_is_reported(runs: Path):
    r = invoke("solve", *RUN, "--lr", "1e200", "--out", str(runs))
    assert r.exit_code == 3, r.output
    # inf or nan: which one overflowing weights produce depends on the order of operations
    assert re.search(r"training diverged in stage adam at step 2 \(the loss is (inf|nan)\)",
                     r.output), r.output
    assert "3 roll-back(s) with a lower learning rate did not help" in r.output
    assert "Traceback" not in r.output
    run_dir = only_dir(runs)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "diverged"
    events = [e for e in metrics["events"] if e["event"] == "diverged"]
    assert [e["action"] for e in events] == [
        "lowered the learning rate of adam to 1e+199", "lowered the learning rate of adam to 1e+198",
        "lowered the learning rate of adam to 1e+197", "stopped: 3 roll-backs did not help"]
    saved = params(run_dir)  # the last good state, not NaN
    assert all(torch.isfinite(v).all() for v in saved.values())
    torch.manual_seed(0)  # the same as the initialisation: no step was good
    p = get_problem("poisson-1d")
    fresh = MLP(1, 1, 6, 1, bounds=p.geometry.bbox).double().state_dict()
    assert all(torch.equal(saved[k], fresh[k]) for k in fresh)


def test_divergence_is_rolled_back_and_training_continues():
    p = get_problem("poisson-1d")
    torch.manual_seed(0)
    model = MLP(1, 1, 6, 1, bounds=p.geometry.bbox)
    s = solve(p, model, stages=[Adam(steps=20, lr=1e3), LBFGS(steps=10)],
              collocation=Collocation(32, 2), divergence=Divergence(blowup=100))
    assert s.status == "completed"
    lowered = [e for e in s.events if e["event"] == "diverged"]
    assert 1 <= len(lowered) <= 3
    assert all(e["action"].startswith("lowered the learning rate of adam") for e in lowered)
    assert s.stages[0].lr == pytest.approx(1e3 * 0.1 ** len(lowered))
    assert [r["step"] for r in s.history] == sorted({r["step"] for r in s.history})  # no repeats
    assert all(torch.isfinite(q).all() for q in model.parameters())


@dataclass(frozen=True)
class Poison(Stage):
    """A stage without a learning rate that ruins the parameters at its second step."""

    steps: int = 3
    kind: ClassVar[str] = "poison"

    def run(self, task) -> None:
        state = task.resumed() or {"i": 0}
        for i in range(state["i"], self.steps):
            if i == 1:
                with torch.no_grad():
                    task.params[0].fill_(math.nan)
            total, task._parts = task.evaluate_loss()
            task.record(self.kind, float(total))
            task.safe_point({"i": i + 1}, loss=float(total))


def test_a_stage_without_learning_rate_stops_at_the_last_good_state():
    p = get_problem("poisson-1d")
    torch.manual_seed(0)
    model = GMNM(1, components=6, bounds=p.geometry.bbox)
    s = solve(p, model, stages=[Adam(steps=5, lr=1e-3), Poison()], collocation=Collocation(32, 2))
    assert s.status == "diverged" and s.metrics["steps"] == 6
    assert s.events[-1]["action"] == "stopped: no learning rate to lower"
    assert s.events[-1]["reason"] == "the loss is nan"
    assert all(torch.isfinite(q).all() for q in model.parameters())
    assert s.state["stage"] == 1 and s.state["stage_state"] == {"i": 1}


# --- stop and resume, in process -------------------------------------------------------

@pytest.mark.parametrize("stages,stop_at", [
    (lambda: [Adam(steps=30, lr=1e-2, final_lr=1e-3), LBFGS(steps=30)], 17),   # inside Adam
    (lambda: [Adam(steps=30, lr=1e-2, final_lr=1e-3), LBFGS(steps=30)], 45),   # inside L-BFGS
    (lambda: [Adam(steps=30, lr=1e-2), LBFGS(steps=30)], 30),                   # at the boundary
])
def test_a_resumed_run_ends_equal_to_an_uninterrupted_one(stages, stop_at, stop_and_resume):
    p = get_problem("poisson-1d")

    def run(**kw):
        torch.manual_seed(0)
        model = MLP(1, 1, 6, 2, bounds=p.geometry.bbox)
        return solve(p, model, stages=stages(), collocation=Collocation(32, 2), **kw)

    full, _, resumed = stop_and_resume(run, stop_at)
    assert resumed.status == "completed"
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in full.history]
    assert [e["event"] for e in resumed.events] == ["interrupted", "resumed"]


def test_a_resumed_varpro_run_ends_equal_to_an_uninterrupted_one(stop_and_resume):
    p = get_problem("poisson-1d")

    def run(**kw):
        torch.manual_seed(0)
        model = GMNM(1, components=6, bounds=p.geometry.bbox)
        return solve(p, model, stages=[LeastSquares(), VarPro(steps=30, min_progress=0)],
                     collocation=Collocation(32, 2), **kw)

    stop_and_resume(run, 11)


def test_resume_restores_adaptive_points_weights_and_unknowns():
    """Resampling, refinement and loss balancing change the batch and weights during
    training, and an inverse problem trains a coefficient outside the model: a resumed
    run restores all of them (and the callbacks' counters) and ends equal."""
    from pinn_gmnm.training import GradNormBalance, Refine, Resample

    p = get_problem("poisson-inverse", observations=20)

    def run(**kw):
        torch.manual_seed(0)
        problem = get_problem("poisson-inverse", observations=20)  # a fresh unknown each time
        model = MLP(2, 1, 6, 1, bounds=p.geometry.bbox)
        adaptive = [Resample(every=5), Refine(every=7, candidates=64, add=4),
                    GradNormBalance(every=6)]
        s = solve(problem, model, stages=[Adam(steps=30, lr=1e-2)], collocation=Collocation(32, 16),
                  callbacks=[*adaptive, *kw.pop("callbacks", [])], **kw)
        return s, float(problem.unknowns[0])

    full, a_full = run()
    stop = StopAfter(17)
    stopped, a_stopped = run(stop=stop, callbacks=[stop])
    assert stopped.status == "interrupted" and a_stopped != a_full
    resumed, a_resumed = run(resume=stopped.state)
    assert a_resumed == a_full
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in full.history]


def test_second_signal_stops_at_once():
    with StopOnSignal() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop() and stop.signal_name == "SIGINT"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler runs here
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# --- stop and resume through the CLI, with real signals ----------------------------------

SIGNAL_AT_STEP = """
import os, signal, sys
from pinn_gmnm.cli.main import app
from pinn_gmnm.training.task import Task

at, signum = int(sys.argv[1]), getattr(signal, sys.argv[2])
record = Task.record

def record_then_signal(self, *args, **kwargs):
    record(self, *args, **kwargs)
    if self.step >= at:
        os.kill(os.getpid(), signum)

Task.record = record_then_signal
app(sys.argv[3:], prog_name="gmnm-pde")
"""


@pytest.mark.parametrize("args,at,signame", [
    (RUN, 51, "SIGTERM"),           # inside L-BFGS (inside Adam: tested in process above)
    (RUN_VARPRO, 12, "SIGINT"),     # inside variable projection
])
def test_signal_then_resume_equals_an_uninterrupted_run(tmp_path: Path, uninterrupted, args, at,
                                                        signame):
    out = tmp_path / "stopped"
    proc = subprocess.run([sys.executable, "-c", SIGNAL_AT_STEP, str(at), signame, "solve", *args,
                           "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 130, proc.stdout + proc.stderr
    run_dir = only_dir(out)
    assert f"interrupted by {signame} at step" in proc.stderr
    assert f"to continue: gmnm-pde solve --resume {run_dir}" in proc.stderr
    assert "Traceback" not in proc.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and metrics["steps"] >= at
    assert (run_dir / "history.csv").read_text().count("\n") == len(
        load_checkpoint(run_dir / "model.pt")["resume"]["history"]) + 1

    r = invoke("solve", "--resume", str(run_dir), "-q")
    assert r.exit_code == 0, r.output
    assert_same_params(uninterrupted(args), run_dir)
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "completed"
    r = invoke("solve", "--resume", str(run_dir))
    assert r.exit_code == 2 and "has status 'completed': there is nothing to resume" in r.output


def test_ctrl_c_from_outside_leaves_a_resumable_run(tmp_path: Path):
    """A SIGINT sent at an arbitrary moment of a long run (started as ``python -m``)."""
    args = [*RUN[:-7], "--adam-steps", "200000", "--lbfgs-steps", "0", "--points", "32",
            "--boundary-points", "2", "-q"]
    out = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "pinn_gmnm.cli.main", "solve", *args,
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while not list(out.glob("*/config.json")) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "to continue: gmnm-pde solve --resume" in err and "Traceback" not in err
    payload = load_checkpoint(only_dir(out) / "model.pt")
    assert payload["status"] == "interrupted" and payload["resume"]["step"] > 0


KILLED_AT_STEP = """
import os, signal, sys
from pathlib import Path
from pinn_gmnm.config import RunConfig
from pinn_gmnm.run import run

class Kill:
    def on_record(self, row, task):
        if task.step >= int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)

run(RunConfig.load(sys.argv[1]), out=Path(sys.argv[3]), callbacks=[Kill()], autosave=0.0)
"""


def test_a_killed_process_can_be_resumed_from_its_autosave(tmp_path: Path, uninterrupted):
    reference = uninterrupted(RUN)
    out = tmp_path / "killed"
    proc = subprocess.run([sys.executable, "-c", KILLED_AT_STEP, str(reference / "config.json"),
                           "45", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    run_dir = only_dir(out)
    assert load_checkpoint(run_dir / "model.pt")["status"] == "running"
    r = invoke("solve", "--resume", str(run_dir), "-q")
    assert r.exit_code == 0, r.output
    assert_same_params(reference, run_dir)


def test_a_run_that_fails_keeps_its_last_good_state(tmp_path: Path, uninterrupted):
    from pinn_gmnm.config import RunConfig
    from pinn_gmnm.run import resume, run

    class Crash:
        def on_record(self, row, task):
            if task.step == 25:
                raise RuntimeError("disk on fire")

    reference = uninterrupted(RUN)
    config = RunConfig.load(reference / "config.json")
    with pytest.raises(RuntimeError, match="disk on fire") as info:
        run(config, out=tmp_path, callbacks=[Crash()])
    run_dir = only_dir(tmp_path)
    # Snapshots are taken every 10 steps: the crash at step 25 goes back to step 20.
    assert f"the last good state (step 20) is saved in {run_dir}" in info.value.__notes__[0]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "failed" and metrics["error"] == "RuntimeError: disk on fire"
    assert resume(run_dir).status == "completed"
    assert_same_params(reference, run_dir)


def test_running_out_of_budget_can_be_continued_with_more(tmp_path: Path):
    r = invoke("solve", *RUN, "--adam-steps", "100000", "--budget", "0.3", "--out", str(tmp_path))
    assert r.exit_code == 0, r.output
    assert "budget         spent before training finished; to continue: gmnm-pde solve --resume" in r.output
    run_dir = only_dir(tmp_path)
    steps = json.loads((run_dir / "metrics.json").read_text())["steps"]
    r = invoke("solve", "--resume", str(run_dir), "-q")
    assert r.exit_code == 2 and "give a larger --budget" in r.output
    spent = json.loads((run_dir / "metrics.json").read_text())["train_time"]
    r = invoke("solve", "--resume", str(run_dir), "--budget", "0.3", "-q")  # not larger
    assert r.exit_code == 2 and "give a larger --budget" in r.output
    # (a cold start of the optimiser can take a second: the first run may overrun 0.3 s)
    r = invoke("solve", "--resume", str(run_dir), "--budget", str(spent + 0.3), "-q")
    assert r.exit_code == 0, r.output
    assert json.loads((run_dir / "metrics.json").read_text())["steps"] > steps


@pytest.mark.parametrize("args,message", [
    (["--resume", "nowhere"], "run directory not found: nowhere"),
    (["poisson", "--resume", "."], "--resume continues a run with its saved settings; PROBLEM cannot be changed"),
    (["--resume", ".", "--lr", "0.1"], "--lr cannot be changed (only --budget, --quiet and --accept-changed-problem go with --resume)"),
    (["--resume", ".", "--gn-steps", "5"], "--gn-steps cannot be changed"),
    (["--resume", "."], "holds no model.pt; is it a gmnm-pde run directory?"),
])
def test_resume_errors(args, message):
    r = invoke("solve", *args)
    assert r.exit_code == 2 and message in r.output, r.output


def test_ctrl_c_ends_a_comparison_after_the_current_run(runs: Path, monkeypatch):
    import pinn_gmnm.compare as compare

    real_run = compare.run

    class CtrlC:
        def on_record(self, row, task):
            if task.step == 3:
                os.kill(os.getpid(), signal.SIGINT)

    def run_with_ctrl_c(cfg, callbacks=(), **kw):
        return real_run(cfg, callbacks=[*callbacks, CtrlC()], **kw)

    monkeypatch.setattr(compare, "run", run_with_ctrl_c)
    r = invoke("compare", "poisson-1d", "--models", "mlp,kan", "--seeds", "2", "--params", "360",
               "--method", "adam-lbfgs", "--adam-steps", "10", "--lbfgs-steps", "3", "--points",
               "32", "--boundary-points", "2", "-q", "--out", str(runs))
    assert r.exit_code == 130, r.output
    assert "error: interrupted by SIGINT; the runs done so far are in" in r.output
    summary = json.loads((only_dir(runs) / "summary.json").read_text())
    assert [(x["model"], x["status"], x["steps"]) for x in summary["runs"]] == [("mlp", "interrupted", 3)]


def test_a_stop_reaches_the_worker_processes_of_a_parallel_comparison(runs: Path):
    """With --jobs the runs live in worker processes: a stop asked of the parent ends the
    running runs at their next step and drops the others (no run goes on for long)."""
    import threading

    from pinn_gmnm.compare import Comparison, run_comparison
    from pinn_gmnm.config import RunConfig

    base = RunConfig(problem="poisson-1d", method="adam-lbfgs", adam_steps=10**6, lbfgs_steps=0,
                     interior=32, boundary=2)
    stop = StopOnSignal()
    threading.Timer(8.0, stop.request).start()
    t = time.monotonic()
    result = run_comparison(Comparison(base, ("mlp",), seeds=3, params=200, jobs=2), out=runs,
                            stop=stop)
    assert time.monotonic() - t < 90
    assert result.interrupted == "request"
    assert result.records and all(r.status == "interrupted" for r in result.records)


# --- artifacts ---------------------------------------------------------------------------

KILLED_MID_WRITE = """
import sys, time
from pathlib import Path
from pinn_gmnm.artifacts import atomic_write

def write(f):
    f.write("new " * 1000)
    f.flush()
    print("writing", flush=True)
    time.sleep(60)

atomic_write(Path(sys.argv[1]), write)
"""


def test_a_process_killed_mid_write_leaves_the_previous_file(tmp_path: Path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    proc = subprocess.Popen([sys.executable, "-c", KILLED_MID_WRITE, str(target)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.kill()
    proc.wait(timeout=30)
    assert target.read_text() == "old"
    fresh = tmp_path / "none.json"  # a first write that is killed leaves no file at all
    proc = subprocess.Popen([sys.executable, "-c", KILLED_MID_WRITE, str(fresh)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.kill()
    proc.wait(timeout=30)
    assert not fresh.exists()


def test_an_error_mid_write_leaves_the_previous_file_and_no_temporary(tmp_path: Path):
    target = tmp_path / "history.csv"
    target.write_text("old")

    def fail(f):
        f.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, fail)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["history.csv"]


def test_run_directories_are_never_reused(tmp_path: Path):
    dirs = {new_run_dir(tmp_path, "poisson-gmnm") for _ in range(3)}
    assert len(dirs) == 3 and all(d.is_dir() and not any(d.iterdir()) for d in dirs)


# --- determinism ---------------------------------------------------------------------------

def test_same_seed_and_settings_give_the_same_metrics(tmp_path: Path, uninterrupted):
    r = invoke("solve", *RUN, "--out", str(tmp_path))
    assert r.exit_code == 0, r.output
    a, b = uninterrupted(RUN), only_dir(tmp_path)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    for key in ("rel_l2", "max_abs", "residual_rms", "steps", "parameters"):
        assert ma[key] == mb[key], key
    assert_same_params(a, b)
    ha, hb = ((d / "history.csv").read_text().splitlines() for d in (a, b))
    loss = ha[0].split(",").index("loss")
    assert [row.split(",")[loss] for row in ha] == [row.split(",")[loss] for row in hb]
