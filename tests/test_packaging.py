"""The distribution installs one top-level import name, pinn_gmnm, in wheels and in
editable installs, with the catalogue and CLI under it."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_catalogue_and_cli_live_under_pinn_gmnm():
    problems = importlib.import_module("pinn_gmnm.problems")
    cli = importlib.import_module("pinn_gmnm.cli.main")
    assert hasattr(problems, "poisson") and hasattr(cli, "app")


BUILD_INPUTS = ("pyproject.toml", "README.md", "pinn_gmnm", "problems", "cli")
"""What building the distribution reads from the checkout."""


def in_ci() -> bool:
    """True where CI says so (``CI=true``, as GitHub Actions, GitLab CI and .ci/run set)."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.mark.slow
def test_wheel_has_a_single_top_level_package(tmp_path: Path):
    # Built from a copy: setuptools writes build/ and *.egg-info next to the sources,
    # and a stale build/lib in the checkout would leak deleted files into later wheels.
    source = tmp_path / "source"
    source.mkdir()
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        message = f"could not build a wheel: {proc.stderr.strip()[-300:]}"
        if in_ci():  # CI must build the wheel it ships: there a failed build is a failure
            pytest.fail(message)
        pytest.skip(message + " (a failure when CI=true)")
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"pinn_gmnm"}
    assert "pinn_gmnm/problems/poisson.py" in names
    assert "pinn_gmnm/cli/main.py" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "gmnm-pde = pinn_gmnm.cli.main:main" in zipfile.ZipFile(wheel).read(entry).decode()
