"""Shared fixtures: fixed seeds, float64 helpers, a scratch run folder, a private
reference-solution cache (so tests never write to the user's cache), and the
stop-then-resume check the resume tests share."""

from __future__ import annotations

import os

import pytest
import torch

from pinn_gmnm.compare import usable_cores
from pinn_gmnm.interrupt import StopAfter


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(1234)


@pytest.fixture(autouse=True, scope="session")
def _reference_cache(tmp_path_factory):
    """References computed in this session are cached in a temporary folder."""
    mp = pytest.MonkeyPatch()
    mp.setenv("GMNM_PDE_CACHE", str(tmp_path_factory.mktemp("reference-cache")))
    yield
    mp.undo()


@pytest.fixture(autouse=True)
def _scratch_cwd(tmp_path, monkeypatch):
    """Every test runs in its own empty folder: default outputs (runs/) land there, and
    Python subprocesses (python -m …, python -c …) import the installed package rather
    than the checkout's source folder, which lacks pinn_gmnm.problems and pinn_gmnm.cli
    in a regular (non-editable) install."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def runs(tmp_path):
    """A scratch folder for run directories."""
    return tmp_path / "runs"


@pytest.fixture
def stop_and_resume():
    """``check(run, stop_at)``: runs ``run()`` whole, again stopped after ``stop_at`` steps,
    then resumed from the stopped state; asserts the stop took effect and the resumed run
    ends with the whole run's step count and bit-identical parameters. Returns (full,
    stopped, resumed) for further checks. ``run`` takes ``solve``'s keyword arguments."""
    def check(run, stop_at: int):
        full = run()
        stop = StopAfter(stop_at)
        stopped = run(stop=stop, callbacks=[stop])
        assert stopped.status == "interrupted" and stopped.metrics["steps"] < full.metrics["steps"]
        resumed = run(resume=stopped.state)
        assert resumed.metrics["steps"] == full.metrics["steps"]
        for a, b in zip(full.model.parameters(), resumed.model.parameters()):
            assert torch.equal(a, b)
        return full, stopped, resumed
    return check


MAX_WORKERS = 4
"""Test processes at most (``-n auto`` in pyproject.toml): one per core, each with one
torch thread. On a 2-core machine the suite took 568 s this way against 819 s in one
process with torch's two threads (2026-12-02): most tests spend their time in Python and
small tensors, where a second thread gains little; two workers with two threads each
spin against each other and took longer than one process. Capped so that a many-core
machine does not hold dozens of torch imports in memory."""


def pytest_xdist_auto_num_workers(config) -> int:
    return min(MAX_WORKERS, usable_cores())


def pytest_configure(config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):  # a worker: one thread, its subprocesses too
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)
