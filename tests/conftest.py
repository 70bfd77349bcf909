"""Shared fixtures: fixed seeds, float64 helpers, a scratch run folder."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(1234)


@pytest.fixture
def runs(tmp_path):
    """A scratch folder for run directories."""
    return tmp_path / "runs"
