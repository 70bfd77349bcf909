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


@pytest.fixture
def runs(tmp_path):
    """A scratch folder for run directories."""
    return tmp_path / "runs"
