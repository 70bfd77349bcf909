"""Equilibration: the loss terms scaled by their rows of the linear system."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from pinn_gmnm import GMNM, Collocation, Dirichlet, GaussNewton, Interval, LeastSquares, Problem
from pinn_gmnm import get_problem, solve
from pinn_gmnm.evaluation import Evaluator
from pinn_gmnm.training import Loss, sample_batch
from pinn_gmnm.training.equilibrate import apply_term_scales
from pinn_gmnm.training.linear import (equilibrate_linear, equilibrated_fit, fit_head,
                                       linear_head)
from pinn_gmnm.training.task import Clock, Task


def _events(solution, kind="equilibrated"):
    return [e for e in solution.events if e["event"] == kind]


def test_row_scaling_leaves_the_minimiser_of_a_square_system_unchanged():
    """19 interior points + 2 ends = 21 equations for 20 Gaussians + bias: square and
    well conditioned, so its solution meets every equation whatever the row scaling."""
    p = get_problem("poisson-1d")
    torch.manual_seed(0)
    model = GMNM(1, components=20, bounds=p.geometry.bbox, width_factor=1.0)
    plain, scaled = copy.deepcopy(model), copy.deepcopy(model)
    points = Collocation(19, 2)
    a = solve(p, plain, stages=[LeastSquares(equilibrate=False)], collocation=points)
    b = solve(p, scaled, stages=[LeastSquares()], collocation=points)
    event, = _events(b)
    assert event["unknowns"] == 21 and event["rank"] == 21 and event["cond"] < 1e8
    scales = event["term_scales"]
    assert scales["pde"] < 1e-3 * scales["dirichlet"]  # the scaling is far from uniform
    head_a = torch.cat([plain.layer.weights.flatten(), plain.layer.bias]).detach()
    head_b = torch.cat([scaled.layer.weights.flatten(), scaled.layer.bias]).detach()
    assert float((head_a - head_b).norm() / head_a.norm()) < 1e-8
    assert math.isclose(a.metrics["rel_l2"], b.metrics["rel_l2"], rel_tol=1e-6)


def test_dense_solve_equilibrates_from_the_rows_it_solves():
    """equilibrated_fit builds the dense system's features once for the term scales and
    the solve; it must equal equilibrating and then solving, each building them."""
    p = get_problem("poisson")
    batch = sample_batch(p, Collocation(900, 200), 0).to(torch.float64, "cpu")
    torch.manual_seed(0)
    model = GMNM(2, components=64, bounds=p.geometry.bbox).double()
    results = []
    for together in (True, False):
        m = copy.deepcopy(model)
        loss = Loss(p, batch, {"dirichlet": 3.0})
        loss(m)
        task = Task(m, loss, list(m.parameters()), Clock(), Evaluator.for_problem(p))
        head = linear_head(m)
        if together:
            event, solution = equilibrated_fit(task, head, "test")
        else:
            event = equilibrate_linear(task, head, "test")
            solution = fit_head(loss, m, head)
        results.append((event["term_scales"], loss.weights, solution.theta, solution.rank))
    (scales_a, weights_a, theta_a, rank_a), (scales_b, weights_b, theta_b, rank_b) = results
    assert scales_a == scales_b and weights_a == weights_b and rank_a == rank_b
    assert weights_a[1] == 3.0 * scales_a["dirichlet"]  # (user weights kept on top)
    torch.testing.assert_close(theta_a, theta_b, rtol=0, atol=0)


def test_equilibration_changes_an_overdetermined_fit_and_helps_it():
    """With more equations than unknowns the scaling matters: poisson with the default
    GMNM gets at least 5x more accurate (measured: 3.6e-7 → 1.9e-8)."""
    p = get_problem("poisson")
    torch.manual_seed(0)
    model = GMNM(2, bounds=p.geometry.bbox)
    results = [solve(p, copy.deepcopy(model), stages=[LeastSquares(equilibrate=e)]).metrics["rel_l2"]
               for e in (False, True)]
    assert results[1] < results[0] / 5


def test_scales_do_not_depend_on_user_weights():
    p = get_problem("poisson-1d")
    runs = []
    for weights in ({}, {"dirichlet": 10.0}):
        torch.manual_seed(0)
        s = solve(p, GMNM(1, components=16, bounds=p.geometry.bbox), stages=[LeastSquares()],
                  collocation=Collocation(64, 2), weights=weights)
        runs.append(_events(s)[0]["term_scales"])
    assert runs[0] == runs[1]  # the user's weights multiply them (next test)


def test_loss_weights_are_user_weights_times_scales():
    p = get_problem("poisson-1d")
    batch = sample_batch(p, Collocation(32, 2), 0).to(torch.float64, "cpu")
    model = GMNM(1, components=8, bounds=p.geometry.bbox).double()
    loss = Loss(p, batch, {"dirichlet": 10.0})
    loss(model)
    task = Task(model, loss, list(model.parameters()), Clock(), Evaluator.for_problem(p))
    event = apply_term_scales(task, [32 * 4.0, 2 * 0.5], "test")
    assert event["term_scales"] == {"pde": 0.25, "dirichlet": 2.0}
    assert loss.weights == [0.25, 20.0] and loss.user_weights == [1.0, 10.0]


def test_gauss_newton_scales_like_least_squares_on_a_linear_problem():
    """The head Jacobian of a linear problem is its linear system: the same scales."""
    p = get_problem("poisson-1d")
    scales = []
    for stage in (LeastSquares(), GaussNewton(steps=1, head_only=True)):
        torch.manual_seed(0)
        s = solve(p, GMNM(1, components=16, bounds=p.geometry.bbox), stages=[stage],
                  collocation=Collocation(64, 2))
        scales.append(_events(s)[0]["term_scales"])
    for name in scales[0]:
        assert scales[1][name] == pytest.approx(scales[0][name], rel=1e-9)


def test_gauss_newton_equilibrated_on_a_nonlinear_problem():
    """−u'' + u³ = f with u = sin(πx) + 2 at the ends: the Dirichlet rows are O(1), the
    PDE rows O(1/σ²); scaled, Newton on the output layer still converges."""
    exact = lambda x: torch.sin(math.pi * x[:, 0]) + 2  # noqa: E731
    f = lambda x: math.pi**2 * torch.sin(math.pi * x[:, 0]) + exact(x) ** 3  # noqa: E731
    p = Problem(Interval(-1, 1), lambda u, x: -u.d("xx") + u() ** 3 - f(x), [Dirichlet(exact)],
                exact=exact, linear=False, name="cubic")
    torch.manual_seed(0)
    s = solve(p, GMNM(1, components=32, bounds=p.geometry.bbox),
              stages=[GaussNewton(steps=30, head_only=True)], collocation=Collocation(128, 2))
    event, = _events(s)
    assert event["term_scales"]["pde"] < event["term_scales"]["dirichlet"]
    assert s.metrics["rel_l2"] < 1e-5
