"""The model contract, the methods registry and the single source of options."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch
from typer.testing import CliRunner

from pinn_gmnm.cli.main import RESUME_OPTIONS, app
from pinn_gmnm.cli.options import config_fields, model_option_names
from pinn_gmnm.config import RunConfig
from pinn_gmnm.methods import METHODS, AdamLBFGSMethod, Steps
from pinn_gmnm.models import MODELS, build_model
from pinn_gmnm.models.contract import Capabilities, Surrogate, capabilities, linear_head_of, training_callbacks
from pinn_gmnm.models.hard import hard_constraint
from pinn_gmnm.models.kan import GridUpdates
from pinn_gmnm.problem import get_problem
from pinn_gmnm.run import stages_for
from pinn_gmnm.training import LBFGS, Adam, Collocation

MODEL_NAMES = [e.name for e in MODELS]
NETWORKS = [n for n in MODEL_NAMES if n != "fem"]  # fem: nodal values, no linear head
WRAPPERS = {"plain": lambda problem, model: model, "hard": hard_constraint}


def _build(name: str, wrapper: str):
    problem = get_problem("poisson")
    model = build_model(name, problem.dim, problem.n_outputs, bounds=problem.geometry.bbox)
    return problem, model, WRAPPERS[wrapper](problem, model)


@pytest.mark.parametrize("wrapper", list(WRAPPERS))
@pytest.mark.parametrize("name", NETWORKS)
def test_declared_capabilities_survive_every_wrapper(name, wrapper):
    problem, inner, model = _build(name, wrapper)
    assert isinstance(model, Surrogate)
    assert (model.in_features, model.out_features) == (problem.dim, problem.n_outputs)
    mine, theirs = capabilities(model), capabilities(inner)
    assert mine.least_squares_by_default == theirs.least_squares_by_default
    assert mine.fixed_method == theirs.fixed_method
    assert [type(c) for c in training_callbacks(model)] == \
        [type(c) for c in training_callbacks(inner)]
    # Each model with a linear output layer says so; the hard-constraint transform has
    # none (its output is not features @ W + b) and computes derivatives by autograd.
    # gmnm-net's derivatives come from autograd.
    assert theirs.linear_head and theirs.closed_form == (name != "gmnm-net")
    assert mine.linear_head == (wrapper == "plain")
    assert mine.closed_form == (wrapper == "plain" and theirs.closed_form)


def test_what_each_model_declares():
    caps = {n: capabilities(_build(n, "plain")[1]) for n in MODEL_NAMES}
    assert caps["pinn"].fixed_method == AdamLBFGSMethod(lr=1e-3, decay=False, history=100)
    assert all(caps[n].fixed_method is None for n in ("gmnm", "gmnm-net", "mlp", "kan"))
    assert not caps["kan"].least_squares_by_default
    assert all(caps[n].least_squares_by_default for n in ("gmnm", "mlp", "pinn"))
    assert caps["fem"] == Capabilities(linear_head=False, closed_form=False,
                                       least_squares_by_default=False,
                                       fixed_method=METHODS.get("fem"))


def test_a_plain_torch_module_gets_the_defaults():
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    assert capabilities(net) == Capabilities(linear_head=False, closed_form=False,
                                             least_squares_by_default=True, fixed_method=None)
    assert linear_head_of(net) is None and training_callbacks(net) == []


@pytest.mark.parametrize("wrapper", list(WRAPPERS))
def test_the_pinn_recipe_holds_with_hard_constraints(wrapper):
    problem, _, model = _build("pinn", wrapper)
    method, stages = stages_for(RunConfig(model="pinn", hard=wrapper == "hard", method="varpro"),
                                problem, model)
    assert method == "adam-lbfgs"
    assert stages == [Adam(steps=1000, lr=1e-3, final_lr=None), LBFGS(steps=2000, history=100)]


def test_kan_grid_updates_act_under_hard_constraints():
    from pinn_gmnm import solve

    problem, kan, model = _build("kan", "hard")
    (callback,) = training_callbacks(model)
    assert isinstance(callback, GridUpdates) and callback.kan is kan
    before = kan.layers[0].grid.clone()
    solve(problem, model, stages=[Adam(steps=5, lr=1e-3)], eval_every=5,
          collocation=Collocation(64, 32))
    assert not torch.equal(before, kan.layers[0].grid)  # the knots moved to the points


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_specs_declare_the_class_defaults(name):
    """The registry's option defaults (shown in --help) are the model class's own."""
    spec = MODELS.get(name)
    params = inspect.signature(spec.load()).parameters
    for option in spec.options:
        assert params[option.name].default == option.default, option.name


def test_methods_read_only_step_settings_and_run_config_takes_their_defaults():
    steps = {f.name for f in dataclasses.fields(Steps)}
    for entry in METHODS:
        assert set(entry.obj.settings) <= steps, entry.name
        assert entry.obj.name == entry.name and entry.summary == entry.obj.description
    defaults = RunConfig()
    for f in dataclasses.fields(Steps):
        assert getattr(defaults, f.name) == f.default


def test_until_the_budget_needs_a_budget():
    from pinn_gmnm.errors import GMNMError

    with pytest.raises(GMNMError, match="no budget is set"):
        RunConfig(lbfgs_steps=None)
    assert RunConfig(lbfgs_steps=None, budget=5.0).lbfgs_steps is None
    with pytest.raises(GMNMError, match="adam_steps.* must be int"):
        RunConfig(adam_steps=None, budget=5.0)


def _solve_command():
    import typer.main

    return typer.main.get_command(app).commands["solve"]


COMMAND_ONLY = {"ctx", "problem", "set_", "out", "config", "resume", "quiet",
                "accept_changed_problem"}


def test_every_solve_option_has_one_source():
    """Each option of `solve` is a RunConfig field, a model option or one of the few
    options about the command itself; each RunConfig field with help is an option."""
    params = {p.name for p in _solve_command().params}
    fields = {f.name for f in config_fields()}
    models = set(model_option_names())
    assert not fields & models
    assert fields <= params and models <= params
    assert params - fields - models <= COMMAND_ONLY


def test_help_shows_the_run_config_defaults():
    command = _solve_command()
    for f in config_fields():
        (param,) = [p for p in command.params if p.name == f.name]
        shown = "none" if f.default is None else f"{f.default:g}" if isinstance(
            f.default, float) else "no" if f.default is False else str(f.default)
        assert f"[default: {shown}]" in param.help, f.name


def _value(param) -> list[str]:
    """The option given on the command line ("3" parses as int, float, text or path)."""
    return [param.opts[0]] if param.is_flag else [param.opts[0], "3"]


def test_resume_refuses_every_option_but_budget_and_quiet(tmp_path):
    command = _solve_command()
    runner = CliRunner()
    refused = [p for p in command.params
               if p.name not in RESUME_OPTIONS and p.opts[0].startswith("--")]
    assert len(refused) > 30
    for param in refused:
        r = runner.invoke(app, ["solve", "--resume", str(tmp_path), *_value(param)])
        assert r.exit_code == 2, (param.name, r.output)
        assert "cannot be changed" in r.output and param.opts[0] in r.output, r.output
    r = runner.invoke(app, ["solve", "poisson", "--resume", str(tmp_path)])
    assert "PROBLEM cannot be changed" in r.output
    r = runner.invoke(app, ["solve", "--resume", str(tmp_path), "--budget", "5", "-q"])
    assert "cannot be changed" not in r.output and "holds no model.pt" in r.output
    r = runner.invoke(app, ["solve", "--resume", str(tmp_path), "--accept-changed-problem"])
    assert "cannot be changed" not in r.output


def test_a_loss_knows_its_terms_and_weights_from_construction():
    """No hidden 'call it once first' state: names and weights are there at once, for
    systems too, and a weight for an unknown term fails at construction."""
    from pinn_gmnm.errors import GMNMError
    from pinn_gmnm.training import Loss, sample_batch

    problem = get_problem("poisson-neumann")
    loss = Loss(problem, sample_batch(problem, Collocation(32, 16), 0), {"flux": 3.0})
    assert loss.names == ["pde", "sides", "flux"] and loss.weights == [1.0, 1.0, 3.0]
    assert loss.weights_state() == [1.0, 1.0, 3.0]
    loss.load_weights_state([2.0, 1.0, 1.0])
    assert loss.weights == [2.0, 1.0, 1.0]
    with pytest.raises(GMNMError, match="unknown loss term 'flx'"):
        Loss(problem, sample_batch(problem, Collocation(32, 16), 0), {"flx": 1.0})
