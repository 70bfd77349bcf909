"""The fem model: finite elements in the same runs, tables and files as the networks.

It solves the PDE the problem's residual states (read off by probing it), converges at
the elements' orders, refuses what it cannot solve in one line, loads back through
``load_solution``, and mesh files with a point field serve as references."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pinn_gmnm import (Dirichlet, GMNMError, Neumann, Problem, Rectangle, Robin, get_problem,
                       load_reference, load_solution, near)
from pinn_gmnm.config import RunConfig
from pinn_gmnm.run import run
from pinn_gmnm.cli.main import app
from pinn_gmnm.evaluation import Evaluator
from pinn_gmnm.fem.elliptic import solve_elliptic
from pinn_gmnm.fem.model import FEM
from pinn_gmnm.fem.operator import operator, unsupported

runner = CliRunner()


def fem_run(problem: str, order: int, size: float, out: Path | None = None, **params):
    config = RunConfig(problem=problem, params=params, model="fem",
                       model_options={"fem_order": order, "fem_size": size}, device="cpu")
    return run(config, out=out)


@pytest.mark.parametrize("order, size, bound", [(1, 0.05, 5e-3), (2, 0.1, 5e-4), (2, 0.05, 6e-5)])
def test_solves_poisson_to_the_stated_error(order, size, bound, runs):
    """P1 at h = 0.05: 3.4e-3 relative L2; P2 at h = 0.1: 3.0e-4, at h = 0.05: 3.9e-5.
    The parameter count is the number of degrees of freedom (P2: vertices + edges)."""
    result = fem_run("poisson", order, size, runs)
    metrics = json.loads((result.directory / "metrics.json").read_text())
    assert metrics["rel_l2"] < bound
    assert metrics["method"] == "fem" and metrics["steps"] == 1
    model = result.solution.model
    assert metrics["parameters"] == model.coefficients.numel() == len(model.nodes)
    assert {"solution.png", "model.pt", "config.json", "history.csv"} <= {
        p.name for p in result.directory.iterdir()}


@pytest.mark.parametrize("order, rate", [(1, 3.2), (2, 6.5)])
def test_the_error_falls_at_the_element_order_on_refinement(order, rate):
    """Halving h divides the L2 error at the evaluation points by about 4 (P1: h²) and
    8 (P2: h³), evaluated through the model's interpolation, not at the nodes."""
    problem = get_problem("poisson")
    errors = [fem_run("poisson", order, h).solution.metrics["rel_l2"] for h in (0.2, 0.1)]
    assert errors[0] / errors[1] > rate, errors
    assert problem.exact is not None


def mixed_problem() -> Problem:
    """−Δu + 2u_x + 3u = f on the unit square with u = eˣ sin y: Dirichlet on the sides,
    Neumann at the bottom, Robin (u + ∂u/∂n) at the top."""

    def exact(x):
        return torch.exp(x[:, 0]) * torch.sin(x[:, 1])

    def residual(u, x):
        return -u.laplacian() + 2 * u.d("x") + 3 * u() - 5 * exact(x)

    sides = lambda x: near(x[:, 0], 0.0) | near(x[:, 0], 1.0)  # noqa: E731
    top = lambda x: near(x[:, 1], 1.0) & ~sides(x)  # noqa: E731
    bottom = lambda x: near(x[:, 1], 0.0) & ~sides(x)  # noqa: E731
    e = lambda x: torch.exp(x[:, 0])  # noqa: E731
    return Problem(Rectangle((0, 0), (1, 1)), residual,
                   [Dirichlet(exact, on=sides), Neumann(lambda x: -e(x), on=bottom),
                    Robin(a=1.0, b=1.0, value=lambda x: e(x) * (math.sin(1) + math.cos(1)), on=top)],
                   exact=exact, linear=True, name="mixed")


def test_reads_the_operator_off_the_residual_and_takes_neumann_and_robin_conditions():
    problem = mixed_problem()
    x = torch.rand(16, 2, dtype=torch.float64)
    op = operator(problem, x)
    assert op.a == pytest.approx(-1.0)
    np.testing.assert_allclose(op.b, np.tile([2.0, 0.0], (16, 1)), atol=1e-12)
    np.testing.assert_allclose(op.c, 3.0, atol=1e-12)
    np.testing.assert_allclose(op.r0, -5 * problem.exact(x).numpy(), atol=1e-12)
    errors = []
    for h in (0.1, 0.05):  # relative L2 through the interpolant; P2: h³
        fem = solve_elliptic(problem, order=2, size=h)
        model = FEM(2, 1, fem_order=2, fem_size=h)
        model.set_solution(fem.nodes, fem.cells, fem.values)
        with torch.no_grad():
            u = model(x := torch.rand(4000, 2, dtype=torch.float64))[:, 0]
        errors.append(float((u - problem.exact(x)).norm() / problem.exact(x).norm()))
    assert errors[1] < 2.5e-6 and errors[0] / errors[1] > 6, errors


@pytest.mark.parametrize("name, why", [
    ("burgers", "1-D in space"), ("poisson-3d", "3-D in space"), ("taylor-green", "time-dependent"),
    ("front", "no second derivatives"),
])
def test_a_problem_it_cannot_solve_is_one_line_on_the_command_line(name, why):
    r = runner.invoke(app, ["solve", name, "--model", "fem", "-q"])
    assert r.exit_code == 2
    assert why in r.output and "finite-element path solves" in r.output
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output


def test_nonlinear_and_third_order_residuals_are_refused():
    square = Rectangle((0, 0), (1, 1))
    cubic = Problem(square, lambda u, x: -u.laplacian() + u() ** 3, [Dirichlet(0.0)])
    advective = Problem(square, lambda u, x: -u.laplacian() + u() * u.d("x"), [Dirichlet(0.0)])
    third = Problem(square, lambda u, x: u.d("xxx") + u.laplacian(), [Dirichlet(0.0)])
    anisotropic = Problem(square, lambda u, x: u.d("xx") + 2 * u.d("yy"), [Dirichlet(0.0)])
    assert "not linear" in unsupported(cubic)
    assert "not linear" in unsupported(advective)
    assert "order three" in unsupported(third)
    assert "multiple of the Laplacian" in unsupported(anisotropic)
    assert unsupported(get_problem("poisson-holes")) is None


def test_compare_reports_fem_as_not_applicable_where_it_cannot_solve(tmp_path):
    r = runner.invoke(app, ["compare", "heat-1d", "--models", "fem", "--seeds", "1", "-q",
                            "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    summary = next(tmp_path.glob("compare-heat-1d-*")) / "summary.md"
    text = summary.read_text()
    assert "not applicable: problem 'heat-1d' is 1-D in space" in text
    r = runner.invoke(app, ["compare", "poisson", "--models", "gmnm", "--fem-size", "0.1"])
    assert r.exit_code == 2 and "not compared" in r.output


def test_load_solution_evaluates_the_interpolant_anywhere(runs, tmp_path):
    result = fem_run("poisson-neumann", 1, 0.1, runs)
    loaded = load_solution(result.directory)
    assert isinstance(loaded.model, FEM) and loaded.model.solved
    x = Evaluator.for_problem(get_problem("poisson-neumann")).points[::40]
    torch.testing.assert_close(loaded(x), result.solution(x), rtol=0, atol=0)
    # at the nodes the interpolant is the nodal value
    nodes = loaded.model.nodes[:50]
    torch.testing.assert_close(loaded(nodes)[:, 0], loaded.model.coefficients[:50].detach())
    points = tmp_path / "points.csv"
    np.savetxt(points, x[:5].numpy(), delimiter=",")
    r = runner.invoke(app, ["predict", str(result.directory), "--points", str(points)])
    assert r.exit_code == 0 and len(r.output.strip().splitlines()) == 6


@pytest.mark.parametrize("suffix", [".vtu", ".vtk", ".msh"])
def test_a_mesh_file_with_a_point_field_is_a_reference(suffix, tmp_path, runs):
    """A FEM result written with meshio comes back as the reference: the same points and
    values, and a run measured against it gets the errors the exact solution gives."""
    import meshio

    fem = solve_elliptic(get_problem("poisson"), order=1, size=0.1)
    points = np.hstack([fem.nodes, np.zeros((len(fem.nodes), 1))])
    exact = get_problem("poisson").exact(torch.from_numpy(fem.nodes)).numpy()
    mesh = meshio.Mesh(points, [("triangle", fem.cells)], point_data={"u": exact, "w": 2 * exact})
    path = tmp_path / f"solution{suffix}"
    meshio.write(path, mesh, file_format="gmsh" if suffix == ".msh" else None)
    ref = load_reference(path, 2, 1, names=("u",))
    np.testing.assert_array_equal(ref.points, fem.nodes)
    np.testing.assert_allclose(ref.values[:, 0], exact, rtol=1e-12 if suffix != ".vtk" else 1e-6)
    with pytest.raises(GMNMError, match="cannot tell which point field"):
        load_reference(path, 2, 1, names=("v",))
    config = RunConfig(problem="poisson", model="fem", model_options={"fem_size": 0.2},
                       reference=str(path), device="cpu")
    measured = run(config, out=None).solution.metrics["rel_l2"]
    assert 0 < measured < 2e-3


def test_parabolic_problems_step_in_time_by_crank_nicolson():
    """u_t − Δu = xy with u = (1 + t) x y on the boundary and at t = 0: P2 holds xy and
    Crank–Nicolson is exact for data linear in t, so the solution is exact to rounding;
    the source and the boundary values are taken at every step."""
    from pinn_gmnm import Initial, SpaceTime

    def exact(x):
        return (1 + x[:, 2]) * x[:, 0] * x[:, 1]

    problem = Problem(SpaceTime(Rectangle((0, 0), (1, 1)), (0, 1)),
                      lambda u, x: u.d("t") - u.laplacian() - x[:, 0] * x[:, 1],
                      [Dirichlet(exact), Initial(exact)], exact=exact, linear=True, name="linear-t")
    assert unsupported(problem) is None
    fem = solve_elliptic(problem, order=2, size=0.25)
    assert fem.values.shape == (len(fem.times), len(fem.nodes)) and len(fem.times) > 4
    model = FEM(3, 1, fem_order=2, fem_size=0.25)
    model.set_solution(fem.nodes, fem.cells, fem.values, fem.times)
    x = torch.rand(500, 3, dtype=torch.float64)
    with torch.no_grad():
        assert float((model(x)[:, 0] - exact(x)).abs().max()) < 1e-10
    again = FEM(3, 1, fem_order=2, fem_size=0.25)  # a saved solution loads with its time steps
    again.load_state_dict(model.state_dict())
    torch.testing.assert_close(again(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("order, rate, bound", [(1, 3.0, 5e-3), (2, 6.0, 5e-5)])
def test_heat_2d_converges_at_the_element_order(order, rate, bound):
    """heat-2d against its Fourier-series reference: halving h (and Δt with it) divides
    the error by about 4 (P1) and 8 (P2); P2 at h = 0.05 is 4e-5 off."""
    errors = [fem_run("heat-2d", order, h).solution.metrics["rel_l2"] for h in (0.1, 0.05)]
    assert errors[0] / errors[1] > rate and errors[1] < bound, errors
