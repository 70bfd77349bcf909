"""Shared fixtures: fixed seeds, float64 helpers, a scratch run folder, a private
reference-solution cache (so tests never write to the user's cache), and the
stop-then-resume check the resume tests share."""

from __future__ import annotations

import pytest
import torch

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
