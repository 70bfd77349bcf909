"""Run directories others can use: resumable and rerunnable from any folder, guarded
against a problem file that changed since, readable under the user's umask, written by one
process at a time, and an --out that cannot hold them refused before training."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from pinn_gmnm.artifacts import atomic_write
from pinn_gmnm.cli.main import app

runner = CliRunner()

# Adam until a 0.3 s budget runs out: a run that stops early and can be continued.
BUDGETED = ["--model", "mlp", "--width", "6", "--depth", "1", "--method", "adam-lbfgs",
            "--adam-steps", "100000", "--lbfgs-steps", "0", "--points", "32",
            "--boundary-points", "2", "--budget", "0.3", "-q"]

PROBLEM_FILE = (
    "from pinn_gmnm import Dirichlet, Interval, Problem\n"
    "def bar():\n"
    "    '''u'' = 2 on [0, 1], u = x^2 at the ends.'''\n"
    "    return Problem(Interval(0, 1), lambda u, x: u.d('xx') - 2,\n"
    "                   [Dirichlet(lambda x: x[:, 0] ** 2)], exact=lambda x: x[:, 0] ** 2)\n"
)


def invoke(*args: str):
    return runner.invoke(app, list(args))


def only_dir(root: Path) -> Path:
    (d,) = [p for p in root.iterdir() if p.is_dir()]
    return d


@pytest.fixture
def stopped_run(tmp_path: Path, monkeypatch) -> Path:
    """A run of a problem in ``probs/base.py``, given by a relative path, that ran out of
    budget; afterwards the test is in another folder."""
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # imports torch._dynamo (seconds),
    # which would otherwise count as the first session's training time
    (tmp_path / "probs").mkdir()
    (tmp_path / "probs" / "base.py").write_text(PROBLEM_FILE)
    monkeypatch.chdir(tmp_path)
    r = invoke("solve", "probs/base.py:bar", *BUDGETED, "--out", "runs")
    assert r.exit_code == 0, r.output
    monkeypatch.chdir("/")
    return only_dir(tmp_path / "runs").resolve()


# --- portable runs ---------------------------------------------------------------------

def test_a_run_resumes_and_reruns_from_another_folder(stopped_run: Path, tmp_path: Path):
    config = json.loads((stopped_run / "config.json").read_text())
    assert config["problem"] == f"{tmp_path / 'probs' / 'base.py'}:bar"
    assert len(config["problem_sha256"]) == 64
    r = invoke("solve", "--resume", str(stopped_run), "--budget", "0.6", "-q")
    assert r.exit_code == 0, r.output
    r = invoke("solve", "--config", str(stopped_run / "config.json"), "--out",
               str(tmp_path / "again"), "-q")
    assert r.exit_code == 0, r.output


def test_a_changed_problem_file_is_refused_unless_accepted(stopped_run: Path, tmp_path: Path):
    source = tmp_path / "probs" / "base.py"
    source.write_text(PROBLEM_FILE.replace("- 2", "- 2.5"))
    for args in (["--resume", str(stopped_run), "--budget", "0.6"],
                 ["--config", str(stopped_run / "config.json"), "--out", str(tmp_path / "b")]):
        r = invoke("solve", *args, "-q")
        assert r.exit_code == 2, r.output
        assert f"problem file {source} has changed since the run" in r.output, r.output
        assert "--accept-changed-problem" in r.output and len(r.output.strip().splitlines()) == 1
    r = invoke("solve", "--resume", str(stopped_run), "--budget", "0.6", "--accept-changed-problem",
               "-q")
    assert r.exit_code == 0, r.output
    recorded = json.loads((stopped_run / "config.json").read_text())["problem_sha256"]
    assert recorded == hashlib.sha256(source.read_bytes()).hexdigest()  # the file as accepted
    r = invoke("solve", "--config", str(stopped_run / "config.json"), "--out", str(tmp_path / "c"),
               "-q")
    assert r.exit_code == 0, r.output


def test_a_resumed_summary_says_which_times_are_whose(stopped_run: Path):
    r = invoke("solve", "--resume", str(stopped_run), "--budget", "0.6")
    assert r.exit_code == 0, r.output
    assert "s this session (training " in r.output and " s in all sessions, " in r.output


def test_resume_refuses_out(stopped_run: Path, tmp_path: Path):
    r = invoke("solve", "--resume", str(stopped_run), "--out", str(tmp_path / "elsewhere"))
    assert r.exit_code == 2 and "--out cannot be changed" in r.output, r.output


# --- file permissions --------------------------------------------------------------------

@pytest.fixture
def umask():
    """``umask(mask)`` sets the process umask for the test."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask,expected", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_a_new_file_gets_the_mode_of_an_ordinary_open(tmp_path: Path, umask, mask, expected):
    umask(mask)
    atomic_write(tmp_path / "new.json", lambda f: f.write("{}"))
    assert mode(tmp_path / "new.json") == expected


def test_a_rewritten_file_keeps_its_mode(tmp_path: Path, umask):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    target.chmod(0o604)
    atomic_write(target, lambda f: f.write("new"))
    assert target.read_text() == "new" and mode(target) == 0o604


def test_run_artifacts_are_readable_by_others_under_a_umask_of_022(umask, stopped_run: Path):
    for path in stopped_run.iterdir():
        assert mode(path) == 0o644, path.name


# --- --out that cannot hold a run ------------------------------------------------------

@pytest.mark.parametrize("make,out,why", [
    (lambda d: (d / "afile").write_text(""), "afile", "is a file, not a folder"),
    (lambda d: (d / "afile").write_text(""), "afile/runs", "afile is a file, not a folder"),
    (lambda d: None, "/proc/gmnm-pde-runs", "cannot create"),
])
@pytest.mark.parametrize("command", [["solve", "poisson-1d"], ["compare", "poisson-1d"],
                                     ["fit", "bessel"]])
def test_an_unusable_out_is_refused_before_training(tmp_path: Path, make, out, why, command):
    make(tmp_path)
    r = invoke(*command, "--out", out, "-q")
    assert r.exit_code == 2, r.output
    assert r.output.startswith(f"error: --out {out}") and why in r.output, r.output
    assert "Errno" not in r.output and len(r.output.strip().splitlines()) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_a_read_only_out_is_refused(tmp_path: Path):
    (tmp_path / "ro").mkdir(mode=0o555)
    r = invoke("solve", "poisson-1d", "--out", "ro", "-q")
    assert r.exit_code == 2 and "--out ro: cannot write there" in r.output, r.output


def test_checking_out_leaves_no_folder_behind(tmp_path: Path):
    from pinn_gmnm.artifacts import check_out_folder

    check_out_folder(Path("new/runs"))
    assert not (tmp_path / "new").exists()


# --- one writer at a time -----------------------------------------------------------------

def test_a_run_directory_is_written_by_one_process_at_a_time(stopped_run: Path):
    from pinn_gmnm.lock import LOCK_NAME, RunLock

    with RunLock(stopped_run):
        r = invoke("solve", "--resume", str(stopped_run), "--budget", "0.6", "-q")
        assert r.exit_code == 2, r.output
        assert (f"run {stopped_run} is being written by process {os.getpid()} on "
                f"{socket.gethostname()}") in r.output, r.output
    assert not (stopped_run / LOCK_NAME).exists()
    r = invoke("solve", "--resume", str(stopped_run), "--budget", "0.6", "-q")
    assert r.exit_code == 0, r.output


def test_a_stale_lock_is_explained_and_taken_over(stopped_run: Path):
    from pinn_gmnm.lock import LOCK_NAME

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)
    (stopped_run / LOCK_NAME).write_text(json.dumps(
        {"pid": pid, "host": socket.gethostname(), "since": "2026-01-01 00:00:00"}))
    r = invoke("solve", "--resume", str(stopped_run), "--budget", "0.6", "-q")
    assert r.exit_code == 0, r.output
    assert (f"warning: took over the stale lock of process {pid} on {socket.gethostname()} "
            "(since 2026-01-01 00:00:00), which no longer holds it") in r.output, r.output
    assert not (stopped_run / LOCK_NAME).exists()


def test_a_fresh_run_holds_the_lock_while_it_trains(tmp_path: Path):
    from pinn_gmnm.config import RunConfig
    from pinn_gmnm.lock import LOCK_NAME
    from pinn_gmnm.run import run

    seen = []

    class Look:
        def on_record(self, row, task):
            if not seen:
                directory = only_dir(tmp_path / "runs")
                seen.append(json.loads((directory / LOCK_NAME).read_text()))

    cfg = RunConfig(problem="poisson-1d", model="mlp", model_options={"width": 6, "depth": 1},
                    method="adam-lbfgs", adam_steps=3, lbfgs_steps=0, interior=16, boundary=2)
    result = run(cfg, out=tmp_path / "runs", callbacks=[Look()])
    assert seen[0]["pid"] == os.getpid() and seen[0]["host"] == socket.gethostname()
    assert not (result.directory / LOCK_NAME).exists()
