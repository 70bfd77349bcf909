"""The fem model on flows: steady (Navier–)Stokes read off the residual, solved by
Taylor–Hood elements (Newton for the convection), in the same runs as the networks.

The identification accepts the catalogue's steady flows and names what is wrong with a
system that is not one; Stokes and Kovasznay converge at the velocity's order h³; the
saved run loads back with its P1 pressure."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pinn_gmnm import Data, Dirichlet, Neumann, Problem, Rectangle, get_problem, load_solution
from pinn_gmnm.config import RunConfig
from pinn_gmnm.fem.flow_operator import flow
from pinn_gmnm.fem.navier_stokes import solve_flow
from pinn_gmnm.fem.operator import unsupported
from pinn_gmnm.run import run
from pinn_gmnm.sampling import Sobol

pytest.importorskip("skfem")

SQUARE = Rectangle((0, 0), (1, 1))
PIN = Data(points=torch.tensor([[0.5, 0.5]], dtype=torch.float64),
           values=torch.zeros(1, dtype=torch.float64), output="p", name="pressure")
WALLS = [Dirichlet(0.0, output="u"), Dirichlet(0.0, output="v")]


def system(residual, conditions=(*WALLS, PIN), outputs=("u", "v", "p")) -> Problem:
    return Problem(SQUARE, residual, list(conditions), outputs=outputs, name="system")


def navier_stokes(nu=0.1, nu_y=None, source=0.0, quadratic=False):
    """The residual of c (u·∇)u + ∇p − νΔu = 0, ∇·u = source, with a different ν in the
    y-equation or u² in place of u u_x when asked."""
    def residual(f, x):
        u, v, p = f["u"], f["v"], f["p"]
        conv_x = u() * u() if quadratic else u() * u.d("x") + v() * u.d("y")
        return [conv_x + p.d("x") - nu * u.laplacian(),
                u() * v.d("x") + v() * v.d("y") + p.d("y") - (nu_y or nu) * v.laplacian(),
                u.d("x") + v.d("y") - source]
    return residual


def points(problem, n=16):
    return problem.geometry.sample_interior(n, Sobol(), seed=0)


def test_the_catalogue_flows_are_recognised_from_their_residuals():
    kov, cavity, stokes = (get_problem(n) for n in ("kovasznay", "lid-driven-cavity", "stokes"))
    for problem, nu, c in ((kov, 1 / 20, 1.0), (cavity, 1 / 100, 1.0), (stokes, 1.0, 0.0)):
        fl = flow(problem, points(problem))
        assert (fl.velocity, fl.pressure) == ((0, 1), 2)
        assert fl.nu == pytest.approx(nu, rel=1e-12) and fl.convection == pytest.approx(c, abs=1e-12)
        assert unsupported(problem) is None
        assert "--fem-order 2" in unsupported(problem, 1)
    # Stokes's body force is −νΔu* + ∇p* of its exact solution, read off at the points
    x = points(stokes)
    fl = flow(stokes, x)
    xr = x.clone().requires_grad_(True)
    u, v, p = stokes.exact(xr).T
    grad = lambda f: torch.autograd.grad(f.sum(), xr, create_graph=True)[0]  # noqa: E731
    lap = lambda f: sum(grad(grad(f)[:, i])[:, i] for i in range(2))  # noqa: E731
    force = torch.stack([-lap(u) + grad(p)[:, 0], -lap(v) + grad(p)[:, 1]], 1)
    np.testing.assert_allclose(fl.force, force.detach().numpy(), rtol=1e-9, atol=1e-9)
    # outputs in another order and equations in another order are the same flow
    swapped = Problem(SQUARE, lambda f, x: navier_stokes()(f, x)[::-1], [*WALLS, PIN],
                      outputs=("p", "u", "v"))
    fl = flow(swapped, points(swapped))
    assert (fl.velocity, fl.pressure, fl.nu) == ((1, 2), 0, pytest.approx(0.1))


@pytest.mark.parametrize("problem, why", [
    (system(navier_stokes(source=1.0)), "source in its continuity equation"),
    (system(navier_stokes(quadratic=True)), "nonlinear in a way"),
    (system(navier_stokes(nu_y=0.2)), "y-momentum equation's coefficient of ∂²v/∂x²"),
    (system(navier_stokes(nu=-0.1)), "ν > 0"),
    (system(lambda f, x: [-f["u"].laplacian(), -f["v"].laplacian(), -f["p"].laplacian()]),
     "3 of its outputs have second derivatives"),
    (system(lambda f, x: [-f["u"].laplacian() + f["v"](), -f["v"].laplacian() + f["u"]()],
            conditions=WALLS, outputs=("u", "v")), "2 outputs"),
    (system(navier_stokes(), conditions=(*WALLS, Data(
        points=torch.tensor([[0.5, 0.5], [0.2, 0.2]], dtype=torch.float64),
        values=torch.zeros(2, dtype=torch.float64), output="p"))), "pressure at 2 points"),
    (system(navier_stokes(), conditions=(Dirichlet(0.0, output="u"),
                                         Neumann(0.0, output="v"), PIN)), "Neumann condition"),
    (get_problem("taylor-green"), "time-dependent system"),
])
def test_what_is_not_a_steady_flow_is_refused_in_one_line(problem, why):
    reason = unsupported(problem)
    assert reason is not None and why in reason and "\n" not in reason, reason
    assert unsupported(system(navier_stokes())) is None


def test_stokes_fem_run_reaches_its_error_and_loads_back(runs):
    """Taylor–Hood at h = 0.05: velocity 1.9e-4 and pressure 5.4e-3 relative L2 (P1),
    4460 degrees of freedom (2 × 1913 P2 nodes + 634 vertices)."""
    config = RunConfig(problem="stokes", model="fem", device="cpu",
                       model_options={"fem_order": 2, "fem_size": 0.05})
    result = run(config, out=runs)
    metrics = json.loads((result.directory / "metrics.json").read_text())
    assert metrics["method"] == "fem"
    fields = result.solution.metrics
    assert fields["rel_l2_velocity"] < 2.5e-4 and fields["rel_l2_p"] < 7e-3, fields
    model = result.solution.model
    vertices = int(model.cells[:, :3].max()) + 1
    assert metrics["parameters"] == model.coefficients.numel() == 2 * len(model.nodes) + vertices
    loaded = load_solution(result.directory)
    x = points(get_problem("stokes"), 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=1e-13)
    pin = torch.tensor([[0.5, 0.5]], dtype=torch.float64)   # the pinned pressure, exactly
    assert abs(float(loaded(pin)[0, 2]) - float(get_problem("stokes").exact(pin)[0, 2])) < 1e-12


def test_kovasznay_newton_converges_at_the_velocitys_order(monkeypatch):
    """Re = 20, h = 0.2 then 0.1: Newton from the Stokes solution takes five steps, and
    the velocity error falls by h³ (5.5e-3 and 1.3e-2, then 5.9e-4 and 1.0e-3)."""
    import scipy.sparse.linalg

    solves = []
    spsolve = scipy.sparse.linalg.spsolve
    monkeypatch.setattr(scipy.sparse.linalg, "spsolve",
                        lambda *a, **k: solves.append(1) or spsolve(*a, **k))
    problem = get_problem("kovasznay")
    lo, hi = problem.geometry.bbox
    x = torch.cartesian_prod(*(torch.linspace(a, b, 61, dtype=torch.float64)
                               for a, b in zip(lo, hi)))
    exact = problem.exact(x)[:, :2]
    errors = []
    for h in (0.2, 0.1):
        solves.clear()
        fem = solve_flow(problem, size=h)
        assert len(solves) <= 8, len(solves)            # the Stokes solve and Newton's steps
        loaded = as_model(fem)
        with torch.no_grad():
            errors.append(float((loaded(x)[:, :2] - exact).norm() / exact.norm()))
    assert errors[1] < 1.5e-3 and errors[0] / errors[1] > 6, errors


def as_model(fem):
    from pinn_gmnm.fem.model import FEM

    model = FEM(2, 3, fem_order=2)
    model.set_solution(fem.nodes, fem.cells, fem.values, orders=fem.orders)
    return model



def test_first_order_elements_for_a_flow_are_one_line_on_the_command_line():
    from typer.testing import CliRunner

    from pinn_gmnm.cli.main import app

    r = CliRunner().invoke(app, ["solve", "kovasznay", "--model", "fem", "--fem-order", "1", "-q"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "Taylor–Hood" in r.output and "use --fem-order 2" in r.output
    assert len(r.output.strip().splitlines()) == 1
