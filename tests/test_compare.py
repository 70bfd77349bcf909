"""Comparisons and function fitting: files, consistency of the numbers, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from pinn_gmnm.cli.main import app
from pinn_gmnm.compare import Comparison, plan, run_comparison
from pinn_gmnm.config import RunConfig
from pinn_gmnm.errors import GMNMError
from pinn_gmnm.evaluation import Evaluator
from pinn_gmnm.fitting import fit_problem, fit_targets
from pinn_gmnm.problem import PROBLEMS, get_problem
from pinn_gmnm.run import prepare

runner = CliRunner()
TINY = ["--points", "128", "--boundary-points", "48", "--adam-steps", "8", "--lbfgs-steps", "4",
        "--eval-every", "4", "-q"]
FILES = ("summary.md", "summary.json", "convergence.png", "fields.png")


def _only_dir(root: Path) -> Path:
    (d,) = [p for p in root.iterdir() if p.is_dir()]
    return d


def test_tiny_comparison_writes_every_file_with_consistent_numbers(runs: Path):
    r = runner.invoke(app, ["compare", "poisson", "--models", "gmnm,pinn", "--seeds", "1",
                            "--params", "400", "--out", str(runs), *TINY])
    assert r.exit_code == 0, r.output
    d = _only_dir(runs)
    for name in FILES:
        assert (d / name).stat().st_size > 0, name
    summary = json.loads((d / "summary.json").read_text())
    md = (d / "summary.md").read_text()
    assert summary["models"] == ["gmnm", "pinn"] and summary["target_parameters"] == 400
    for model in ("gmnm", "pinn"):
        run_dir = d / "runs" / f"{model}-seed0"
        metrics = json.loads((run_dir / "metrics.json").read_text())
        stats = summary["stats"][model]
        # The table's values are the per-run metrics (one seed: mean = the run, std = 0).
        assert stats["rel_l2"]["mean"] == metrics["rel_l2"]
        assert stats["max_abs"]["mean"] == metrics["max_abs"]
        assert stats["parameters"] == metrics["parameters"]
        assert abs(metrics["parameters"] - 400) <= 40
        assert f"{metrics['rel_l2']:.2e} ± 0.0e+00" in md
        assert f"| {model} | 0 | ok | {metrics['rel_l2']:.3e} |" in md
        assert (run_dir / "history.csv").is_file() and (run_dir / "config.json").is_file()
    assert summary["runs"][1]["method"] == "adam-lbfgs"
    assert "adam 8 (lr 0.001) → lbfgs 8" not in md and "adam 8 (lr 0.001) → lbfgs 4" in md
    best = summary["winners"]["rel_l2"]
    assert best == min(("gmnm", "pinn"), key=lambda m: summary["stats"][m]["rel_l2"]["mean"])
    assert "params" in r.output and "pinn" in r.output  # the table in the terminal


def test_mean_and_std_over_seeds_and_divergence_is_reported(runs: Path, monkeypatch):
    import pinn_gmnm.compare as compare

    real_run = compare.run
    calls = {"n": 0}

    def sometimes_nan(cfg, **kw):
        res = real_run(cfg, **kw)
        calls["n"] += 1
        if calls["n"] == 2:  # the second seed of the first model "diverges"
            res.solution.metrics["rel_l2"] = math.nan
        return res

    monkeypatch.setattr(compare, "run", sometimes_nan)
    base = RunConfig(problem="poisson-1d", interior=64, boundary=8, adam_steps=5, lbfgs_steps=3,
                     method="adam-lbfgs", eval_every=4)
    result = run_comparison(Comparison(base, ("mlp", "kan"), seeds=3, params=360), out=runs)
    summary = json.loads((result.directory / "summary.json").read_text())
    mlp = summary["stats"]["mlp"]
    assert (mlp["runs"], mlp["ok"], mlp["diverged"]) == (3, 2, 1)
    errors = [r["rel_l2"] for r in summary["runs"] if r["model"] == "mlp" and r["status"] == "ok"]
    assert mlp["rel_l2"]["mean"] == pytest.approx(sum(errors) / 2)
    assert mlp["rel_l2"]["std"] == pytest.approx(abs(errors[0] - errors[1]) / math.sqrt(2))
    md = (result.directory / "summary.md").read_text()
    assert "(1/3 diverged or failed)" in md and "| mlp | 1 | diverged |" in md
    assert summary["winners"]["rel_l2"] in ("kan", None)  # a model with a diverged seed never wins
    assert (result.directory / "fields.png").stat().st_size > 0  # 1D fields plot


def test_plan_matches_sizes_and_methods():
    base = RunConfig(problem="poisson", interior=64, boundary=16)
    problem, target, configs = plan(Comparison(base, seeds=2))
    # the default 2D GMNM sized to the 80 equations: 6² Gaussians, 2 equations per unknown
    assert target == 36 * 7 + 1 and len(configs) == 8
    methods = {c.model: c.method for c in configs}
    assert methods == {"gmnm": "auto", "pinn": "auto", "mlp": "lstsq", "kan": "auto"}
    assert prepare(next(c for c in configs if c.model == "kan"))[2] == "adam-lbfgs"
    assert [c.seed for c in configs[:2]] == [0, 1]
    _, _, configs = plan(Comparison(RunConfig(problem="poisson", method="adam-lbfgs"), ("gmnm", "kan")))
    assert {c.method for c in configs} == {"adam-lbfgs"}


def test_fit_run_is_supervised_with_a_disjoint_test_set(runs: Path):
    r = runner.invoke(app, ["fit", "xy", "--models", "gmnm,mlp", "--seeds", "1", "--params", "300",
                            "--points", "200", "--varpro-steps", "3", "--out", str(runs), "-q"])
    assert r.exit_code == 0, r.output
    d = _only_dir(runs)
    summary = json.loads((d / "summary.json").read_text())
    assert summary["fit"] is True and summary["settings"]["interior"] == 200
    m = json.loads((d / "runs" / "gmnm-seed0" / "metrics.json").read_text())
    assert summary["stats"]["gmnm"]["rel_l2"]["mean"] == m["rel_l2"] < 1e-3  # x·y is easy
    # The residual is u − f, so on the test grid residual RMS = ‖u − f‖/√n and
    # relative L2 = ‖u − f‖/‖f‖: their ratio is the RMS of f there (≈ 1/3 for x·y).
    f = Evaluator.for_problem(get_problem("xy")).exact
    assert m["residual_rms"] == pytest.approx(m["rel_l2"] * float(f.square().mean().sqrt()),
                                              rel=1e-9)
    assert "training set 200 points" in (d / "summary.md").read_text()


def test_catalogue_has_the_papers_targets_and_they_evaluate():
    names = fit_targets()
    for name in ("bessel", "exp-sin", "xy", "exp-sin-4d", "sines", "multiscale", "front"):
        assert name in names
        p = get_problem(name)
        x = torch.rand(10, p.dim, dtype=torch.float64) * 2 - 1
        assert p.exact_values(x).shape == (10, 1)
    x = torch.tensor([[0.1]], dtype=torch.float64)
    import scipy.special

    assert float(get_problem("bessel").exact(x)) == pytest.approx(scipy.special.j0(2.0), rel=1e-12)


def test_users_register_their_own_targets():
    from pinn_gmnm import register_target

    try:
        @register_target("ripple-test", dim=2)
        def ripple(x):
            """sin(5r)/(1 + r)."""
            r = x.norm(dim=1)
            return torch.sin(5 * r) / (1 + r)

        assert "ripple-test" in fit_targets()
        assert PROBLEMS.entry("ripple-test").summary == "sin(5r)/(1 + r)."
        assert get_problem("ripple-test").dim == 2
    finally:
        PROBLEMS._entries.pop("ripple-test", None)
    with pytest.raises(GMNMError, match="dimension must be positive"):
        fit_problem(lambda x: x[:, 0], 0)


def test_a_target_registered_in_a_users_file_is_found_by_its_function_or_its_name(tmp_path):
    from pinn_gmnm.fitting import is_fit_problem

    path = tmp_path / "targets.py"
    path.write_text("import torch\nfrom pinn_gmnm import register_target\n\n\n"
                    "@register_target('ripple-file', dim=3)\ndef ripple(x):\n"
                    "    return torch.sin(5 * x.norm(dim=1))\n")
    try:
        for spec in (f"{path}:ripple", f"{path}:ripple-file"):
            p = get_problem(spec)  # (was: "problem factory ripple: parameter 'x' needs a default")
            assert is_fit_problem(p) and p.dim == 3
        with pytest.raises(GMNMError, match="known: .*ripple-file"):
            get_problem(f"{path}:ripples")
    finally:
        PROBLEMS._entries.pop("ripple-file", None)


@pytest.mark.parametrize("args,message", [
    (["compare", "poisson", "--models", "gmnm,kam"], "unknown model 'kam'; known: fem, gmnm, gmnm-net, kan, mlp, pinn (did you mean 'kan'?)"),
    (["compare", "poisson", "--models", "gmnm,gmnm"], "models are listed twice"),
    (["compare", "poisson", "--models", ","], "give at least one model"),
    (["compare", "poisson", "--seeds", "0"], "seeds must be positive"),
    (["compare", "poisson", "--budget", "0"], "budget (seconds) must be positive"),
    (["compare", "poisson", "--params", "-5"], "target parameter count (--params) must be positive"),
    (["compare", "poisson", "--params", "3", "--models", "gmnm"], "cannot be sized to 3 parameters"),
    (["compare", "poison"], "unknown problem 'poison'"),
    (["compare", "poisson", "--method", "sgd"], "unknown method 'sgd'"),
    (["fit", "besel"], "did you mean 'bessel'"),
    (["fit", "poisson"], "'poisson' is a PDE problem, not a fitting target"),
    (["fit", "xy", "--seeds", "-1"], "seeds must be positive"),
])
def test_bad_input_gives_one_line_error(args, message):
    r = runner.invoke(app, args)
    assert r.exit_code == 2
    assert message in r.output, r.output
    assert "Traceback" not in r.output


@pytest.mark.slow
def test_parallel_jobs_give_the_sequential_results(tmp_path):
    """--jobs 2 runs the same configs in pinned worker processes; with equal steps every
    number equals the sequential run's to rounding (a worker has fewer threads, and the
    least-squares solve sums in another order)."""
    import json

    from typer.testing import CliRunner

    from pinn_gmnm.cli.main import app

    args = ["compare", "poisson", "--models", "gmnm,mlp", "--seeds", "2", "--method", "adam-lbfgs",
            "--adam-steps", "15", "--lbfgs-steps", "5", "--points", "150", "--boundary-points", "40",
            "-q", "--device", "cpu"]
    runs = {}
    for jobs in (1, 2):
        r = CliRunner().invoke(app, [*args, "--jobs", str(jobs), "--out", str(tmp_path / f"j{jobs}")])
        assert r.exit_code == 0, r.output
        (directory,) = (tmp_path / f"j{jobs}").iterdir()
        summary = json.loads((directory / "summary.json").read_text())
        runs[jobs] = [(x["model"], x["seed"], x["rel_l2"], x["max_abs"], x["steps"]) for x in summary["runs"]]
        assert len(list((directory / "runs").iterdir())) == 4
    for one, two in zip(runs[1], runs[2], strict=True):
        assert one[:2] == two[:2] and one[4] == two[4]
        assert one[2:4] == pytest.approx(two[2:4], rel=1e-10)


def test_a_budget_lets_the_last_stage_run_until_it_is_spent():
    """Equal wall clock: capped step counts would stop some models long before the budget
    (an unfair comparison); explicit steps are still honoured."""
    from pinn_gmnm.cli.compare import _config
    from pinn_gmnm.compare import Comparison, describe_stages
    from pinn_gmnm.methods import METHODS, Steps
    from pinn_gmnm.problem import get_problem
    from pinn_gmnm.models import build_model

    timed = _config("poisson", sets=[], budget=10.0, lbfgs_steps=None, varpro_steps=None)
    assert (timed.lbfgs_steps, timed.varpro_steps, timed.gn_steps) == (None,) * 3
    assert "until the budget" in Comparison(timed).budget_text
    stepped = _config("poisson", sets=[], budget=None, lbfgs_steps=None)
    assert (stepped.lbfgs_steps, stepped.varpro_steps) == (2000, 100)
    assert "until" not in Comparison(stepped).budget_text
    given = _config("poisson", sets=[], budget=10.0, lbfgs_steps=500, varpro_steps=7)
    assert (given.lbfgs_steps, given.varpro_steps) == (500, 7)
    problem = get_problem("poisson")
    model = build_model("gmnm", problem.dim, problem.n_outputs, bounds=problem.geometry.bbox)
    stages = METHODS.get("varpro").build(problem, model, Steps(varpro_steps=None))
    text = describe_stages(stages)
    assert text == "lstsq → varpro until budget"
