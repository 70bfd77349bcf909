"""Sweeps on a cluster: `compare --into DIR --only MODEL:SEED` runs, then `compare --collect DIR`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pinn_gmnm.cli.main import app

runner = CliRunner()
SETTINGS = ["poisson", "--models", "gmnm,pinn", "--seeds", "1", "--params", "400", "--method",
            "adam-lbfgs", "--adam-steps", "5", "--lbfgs-steps", "5", "--points", "64",
            "--boundary-points", "16", "-q", "--device", "cpu"]
SAME = ("model", "seed", "status", "method", "training", "parameters", "rel_l2", "max_abs",
        "residual_rms", "steps")


def _compare(*args: str) -> str:
    r = runner.invoke(app, ["compare", *args])
    assert r.exit_code == 0, r.output
    return r.output


def _runs(directory: Path) -> list[tuple]:
    summary = json.loads((directory / "summary.json").read_text())
    return [tuple(run[k] for k in SAME) for run in summary["runs"]]


def test_only_runs_into_one_directory_collect_to_the_one_command_comparison(tmp_path):
    """Two --only commands into one directory, collected, give the numbers of one
    `compare` with the same settings (equal steps); until the second has run, its run is
    reported as missing."""
    sweep = tmp_path / "sweep"
    out = _compare(*SETTINGS, "--into", str(sweep), "--only", "pinn:0")
    assert "--collect" in out and not (sweep / "summary.md").exists()
    _compare("--collect", str(sweep))
    summary = json.loads((sweep / "summary.json").read_text())
    assert [(r["model"], r["status"]) for r in summary["runs"]] == [("gmnm", "missing"), ("pinn", "ok")]
    assert summary["stats"]["gmnm"]["missing"] == 1
    assert "| gmnm | 0 | missing |" in (sweep / "summary.md").read_text()

    _compare(*SETTINGS, "--into", str(sweep), "--only", "gmnm:0")
    _compare("--collect", str(sweep))
    _compare(*SETTINGS, "--out", str(tmp_path / "whole"))
    (whole,) = (tmp_path / "whole").iterdir()
    assert _runs(sweep) == _runs(whole)
    assert all(run[2] == "ok" for run in _runs(sweep))
    for name in ("convergence.png", "fields.png"):
        assert (sweep / name).stat().st_size > 0


@pytest.mark.parametrize("extra,message", [
    (["--only", "gmnm:3"], "--only gmnm:3 is not a run of this comparison; valid MODEL:SEED "
                           "pairs: gmnm:0, pinn:0"),
    (["--only", "kan:0"], "valid MODEL:SEED pairs: gmnm:0, pinn:0"),
    (["--only", "gmnm"], "--only expects MODEL:SEED, e.g. gmnm:0, got 'gmnm'"),
])
def test_a_run_outside_the_comparison_is_refused(tmp_path, extra, message):
    r = runner.invoke(app, ["compare", *SETTINGS, "--into", str(tmp_path / "s"), *extra])
    assert r.exit_code == 2 and message in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "s" / "plan.json").exists()


def test_other_settings_are_refused_by_a_shared_directory(tmp_path):
    """The first command's plan.json binds the directory; a command with other settings
    is refused before it trains, naming what differs."""
    from pinn_gmnm.cli.compare import _config
    from pinn_gmnm.compare import Comparison, plan
    from pinn_gmnm.sweep import claim_plan

    sweep = tmp_path / "s"
    base = _config("poisson", sets=[], seed=0, method="adam-lbfgs", adam_steps=5, lbfgs_steps=5,
                   interior=64, boundary=16, device="cpu")
    comparison = Comparison(base, ("gmnm", "pinn"), 1, 400)
    claim_plan(sweep, comparison, plan(comparison)[1])
    claim_plan(sweep, comparison, plan(comparison)[1])  # the same settings: accepted
    args = ["compare", *SETTINGS, "--into", str(sweep), "--only", "gmnm:0"]
    r = runner.invoke(app, [*args, "--adam-steps", "6"])
    assert r.exit_code == 2, r.output
    assert "holds a comparison with other settings (adam_steps: 5 there, 6 here)" in r.output
    assert len(r.output.strip().splitlines()) == 1 and not (sweep / "runs").exists()


def test_sweep_options_need_their_partners(tmp_path):
    for args, message in [
        (["compare", *SETTINGS, "--only", "gmnm:0"], "--only needs --into DIR"),
        (["compare", "--collect", str(tmp_path)], "holds no plan.json"),
        (["compare", "poisson", "--collect", str(tmp_path)], "give no PROBLEM ('poisson')"),
        (["compare"], "give a PROBLEM"),
        (["fit", "bessel", "xy", "--into", str(tmp_path)], "--into and --only take one fitting target"),
    ]:
        r = runner.invoke(app, args)
        assert r.exit_code == 2 and message in r.output, (args, r.output)


def test_the_cli_module_imported_twice_keeps_one_option_each():
    """torchrun launches `python -m pinn_gmnm.cli.main`; `compare` then imports the module
    again, which adds the derived options to the same functions a second time."""
    import inspect

    from pinn_gmnm.cli.compare import compare, compare_parameters
    from pinn_gmnm.cli.options import with_parameters

    before = list(inspect.signature(compare).parameters)
    with_parameters(compare, compare_parameters())
    assert list(inspect.signature(compare).parameters) == before


def test_fit_sweeps_one_target_the_same_way(tmp_path):
    sweep = tmp_path / "fit"
    r = runner.invoke(app, ["fit", "xy", "--models", "gmnm,mlp", "--seeds", "1", "--params", "200",
                            "--method", "adam-lbfgs", "--adam-steps", "3", "--lbfgs-steps", "2",
                            "--points", "64", "-q", "--device", "cpu", "--into", str(sweep),
                            "--only", "mlp:0"])
    assert r.exit_code == 0, r.output
    _compare("--collect", str(sweep))
    summary = json.loads((sweep / "summary.json").read_text())
    assert summary["fit"] and [r["status"] for r in summary["runs"]] == ["missing", "ok"]
