"""``gmnm-pde tune``: a study end to end, resumed, and its one-line refusals."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pinn_gmnm.cli.main import app
from pinn_gmnm.models import MODELS, model_options

pytest.importorskip("optuna")

FAST = ["--method", "adam-lbfgs", "--adam-steps", "4", "--lbfgs-steps", "2", "--points", "32",
        "--boundary-points", "2", "--seeds", "1"]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def trials_in(out: Path) -> int:
    with sqlite3.connect(out / "tune.sqlite") as db:
        return db.execute("select count(*) from trials").fetchone()[0]


def test_two_trials_end_to_end_then_resume(tmp_path: Path):
    out = tmp_path / "cmp"
    r = invoke("tune", "poisson-1d", "--model", "mlp", "--trials", "2", "--out", str(out), *FAST)
    assert r.exit_code == 0, r.output
    assert trials_in(out) == 2
    best = json.loads((out / "tuned-poisson-1d-mlp.json").read_text())
    assert set(best["params"]) == {"lr", "width", "depth", "activation"}
    assert best["trials"] == 2 and set(best["seeds"]) == {"0"}
    # the same command with more trials continues the study: one more trial, not three
    r = invoke("tune", "poisson-1d", "--model", "mlp", "--trials", "3", "--out", str(out), *FAST)
    assert r.exit_code == 0, r.output
    assert trials_in(out) == 3 and "trial   2" in r.output and "trial   0" not in r.output
    with sqlite3.connect(out / "tune.sqlite") as db:  # resuming proposes new settings
        lrs = db.execute("select p.param_value from trial_params p join trials t using (trial_id) "
                         "where p.param_name = 'lr' order by t.number").fetchall()
    assert len({v for (v,) in lrs}) == 3
    best = json.loads((out / "tuned-poisson-1d-mlp.json").read_text())
    assert best["seconds"]["0"] > 0  # the best trial's own run is seed 0's, with its time
    # other settings do not silently join the study
    r = invoke("tune", "poisson-1d", "--model", "mlp", "--trials", "4", "--out", str(out),
               *FAST[:3], "9", *FAST[4:])
    assert r.exit_code == 2 and "other settings (adam_steps)" in r.output
    assert len(r.output.strip().splitlines()) == 1


@pytest.mark.parametrize("args,message", [
    (["--model", "mpl"], "unknown model 'mpl'"),
    (["--model", "gmnm", "--search", "lr,depth"], "model 'gmnm' has no tunable parameter 'depth'"),
])
def test_unknown_model_or_parameter_is_a_one_line_error(tmp_path: Path, args, message):
    r = invoke("tune", "poisson-1d", *args, "--trials", "2", "--out", str(tmp_path))
    assert r.exit_code == 2 and message in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "tune.sqlite").exists()


@pytest.mark.parametrize("name", [e.name for e in MODELS])
def test_search_spaces_name_model_options_or_the_learning_rate(name):
    search = MODELS.get(name).search
    assert search, name
    for param in search:
        assert param.name == "lr" or param.name in model_options(name), (name, param.name)


def test_a_missing_optuna_names_the_extra(monkeypatch):
    import sys

    from pinn_gmnm.errors import GMNMError
    from pinn_gmnm.tune import require_optuna

    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna: ImportError
    with pytest.raises(GMNMError, match=r"install the 'tune' extra"):
        require_optuna()


def test_compare_tuned_runs_each_model_with_its_tuned_settings(tmp_path: Path):
    out = tmp_path / "tuned"
    r = invoke("tune", "poisson-1d", "--model", "mlp", "--trials", "1", "--out", str(out), *FAST)
    assert r.exit_code == 0, r.output
    best = json.loads((out / "tuned-poisson-1d-mlp.json").read_text())["params"]
    r = invoke("compare", "poisson-1d", "--models", "mlp", "--seeds", "1", "--tuned", str(out),
               "--out", str(tmp_path / "cmp"), "-q", *FAST[:-2])
    assert r.exit_code == 0, r.output
    (run,) = (tmp_path / "cmp").glob("*/runs/mlp-seed0/config.json")
    config = json.loads(run.read_text())
    assert config["lr"] == best["lr"]
    assert {k: config["model_options"][k] for k in ("width", "depth", "activation")} == \
        {k: best[k] for k in ("width", "depth", "activation")}
    r = invoke("compare", "poisson-1d", "--models", "kan", "--tuned", str(out), "-q",
               "--out", str(tmp_path / "cmp2"))
    assert r.exit_code == 2 and "no tuned settings for model 'kan'" in r.output


def test_an_interrupted_run_stops_the_study_and_is_run_again_on_resuming(tmp_path, monkeypatch):
    """Ctrl-C ends the running trial early: its error is no result, so the study stops with
    a one-line message and the same command later runs that trial again."""
    import pinn_gmnm.run as run_module

    real, calls = run_module.run, []

    def interrupted_second_run(config, **kw):
        result = real(config, **kw)
        calls.append(config)
        return dataclasses.replace(result, signal="SIGINT") if len(calls) == 2 else result

    monkeypatch.setattr(run_module, "run", interrupted_second_run)
    out = tmp_path / "cmp"
    r = invoke("tune", "poisson-1d", "--model", "mlp", "--trials", "3", "--out", str(out), *FAST)
    assert r.exit_code == 2 and "interrupted by SIGINT after 1 complete trials" in r.output
    assert r.output.strip().splitlines()[-1].startswith("error")
    assert not (out / "tuned-poisson-1d-mlp.json").exists()
    r = invoke("tune", "poisson-1d", "--model", "mlp", "--trials", "3", "--out", str(out), *FAST)
    assert r.exit_code == 0, r.output
    assert json.loads((out / "tuned-poisson-1d-mlp.json").read_text())["trials"] == 3
    assert len(calls) == 1 + 1 + 2  # the interrupted trial was run again, not counted
