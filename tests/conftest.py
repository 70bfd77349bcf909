"""Shared fixtures: fixed seeds, float64 helpers, a scratch run folder, and a private
reference-solution cache (so tests never write to the user's cache)."""

from __future__ import annotations

import pytest
import torch


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
