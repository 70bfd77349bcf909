"""Bad values, whoever brings them: metrics that are not finite are reported as such,
config values of the wrong type, references with missing or infinite values or damaged
files, exact solutions of the wrong shape and sizes that cannot fit in memory are refused
with one line (exit 2), and the CLI's own parse errors are one line too."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pinn_gmnm import (GMNM, Collocation, Dirichlet, GMNMError, Interval, LeastSquares, Problem,
                       Reference, load_reference, solve)
from pinn_gmnm.cli.main import app
from pinn_gmnm.config import RunConfig

runner = CliRunner()

TINY = ["--components", "6", "--varpro-steps", "0", "--points", "32", "--boundary-points", "2",
        "-q"]


def invoke(*args: str):
    return runner.invoke(app, list(args))


def one_line_error(r, code: int = 2) -> str:
    assert r.exit_code == code, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    assert "Traceback" not in r.output
    return lines[0]


def square(u, x):
    return u.d("xx") - 2


def exact(x):
    return x[:, 0] ** 2


def problem(**kw) -> Problem:
    return Problem(**{"geometry": Interval(0, 1), "residual": square,
                      "conditions": [Dirichlet(exact)], "exact": exact, "linear": True, **kw})


def quick_solve(p: Problem):
    torch.manual_seed(0)
    return solve(p, GMNM(1, components=6, bounds=p.geometry.bbox), stages=[LeastSquares()],
                 collocation=Collocation(32, 2))


def refused_then_solved(tmp_path: Path, module: str, source: str, broken: str, fixed: str) -> str:
    """Write ``source`` as ``module``.py: its problem ``broken`` is refused with one line
    (returned), its problem ``fixed`` solves."""
    (tmp_path / f"{module}.py").write_text(source)
    message = one_line_error(invoke("solve", f"{module}.py:{broken}", *TINY, "--out", "runs"))
    r = invoke("solve", f"{module}.py:{fixed}", *TINY, "--out", "runs")
    assert r.exit_code == 0, r.output
    return message


# --- a problem that calls torch.autograd itself ------------------------------------------

OWN_AUTOGRAD = (
    "import torch\n"
    "from pinn_gmnm import Dirichlet, Interval, Problem\n"
    "def source(x):\n"
    "    '''2 = (x^2)'' by autograd, as a user may compute a manufactured source.'''\n"
    "    x = x.detach().clone().requires_grad_(True)\n"
    "    g = torch.autograd.grad((x[:, 0] ** 2).sum(), x, create_graph=True)[0]\n"
    "    return torch.autograd.grad(g.sum(), x)[0][:, 0]\n"
    "def fixed(x):\n"
    "    with torch.enable_grad():\n"
    "        return source(x)\n"
    "def _square(f):\n"
    "    return Problem(Interval(0, 1), lambda u, x: u.d('xx') - f(x),\n"
    "                   [Dirichlet(lambda x: x[:, 0] ** 2)], exact=lambda x: x[:, 0] ** 2,\n"
    "                   linear=True)\n"
    "def sq():\n"
    "    return _square(source)\n"
    "def sq_fixed():\n"
    "    return _square(fixed)\n"
)


def test_a_residual_that_calls_autograd_is_told_to_enable_it(tmp_path: Path):
    """Residuals are evaluated with gradients off (closed-form derivatives): torch's own
    message says nothing of that, so the error says what to wrap, and the wrapped
    problem solves."""
    message = refused_then_solved(tmp_path, "own", OWN_AUTOGRAD, "sq", "sq_fixed")
    assert "torch.enable_grad()" in message and "does not require grad" in message


# --- a residual that indexes u.grad() along its first axis ------------------------------

FIRST_AXIS = (
    "import torch\n"
    "from pinn_gmnm import Dirichlet, Problem, Rectangle\n"
    "def _problem(column):\n"
    "    # -Δu + u_x = 0 with u = 1 (the bias alone), u_x taken from u.grad()\n"
    "    return Problem(Rectangle((0, 0), (1, 1)),\n"
    "                   lambda u, x: -u.laplacian() + column(u.grad()),\n"
    "                   [Dirichlet(1.0)], exact=lambda x: torch.ones_like(x[:, 0]),\n"
    "                   linear=True)\n"
    "def first():\n"
    "    return _problem(lambda g: g[:, 0])\n"
    "def last():\n"
    "    return _problem(lambda g: g[..., 0])\n"
)


def test_a_residual_indexing_the_gradient_by_its_first_axis_is_told_why(tmp_path: Path):
    """On a basis field u.grad() is (B, n, d): u.grad()[:, 0] fails in torch with a message
    about sizes; the error says to index the last axis, and that version solves."""
    message = refused_then_solved(tmp_path, "axis", FIRST_AXIS, "first", "last")
    assert "u.grad()[..., 0]" in message and "size of tensor" in message


# --- a condition whose value has one column per output ----------------------------------

SYSTEM_VALUES = (
    "import torch\n"
    "from pinn_gmnm import Dirichlet, Interval, Problem\n"
    "def exact(x):\n"
    "    return torch.stack([x[:, 0] ** 2, x[:, 0]], 1)\n"
    "def residual(u, x):\n"
    "    return [u['u'].d('xx') - 2, u['v'].d('xx')]\n"
    "def both():\n"
    "    '''one Dirichlet condition handed the whole (n, 2) solution'''\n"
    "    return Problem(Interval(0, 1), residual, [Dirichlet(exact, name='ends')],\n"
    "                   outputs=('u', 'v'), exact=exact, linear=True)\n"
    "def each():\n"
    "    return Problem(Interval(0, 1), residual,\n"
    "                   [Dirichlet(lambda x: exact(x)[:, 0], output='u'),\n"
    "                    Dirichlet(lambda x: exact(x)[:, 1], output='v')],\n"
    "                   outputs=('u', 'v'), exact=exact, linear=True)\n"
)


def test_a_condition_value_with_a_column_per_output_is_explained(tmp_path: Path):
    """A system's exact solution passed whole to one condition gives (n, 2) values: torch's
    broadcasting error said nothing of conditions, so the message names the condition, the
    shape and the fix (one condition per output), and the fixed problem solves."""
    message = refused_then_solved(tmp_path, "system", SYSTEM_VALUES, "both", "each")
    assert "condition 'ends'" in message and "shape (" in message and "output=" in message


# --- metrics that are not finite --------------------------------------------------------

LOG_AT_ZERO = (
    "import torch\n"
    "from pinn_gmnm import Dirichlet, Interval, Problem\n"
    "def logp():\n"
    "    '''u'' = 2 + 0 log x: NaN at x = 0, which only the evaluation grid holds.'''\n"
    "    return Problem(Interval(0, 1), lambda u, x: u.d('xx') - 2 + 0 * torch.log(x[:, 0]),\n"
    "                   [Dirichlet(lambda x: x[:, 0] ** 2)], exact=lambda x: x[:, 0] ** 2,\n"
    "                   linear=True)\n"
)


def test_a_nan_residual_is_reported_as_such(tmp_path: Path):
    (tmp_path / "logp.py").write_text(LOG_AT_ZERO)
    r = invoke("solve", "logp.py:logp", *TINY, "--out", "runs")
    assert r.exit_code == 4, r.output
    assert "no exact or reference solution" not in r.output
    assert "residual RMS   not finite at 1 of 2001 evaluation points (x = 0)" in r.output, r.output
    assert "error: a metric is not finite" in r.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    (event,) = [e for e in metrics["events"] if e["event"] == "not finite"]
    assert event["metric"] == "residual_rms" and event["points"] == 1 and event["of"] == 2001
    assert event["where"] == {"x": [0.0, 0.0]} and event["examples"] == [[0.0]]
    assert 0 < event["elsewhere"] < 1  # the residual RMS over the other points


def test_a_nan_exact_solution_and_prediction_are_told_apart():
    p = problem(exact=lambda x: torch.where(x[:, 0] > 0.5, math.nan, x[:, 0] ** 2))
    s = quick_solve(p)
    assert math.isnan(s.metrics["rel_l2"]) and math.isnan(s.metrics["max_abs"])
    events = [e for e in s.events if e["event"] == "not finite"]
    assert {e["metric"] for e in events} == {"rel_l2", "max_abs"}
    assert all(e["cause"] == "exact solution" and e["points"] == 1000 for e in events)
    assert events[0]["where"] == {"x": [pytest.approx(0.5005), 1.0]}


# --- config values of the wrong type ------------------------------------------------------

@pytest.mark.parametrize("key,value,expected", [
    ("lr", "0.01", "float"),
    ("interior", 2.5, "int"),
    ("seed", 1.0, "int"),
    ("hard", "yes", "bool"),
    ("budget", "10", "float or null"),
    ("params", "k=2", "dict[str, Any]"),
    ("weights", {"pde": "1"}, "dict[str, float]"),
    ("stages", {"type": "adam"}, "list[dict[str, Any]] or null"),
    ("problem", 3, "str"),
])
def test_config_values_of_the_wrong_type_are_named(tmp_path: Path, key, value, expected):
    with pytest.raises(GMNMError) as info:
        RunConfig.from_dict({"problem": "poisson", key: value})
    assert str(info.value).startswith(
        f"config key '{key}' must be {expected}, got {json.dumps(value)} ({type(value).__name__})")
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"problem": "poisson", key: value}))
    assert f"config key '{key}'" in one_line_error(invoke("solve", "--config", str(path)))


def test_a_number_in_quotes_is_told_to_drop_them():
    with pytest.raises(GMNMError, match=r"write it without quotes"):
        RunConfig.from_dict({"lr": "0.01"})


# --- references with bad values or damaged files -------------------------------------------

def grid_reference(path: Path, values) -> Path:
    x = np.linspace(-1, 1, 11)
    X, Y = np.meshgrid(x, x, indexing="ij")
    np.savez(path, points=np.stack([X.ravel(), Y.ravel()], 1), values=values)
    return path


@pytest.mark.parametrize("values,message", [
    (np.full(121, np.nan), "has no finite values (all 121 points are NaN)"),
    (np.where(np.arange(121) < 3, np.inf, 0.0), "3 of 121 values are infinite"),
])
def test_references_without_usable_values_are_refused(tmp_path: Path, values, message):
    path = grid_reference(tmp_path / "ref.npz", values)
    line = one_line_error(invoke("solve", "poisson", "--reference", str(path), *TINY))
    assert message in line
    with pytest.raises(GMNMError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Reference(np.zeros((121, 2)), values)


def test_missing_reference_values_are_counted(tmp_path: Path):
    from pinn_gmnm.errors import GMNMWarning

    path = grid_reference(tmp_path / "ref.npz", np.where(np.arange(121) < 5, np.nan, 1.0))
    with pytest.warns(GMNMWarning, match="5 of 121 points of the reference have NaN values"):
        ref = load_reference(path, 2)
    assert len(ref.known()[0]) == 116


@pytest.mark.parametrize("content", [b"hello", b"PK\x03\x04" + b"garbage" * 10])
def test_a_damaged_npz_is_not_a_valid_npz(tmp_path: Path, content):
    path = tmp_path / "ref.npz"
    path.write_bytes(content)
    line = one_line_error(invoke("solve", "poisson", "--reference", str(path), *TINY))
    assert f"{path} is not a valid .npz file" in line and "pickle" not in line


def test_an_npz_of_python_objects_is_never_unpickled(tmp_path: Path):
    path = tmp_path / "ref.npz"
    np.savez(path, points=np.zeros((3, 2)), values=np.array([{}, {}, {}], dtype=object))
    line = one_line_error(invoke("solve", "poisson", "--reference", str(path), *TINY))
    assert "array 'values' holds Python objects, which are never unpickled" in line


# --- exact solutions and reference functions of the wrong shape -------------------------------

@pytest.mark.parametrize("wrong,shape", [
    (lambda x: torch.tensor(1.0, dtype=x.dtype), "()"),
    (lambda x: torch.cat([x[:, 0], x[:, 0]]), "(4002,)"),
    (lambda x: torch.stack([x[:, 0]] * 3, 1), "(2001, 3)"),
])
def test_an_exact_solution_of_the_wrong_shape_is_refused(wrong, shape):
    with pytest.raises(GMNMError, match=rf"exact solution has shape {re.escape(shape)} for 2001 "
                                        r"points; expected \(2001,\) or \(2001, 1\)"):
        quick_solve(problem(exact=wrong))


def test_an_exact_solution_of_another_dtype_is_refused():
    with pytest.raises(GMNMError, match=r"exact solution has dtype torch.float32, expected "
                                        r"torch.float64 \(the points' dtype\)"):
        quick_solve(problem(exact=lambda x: x[:, 0].float() ** 2))


def test_an_exact_solution_that_raises_names_the_place(tmp_path: Path):
    def broken(x):
        return x[:, 3]

    with pytest.raises(GMNMError, match=r"exact solution raised IndexError: .* line \d+\)"):
        quick_solve(problem(exact=broken))


def test_a_reference_function_of_the_wrong_size_is_refused():
    ref = Reference(np.zeros((4, 2)), np.zeros(4))
    with pytest.raises(GMNMError, match=r"the reference solution is 2-D with 1 value\(s\) per point; "
                                        r"the problem is 1-D"):
        quick_solve(problem(exact=None, reference=lambda: ref))


# --- sizes that cannot fit ------------------------------------------------------------------

def test_points_beyond_memory_are_refused_with_the_estimate():
    line = one_line_error(invoke("solve", "poisson", "--points", "1000000000000"))
    assert "needs about" in line and "available" in line and "--points" in line


def test_the_estimate_refuses_what_the_available_memory_cannot_hold(monkeypatch):
    import pinn_gmnm.memory as memory

    monkeypatch.setattr(memory, "available_memory", lambda device: (2**10, "test"))
    line = one_line_error(invoke("solve", "poisson-1d", *TINY))
    assert "needs about" in line and "1.0 KiB available (test)" in line


def test_the_estimate_grows_with_points_and_width():
    from pinn_gmnm.memory import estimate

    small = estimate(rows=1000, dim=2, width=100, parameters=700, least_squares=True,
                     gauss_newton=False, bytes_per_value=8)
    assert estimate(rows=2000, dim=2, width=100, parameters=700, least_squares=True,
                    gauss_newton=False, bytes_per_value=8).total > small.total
    assert estimate(rows=1000, dim=2, width=200, parameters=700, least_squares=True,
                    gauss_newton=True, bytes_per_value=8).total > small.total


# --- the CLI's own parse errors --------------------------------------------------------------

@pytest.mark.parametrize("args,text", [
    (["solve", "poisson", "--nosuch"], "(see gmnm-pde solve --help)"),
    (["solve", "poisson", "--points", "many"], "(see gmnm-pde solve --help)"),
    (["nosuchcommand"], "(see gmnm-pde --help)"),
    (["compare", "poisson", "--seeds"], "(see gmnm-pde compare --help)"),
])
def test_parse_errors_are_one_line(args, text):
    assert text in one_line_error(invoke(*args))


def test_scientific_notation_for_a_whole_number_is_explained():
    line = one_line_error(invoke("solve", "poisson", "--points", "1e12"))
    assert "'1e12'" in line and "write it as 1000000000000" in line


# --- smaller things -----------------------------------------------------------------------------

NO_CONDITIONS = (
    "from pinn_gmnm import Interval, Problem\n"
    "def free():\n"
    "    return Problem(Interval(0, 1), lambda u, x: u.d('xx') - 2, exact=lambda x: x[:, 0] ** 2,\n"
    "                   linear=True)\n"
)


def test_a_problem_without_conditions_is_warned_about(tmp_path: Path):
    from pinn_gmnm.errors import GMNMWarning

    with pytest.warns(GMNMWarning, match="has no conditions: its solution is not unique"):
        quick_solve(problem(conditions=[]))
    (tmp_path / "free.py").write_text(NO_CONDITIONS)
    r = invoke("solve", "free.py:free", *TINY, "--out", "runs")
    assert r.exit_code == 0, r.output
    assert "warning: problem 'free.py:free' has no conditions: its solution is not unique" in r.output


def test_fit_names_only_fitting_targets():
    line = one_line_error(invoke("fit", "nosuchtarget"))
    assert line.startswith("error: unknown fitting target 'nosuchtarget'; known: bessel, ")
    assert "poisson" not in line


def test_a_streamed_or_sparse_solve_is_not_charged_for_every_point_s_features(monkeypatch):
    """The large target (20 000 Gaussians in 3-D, 220 000 points) fits a 24 GiB machine
    with the sparse solver, which builds rows a few hundred at a time and evaluates its
    loss in pieces; the dense solve of the same run does not."""
    import pinn_gmnm.memory as memory
    from pinn_gmnm import GMNM, LeastSquares
    from pinn_gmnm.training.task import piece_rows

    monkeypatch.setattr(memory, "available_memory", lambda device: (24 << 30, "test"))
    model = GMNM(3, components=20000)
    common = dict(points=220000, outputs=1, dim=3, model=model, dtype=torch.float64,
                  device=torch.device("cpu"))
    memory.check_memory(stages=[LeastSquares(solver="sparse")], **common)
    with pytest.raises(GMNMError, match="needs about"):
        memory.check_memory(stages=[LeastSquares(solver="dense")], **common)
    with pytest.raises(GMNMError, match="needs about"):  # a block of 20 000 points at once
        memory.check_memory(stages=[LeastSquares(solver="streamed")], **common)
    assert piece_rows(20000, 3, 8) == 256 and piece_rows(100, 2, 8) == 16384


def test_a_model_with_an_empty_parameter_has_width_one():
    """The fem model holds a parameter of size 0 before it is solved: its loss is still
    evaluated (a width of 0 divided the piece size by zero)."""
    from pinn_gmnm.training.task import model_width

    empty = torch.nn.Module()
    empty.p = torch.nn.Parameter(torch.zeros(0))
    assert model_width(empty) == 1 and model_width(torch.nn.Linear(3, 40)) == 40
