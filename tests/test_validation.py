"""Bad input is caught before training, with a one-line message naming the bad value, what
was expected and a fix; the CLI exits non-zero and shows a traceback only with --debug."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pinn_gmnm import GMNM, MLP, Adam, Collocation, GMNMError, get_problem, solve
from pinn_gmnm.artifacts import load_checkpoint
from pinn_gmnm.cli.main import app

runner = CliRunner()
TINY = ["--points", "32", "--boundary-points", "8", "--components", "8", "--varpro-steps", "1", "-q"]

USER_FILE = '''\
import torch
from pinn_gmnm import Dirichlet, Interval, Problem, Rectangle, near


def ok():
    return Problem(Interval(0, 1), lambda u, x: u.d("xx") - 2, [Dirichlet(0.0)], linear=True)


def two_columns():
    return Problem(Interval(0, 1), lambda u, x: torch.stack([u(), u()], 1), [Dirichlet(0.0)])


def single_precision():
    return Problem(Interval(0, 1), lambda u, x: u.d("xx").float(), [Dirichlet(0.0)])


def number():
    return Problem(Interval(0, 1), lambda u, x: 1.0, [Dirichlet(0.0)])


def misspelt():
    return Problem(Interval(0, 1), lambda u, x: u.lapalcian(), [Dirichlet(0.0)])


def wrong_variable():
    return Problem(Interval(0, 1), lambda u, x: u.d("y"), [Dirichlet(0.0)])


def not_a_number():
    return Problem(Interval(0, 1), lambda u, x: u() / 0.0 * 0.0, [Dirichlet(0.0)])


def nowhere():
    far = lambda x: near(x[:, 0], 5.0)
    return Problem(Rectangle((0, 0), (1, 1)), lambda u, x: u.laplacian(), [Dirichlet(0.0, on=far)])


def strict(k: float = 1.0):
    if k < 0:
        raise ValueError("k must be >= 0")
    return ok()


def wrong_type():
    return 3


def two_exact_values():
    return Problem(Interval(0, 1), lambda u, x: u.d("xx"), [Dirichlet(0.0)],
                   exact=lambda x: torch.cat([x, x], 1))
'''


@pytest.fixture(scope="module")
def user_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("user") / "mine.py"
    path.write_text(USER_FILE)
    return path


def line_of(text: str) -> int:
    """The line of USER_FILE holding ``text``."""
    return next(i for i, line in enumerate(USER_FILE.splitlines(), 1) if text in line)


def invoke(*args: str):
    return runner.invoke(app, list(args))


def assert_one_line_error(r, message: str) -> None:
    assert r.exit_code == 2, r.output
    assert message in r.output, r.output
    assert "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1, r.output


@pytest.mark.parametrize("args,message", [
    (["--lr", "inf"], "learning rate must be a finite number, got inf"),
    (["--lr", "-1"], "learning rate must be positive, got -1.0"),
    (["--seed", "-1"], "seed must be a whole number from 0 to 2**32 - 1, got -1"),
    (["--boundary-points", "0"], "boundary points (--boundary-points) must be positive, got 0"),
    (["--adam-steps", "-5"], "adam steps must be a whole number >= 0, got -5"),
    (["--budget", "nan"], "budget (seconds) must be positive, got nan"),
    (["--width-factor", "0"], "width_factor must be positive"),
    (["--projections", "0"], "projections must be positive"),
    (["--set", "kk=2"], "unknown parameter of problem 'poisson' 'kk'; known: k (did you mean 'k'?)"),
    (["--device", "tpu"], "unknown device 'tpu'"),
])
def test_bad_options(args, message):
    assert_one_line_error(invoke("solve", "poisson", *TINY, *args), message)


def test_unknown_activation_suggests_the_closest():
    r = invoke("solve", "poisson", "--model", "mlp", "--activation", "tanhh", "-q")
    assert_one_line_error(r, "unknown activation 'tanhh'; known: gelu, relu, silu, sin, softplus, "
                             "tanh (did you mean 'tanh'?)")


@pytest.mark.parametrize("config,message", [
    ({"weights": {"pde": -1}}, "loss weight 'pde' must be a finite number >= 0, got -1"),
    ({"weights": {"dirichlett": 2.0}}, "unknown loss term 'dirichlett'; known: dirichlet, pde "
                                       "(did you mean 'dirichlet'?)"),
    ({"interior": -5}, "interior points (--points) must be positive, got -5"),
    ({"stages": [{"type": "adam", "lr": -1}]}, "learning rate must be positive, got -1"),
    ({"stages": [{"type": "adma"}]}, "unknown training stage 'adma'"),
    ({"modle": "mlp"}, "unknown config key 'modle'"),
])
def test_bad_config_files(tmp_path: Path, config, message):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"problem": "poisson", "interior": 32, "boundary": 8,
                                "model_options": {"components": 8}, **config}))
    assert_one_line_error(invoke("solve", "--config", str(path), "-q"), message)


@pytest.mark.parametrize("function,message", [
    ("two_columns", "mine.py:two_columns: residual has shape (32, 2), expected (32,): one value "
                    "per interior point"),
    ("single_precision", "residual has dtype torch.float32, expected torch.float64"),
    ("number", "residual must return tensors, got float"),
    ("misspelt", "AttributeError: 'Field' object has no attribute 'lapalcian' ({file} line "
                 f"{line_of('lapalcian')})"),
    ("wrong_variable", f"unknown variable 'y'; this problem's variables: x ({{file}} line "
                       f"{line_of('def wrong_variable') + 1})"),
    ("not_a_number", "the loss at the initial model is nan (terms not finite: pde)"),
    ("nowhere", "condition 'dirichlet' selects none of its candidate points (8 boundary points "
                 "drawn); check its 'on' predicate"),
    ("strict", f"building problem '{{spec}}' failed: ValueError: k must be >= 0 ({{file}} line "
               f"{line_of('raise ValueError')})"),
    ("wrong_type", "returned int, not a Problem"),
    ("two_exact_values", "exact solution has shape (2001, 2) for 2001 points; expected (2001,) or (2001, 1)"),
    ("two_colums", "unknown function in {file} 'two_colums'"),
])
def test_bad_user_problems(user_file: Path, runs: Path, function, message):
    spec = f"{user_file}:{function}"
    extra = ["--set", "k=-1"] if function == "strict" else []
    r = invoke("solve", spec, *extra, *TINY, "--out", str(runs))
    assert_one_line_error(r, message.format(file=user_file, spec=spec))
    assert not runs.exists() or not any(runs.iterdir()), "a failed check left a run directory"


def test_a_file_without_function_is_explained(user_file: Path):
    assert_one_line_error(invoke("solve", str(user_file), *TINY),
                          f"'{user_file}' is a file: add the function that builds the problem, "
                          f"e.g. {user_file}:my_problem")


def test_debug_shows_the_traceback_of_user_code(user_file: Path):
    r = runner.invoke(app, ["--debug", "solve", f"{user_file}:misspelt", *TINY])
    assert r.exit_code == 2
    assert "Traceback" in r.output and "lapalcian" in r.output


def test_model_and_problem_dimensions_must_match():
    p3 = get_problem("poisson-3d")
    fast = dict(stages=[Adam(steps=1)], collocation=Collocation(16, 8))
    # Models declare their input dimension (the model contract): checked before any evaluation.
    with pytest.raises(GMNMError, match=r"GMNM was built for 2 input\(s\), but problem "
                                        r"'poisson-3d' has 3 input variable\(s\) \(x, y, z\); "
                                        r"build it with in_features=3"):
        solve(p3, GMNM(2, components=4), **fast)
    with pytest.raises(GMNMError, match=r"MLP was built for 2 input\(s\), .* in_features=3"):
        solve(p3, MLP(2, 1, 4, 1), **fast)
    # A model that declares nothing is tried on a few points.
    net = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    with pytest.raises(GMNMError, match=r"Sequential cannot take this problem's points of shape "
                                        r"\(2, 3\): problem 'poisson-3d' has 3 input variable\(s\)"):
        solve(p3, net, **fast)
    with pytest.raises(GMNMError, match=r"gives outputs of shape \(2, 2\) for 2 points, but problem "
                                        r"'poisson-3d' has 1 output\(s\) \(u\): build it with out_features=1"):
        solve(p3, MLP(3, 2, 4, 1), **fast)
    layer = GMNM(2, components=4).layer  # has in_features: checked before any evaluation
    with pytest.raises(GMNMError, match=r"GMNMLayer was built for 2 input\(s\), but problem "
                                        r"'poisson-3d' has 3"):
        solve(p3, layer, **fast)


def test_bad_reference_files(tmp_path: Path):
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("x,y,u\n0,0,1\n1,0,2\n")  # 3 columns; poisson-1d needs 2
    text = tmp_path / "text.dat"
    text.write_text("% x u\n0 a\n")
    arrays = tmp_path / "arrays.npz"
    np.savez(arrays, x=np.zeros((3, 1)))
    for path, message in [
        (wrong, f"{wrong}: rows have 3 columns, expected 2 (1 coordinates, then 1 value(s))"),
        (text, f"{text}: not a table of numbers"),
        (tmp_path / "missing.csv", f"reference file not found: {tmp_path / 'missing.csv'}"),
        (arrays, f"{arrays}"),
    ]:
        assert_one_line_error(invoke("solve", "poisson-1d", "--reference", str(path), *TINY), message)


def test_files_that_are_not_checkpoints_are_refused(tmp_path: Path):
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    plain = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, plain)
    code = tmp_path / "code.pt"
    torch.save({"format": "gmnm-pde/checkpoint-v1", "x": Path("/")}, code)  # needs unpickling code
    with pytest.raises(GMNMError, match="cannot be read as one safely"):
        load_checkpoint(text)
    with pytest.raises(GMNMError, match="no 'gmnm-pde/checkpoint-v1' marker"):
        load_checkpoint(plain)
    with pytest.raises(GMNMError, match="cannot be read as one safely"):
        load_checkpoint(code)
    with pytest.raises(GMNMError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
