"""The distribution installs one top-level import name, pinn_gmnm, in wheels and in
editable installs, with the catalogue and CLI under it."""

from __future__ import annotations

import importlib
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


@pytest.mark.slow
def test_wheel_has_a_single_top_level_package(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"could not build a wheel here: {proc.stderr.strip()[-300:]}")
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"pinn_gmnm"}
    assert "pinn_gmnm/problems/poisson.py" in names
    assert "pinn_gmnm/cli/main.py" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "gmnm-pde = pinn_gmnm.cli.main:main" in zipfile.ZipFile(wheel).read(entry).decode()
