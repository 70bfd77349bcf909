"""The flows of the catalogue (problems/flows.py): their exact solutions satisfy the
equations and conditions in float64 at other parameters than the defaults too, the
pressure is pinned, and a small model learns them."""

from __future__ import annotations

import math

import pytest
import torch

from pinn_gmnm import GMNM, Collocation, Data, GMNMError, LeastSquares, get_problem, solve
from pinn_gmnm.problems.flows import kovasznay_lambda
from test_problems import exact_residuals

FLOWS = ["kovasznay", "stokes", "taylor-green"]


@pytest.mark.parametrize("name, params", [
    ("kovasznay", {"re": 40.0}), ("kovasznay", {"re": 100.0}), ("stokes", {"nu": 0.01}),
    ("taylor-green", {"nu": 0.01, "t_end": 2.0}),
])
def test_exact_flows_satisfy_the_equations_and_conditions(name, params):
    pde, conditions = exact_residuals(get_problem(name, **params))
    assert pde < 1e-9 and conditions < 1e-12, (pde, conditions)


@pytest.mark.parametrize("name", FLOWS)
def test_flows_are_velocity_pressure_systems_with_a_pinned_pressure(name):
    p = get_problem(name)
    assert p.outputs == ("u", "v", "p")
    (pin,) = [c for c in p.conditions if isinstance(c, Data)]
    assert pin.output == "p"
    torch.testing.assert_close(pin.values, p.exact_values(pin.points)[:, 2], rtol=0, atol=0)
    assert bool(p.geometry.inside(pin.points).all())
    if p.geometry.time_dependent:  # p is free up to a function of time: pinned at every time
        assert pin.points[:, -1].unique().tolist() == pytest.approx([k / 10 for k in range(11)])


def test_kovasznay_decay_rate():
    assert kovasznay_lambda(40.0) == pytest.approx(20 - math.sqrt(400 + 4 * math.pi**2))
    assert kovasznay_lambda(20.0) == pytest.approx(-1.8101, abs=1e-4)  # the usual Re = 20 value


def test_stokes_pressure_has_mean_zero_and_the_walls_do_not_move():
    p = get_problem("stokes")
    n = 400
    s = (torch.arange(n, dtype=torch.float64) + 0.5) / n  # midpoint rule, exact for cosines
    x = torch.cartesian_prod(s, s)
    assert abs(float(p.exact_values(x)[:, 2].mean())) < 1e-12
    edges = torch.cat([torch.stack([s, torch.zeros(n, dtype=torch.float64)], 1),
                       torch.stack([torch.ones(n, dtype=torch.float64), s], 1)])
    assert float(p.exact_values(edges)[:, :2].abs().max()) < 1e-12


def test_taylor_green_decays_at_the_viscous_rate():
    nu = 0.05
    p = get_problem("taylor-green", nu=nu, t_end=2.0)
    g = torch.Generator().manual_seed(0)
    xy = 2 * math.pi * torch.rand(2000, 2, generator=g, dtype=torch.float64)
    energy = []
    for t in (0.0, 2.0):
        x = torch.cat([xy, torch.full((len(xy), 1), t, dtype=torch.float64)], dim=1)
        energy.append(float(p.exact_values(x)[:, :2].square().sum()))
    assert energy[1] / energy[0] == pytest.approx(math.exp(-4 * nu * 2.0), rel=1e-12)


@pytest.mark.parametrize("name, params, message", [
    ("kovasznay", {"re": 0.0}, "re must be a positive number"),
    ("stokes", {"nu": -1.0}, "nu must be a positive number"),
    ("taylor-green", {"t_end": 0.0}, "t_end must be a positive number"),
])
def test_bad_parameters_are_refused(name, params, message):
    with pytest.raises(GMNMError, match=message):
        get_problem(name, **params)


def test_stokes_is_learned_by_a_small_least_squares_fit():
    """One linear solve of a 200-Gaussian GMNM: velocity and pressure to a few 1e-4."""
    p = get_problem("stokes")
    torch.manual_seed(0)
    model = GMNM(2, 3, components=200, bounds=p.geometry.bbox)
    s = solve(p, model, stages=[LeastSquares()], collocation=Collocation(800, 200))
    m = s.metrics
    assert m["rel_l2_u"] < 1e-3 and m["rel_l2_v"] < 1e-3 and m["rel_l2_p"] < 1e-2, m
