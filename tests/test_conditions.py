"""Conditions: each holds for an exact solution, each works with least squares (basis
fields with a leading dimension), and bad definitions fail early with the condition's name."""

from __future__ import annotations

import math

import pytest
import torch

from pinn_gmnm import (GMNM, Collocation, Data, Dirichlet, Disk, GMNMError, Initial, Interval,
                       LeastSquares, Neumann, Periodic, Problem, Rectangle, Robin, SpaceTime,
                       near, solve)
from pinn_gmnm.training import sample_batch

PI = math.pi


def _exact_condition_residuals(problem: Problem) -> list[float]:
    from test_problems import Exact

    batch = sample_batch(problem, Collocation(256, 256), seed=0)
    model = Exact(problem)
    out = []
    for c, x in zip(problem.conditions, batch.conditions):
        u = problem.field(model, x, closed_form=False)
        out.append(float(c.residual(u, x, problem.geometry).detach().abs().max()))
    return out


def mixed_box() -> Problem:
    """−Δu = 2π² u on [0, 1]², u = sin(πx) cos(πy) + x y: Dirichlet left/right,
    Neumann at the bottom, Robin (u + ∂u/∂n) at the top."""

    def exact(x):
        X, Y = x.T
        return torch.sin(PI * X) * torch.cos(PI * Y) + X * Y

    def dn_top(x):  # ∂u/∂y at y = 1
        X = x[:, 0]
        return -PI * torch.sin(PI * X) * math.sin(PI) + X

    lr = lambda x: near(x[:, 0], 0.0) | near(x[:, 0], 1.0)  # noqa: E731
    bottom = lambda x: near(x[:, 1], 0.0) & ~lr(x)  # noqa: E731
    top = lambda x: near(x[:, 1], 1.0) & ~lr(x)  # noqa: E731
    return Problem(
        Rectangle((0, 0), (1, 1)),
        lambda u, x: -u.laplacian() - 2 * PI**2 * torch.sin(PI * x[:, 0]) * torch.cos(PI * x[:, 1]),
        [Dirichlet(exact, on=lr), Neumann(lambda x: -x[:, 0], on=bottom),
         Robin(a=1.0, b=1.0, value=lambda x: exact(x) + dn_top(x), on=top)],
        exact=exact, linear=True, name="mixed")


def periodic_line() -> Problem:
    """−u'' + u = 2 sin x on [0, 2π], periodic: u = sin x."""
    return Problem(Interval(0, 2 * PI), lambda u, x: -u.d("xx") + u() - 2 * torch.sin(x[:, 0]),
                   [Periodic("x"), Periodic("x", order=1)],
                   exact=lambda x: torch.sin(x[:, 0]), linear=True, name="periodic")


def heat() -> Problem:
    """u_t = u_xx on [0, 1] × [0, 0.5], u = 0 at the ends, u(x, 0) = sin(πx)."""
    return Problem(SpaceTime(Interval(0, 1), (0, 0.5)), lambda u, x: u.d("t") - u.d("xx"),
                   [Dirichlet(0.0), Initial(lambda x: torch.sin(PI * x[:, 0]))],
                   exact=lambda x: torch.exp(-PI**2 * x[:, 1]) * torch.sin(PI * x[:, 0]),
                   linear=True, name="heat")


def wave() -> Problem:
    """u_tt = u_xx on [0, 1] × [0, 1], u(x, 0) = sin(πx), u_t(x, 0) = 0."""
    return Problem(SpaceTime(Interval(0, 1), (0, 1)), lambda u, x: u.d("tt") - u.d("xx"),
                   [Dirichlet(0.0), Initial(lambda x: torch.sin(PI * x[:, 0])),
                    Initial(0.0, order=1, name="velocity")],
                   exact=lambda x: torch.sin(PI * x[:, 0]) * torch.cos(PI * x[:, 1]),
                   linear=True, name="wave")


def data_only() -> Problem:
    """Laplace's equation with u known at scattered points instead of on the boundary."""
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(200, 2, generator=g, dtype=torch.float64)
    exact = lambda x: torch.exp(x[:, 0]) * torch.sin(x[:, 1])  # noqa: E731
    return Problem(Rectangle((0, 0), (1, 1)), lambda u, x: u.laplacian(),
                   [Data(points=pts, values=exact(pts))], exact=exact, linear=True, name="data")


CASES = [mixed_box, periodic_line, heat, wave, data_only]


@pytest.mark.parametrize("make", CASES)
def test_exact_solutions_satisfy_every_condition(make):
    assert max(_exact_condition_residuals(make())) < 1e-9


@pytest.mark.parametrize("make,tol", [(mixed_box, 1e-5), (periodic_line, 1e-6), (heat, 1e-4),
                                      (wave, 1e-3), (data_only, 1e-3)])
def test_least_squares_with_each_condition(make, tol):
    p = make()
    torch.manual_seed(0)
    model = GMNM(p.dim, components=150 if p.dim > 1 else 30, bounds=p.geometry.bbox)
    s = solve(p, model, stages=[LeastSquares()], collocation=Collocation(800, 200))
    assert s.metrics["rel_l2"] < tol, s.metrics


def test_periodic_pairs_opposite_faces():
    p = periodic_line()
    (x, _) = sample_batch(p, Collocation(16, 8), 0).conditions
    m = len(x) // 2
    assert (x[:m, 0] == 0).all() and (x[m:, 0] == 2 * PI).all()
    p2 = Problem(Disk((0, 0), 1), lambda u, x: u.laplacian(), [Periodic("x")], name="disk")
    with pytest.raises(GMNMError, match="periodic conditions need a box-shaped axis"):
        sample_batch(p2, Collocation(16, 64), 0)


def test_conditions_that_select_nothing_name_themselves():
    p = Problem(SpaceTime(Interval(0, 1), (0, 1)), lambda u, x: u.d("t"),
                [Initial(0.0, on=lambda x: x[:, 0] > 2, name="never")], name="t")
    with pytest.raises(GMNMError, match="condition 'never' selects none"):
        sample_batch(p, Collocation(16, 16), 0)
    with pytest.raises(GMNMError, match="obs: needs at least one point"):
        Data(points=torch.zeros(0, 2), values=torch.zeros(0), name="obs")
    with pytest.raises(GMNMError, match="obs: 3 points but values of shape"):
        Data(points=torch.zeros(3, 2), values=torch.zeros(2), name="obs")
    with pytest.raises(GMNMError, match="order must be 0"):
        Initial(0.0, order=2)
    p3 = Problem(Rectangle((0, 0), (1, 1)), lambda u, x: u.laplacian(), [Initial(0.0)], name="xy")
    with pytest.raises(GMNMError, match="need time as the last variable"):
        sample_batch(p3, Collocation(16, 16), 0)


def test_time_variable_must_come_last():
    with pytest.raises(GMNMError, match="last variable is time"):
        Problem(SpaceTime(Interval(0, 1), (0, 1)), lambda u, x: u.d("t"), variables=("t", "x"))


def test_a_system_of_two_outputs_solves_and_reports_each(tmp_path):
    """u' = v, −v' = π² sin(πx) on [0, 1], u = 0 at the ends: u = sin(πx), v = π cos(πx)."""
    from pinn_gmnm.plotting import plot_snapshots, plot_solution

    def exact(x):
        return torch.stack([torch.sin(PI * x[:, 0]), PI * torch.cos(PI * x[:, 0])], dim=1)

    p = Problem(Interval(0, 1),
                lambda u, x: [u.d("x") - u["v"](), -u["v"].d("x") - PI**2 * torch.sin(PI * x[:, 0])],
                [Dirichlet(0.0, output="u")], outputs=("u", "v"), exact=exact, linear=True,
                name="system")
    torch.manual_seed(0)
    s = solve(p, GMNM(1, 2, components=30, bounds=p.geometry.bbox), stages=[LeastSquares()],
              collocation=Collocation(200, 2))
    assert [h for h in s.history[-1] if h.startswith("loss_")] == ["loss_pde1", "loss_pde2",
                                                                   "loss_dirichlet"]
    assert s.metrics["rel_l2_u"] < 1e-6 and s.metrics["rel_l2_v"] < 1e-6
    plot_solution(p, s.model, tmp_path / "solution.png")
    timed = Problem(SpaceTime(Interval(0, 1), (0, 1)), lambda u, x: [u.d("t"), u["v"].d("t")],
                    outputs=("u", "v"), exact=lambda x: torch.ones(len(x), 2, dtype=x.dtype))
    plot_snapshots(timed, s.model.__class__(2, 2, components=4), tmp_path / "snapshots.png")
    assert (tmp_path / "solution.png").stat().st_size > 0
    assert (tmp_path / "snapshots.png").stat().st_size > 0
