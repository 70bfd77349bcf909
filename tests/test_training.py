"""Training: stages, least squares, end-to-end accuracy, determinism."""

from __future__ import annotations

import math

import pytest
import torch

from pinn_gmnm import (GMNM, LBFGS, MLP, Adam, Collocation, Dirichlet, GaussNewton, GMNMError, Grow,
                       Interval, LeastSquares, Problem, VarPro, get_problem, solve)
from pinn_gmnm.training import default_stages, stage_from_dict
from pinn_gmnm.training.compact import Compact
from pinn_gmnm.training.newton_refine import NewtonRefine


def test_gmnm_least_squares_solves_poisson_accurately():
    p = get_problem("poisson")
    s = solve(p, GMNM(2, bounds=p.geometry.bbox), stages=[LeastSquares()])
    assert s.metrics["rel_l2"] < 1e-5
    assert s.metrics["residual_rms"] < 1e-3


def test_default_stages_follow_linearity():
    p = get_problem("poisson")
    assert [type(s) for s in default_stages(p, GMNM(2))] == [Grow]  # least squares, grown
    nonlinear = Problem(Interval(0, 1), lambda u, x: u.d("xx") + u() ** 2, [Dirichlet(0.0)])
    stages = default_stages(nonlinear, GMNM(1))
    # a GMNM left short tries a compact mixture, then goes on finer, before all parameters move
    head, compact, finer, every = stages
    assert (type(head), head.head_only, type(compact), type(finer)) == \
        (GaussNewton, True, Compact, NewtonRefine)
    assert (type(every), every.head_only, every.if_fits) == (GaussNewton, False, True)
    assert not [s for s in default_stages(nonlinear, MLP(1, 1, 10, 2)) if isinstance(s, NewtonRefine)]
    big = MLP(1, 1, 100, 3)  # more parameters than Gauss–Newton takes: its output layer only
    assert [(type(s), s.head_only) for s in default_stages(nonlinear, big)] == [(GaussNewton, True)]
    plain = torch.nn.Sequential(torch.nn.Linear(1, 100), torch.nn.Tanh(), torch.nn.Linear(100, 100),
                                torch.nn.Tanh(), torch.nn.Linear(100, 1))  # no linear head declared
    assert [type(s) for s in default_stages(nonlinear, plain)] == [Adam, LBFGS]
    # not declared: detected from the residual
    undeclared = Problem(Interval(0, 1), lambda u, x: u.d("xx") + 1.0, [Dirichlet(0.0)])
    assert [type(s) for s in default_stages(undeclared, GMNM(1))] == [Grow]
    undeclared_nl = Problem(Interval(0, 1), lambda u, x: u.d("xx") + u() ** 2, [Dirichlet(0.0)])
    assert type(default_stages(undeclared_nl, GMNM(1))[0]) is GaussNewton


def test_varpro_lowers_the_loss():
    p = get_problem("poisson")
    torch.manual_seed(0)
    model = GMNM(2, components=49, bounds=p.geometry.bbox, width_factor=2.0)
    s = solve(p, model, stages=[LeastSquares(), VarPro(steps=30)],
              collocation=Collocation(400, 100))
    losses = [r["loss"] for r in s.history]
    assert losses[-1] < 0.5 * losses[0]


def test_adam_lbfgs_trains_an_mlp_on_poisson_1d():
    """The classic PINN recipe must reach a stated error on a small problem."""
    p = get_problem("poisson-1d")
    torch.manual_seed(0)
    s = solve(p, MLP(1, 1, 20, 2, bounds=p.geometry.bbox),
              stages=[Adam(steps=300, lr=1e-2, final_lr=1e-3), LBFGS(steps=300)],
              collocation=Collocation(128, 2))
    assert s.metrics["rel_l2"] < 1e-3


def test_least_squares_rejects_nonlinear_residuals():
    p = Problem(Interval(0, 1), lambda u, x: u.d("xx") + u() ** 2 - 1, [Dirichlet(0.0)],
                name="quad", linear=True)  # wrongly declared linear
    with pytest.raises(GMNMError, match="does not behave linearly"):
        solve(p, GMNM(1, components=10), stages=[LeastSquares()], collocation=Collocation(64, 2))
    p2 = Problem(Interval(0, 1), lambda u, x: u.d("xx") + u() ** 2, [Dirichlet(0.0)],
                 name="quad2", linear=False)
    with pytest.raises(GMNMError, match="nonlinear"):
        solve(p2, GMNM(1, components=10), stages=[LeastSquares()], collocation=Collocation(64, 2))


def test_budget_stops_training():
    p = get_problem("poisson")
    s = solve(p, MLP(2, bounds=p.geometry.bbox), stages=[Adam(steps=100000, lr=1e-3)],
              budget=1.0, collocation=Collocation(256, 64))
    assert s.train_time < 5 and s.metrics["steps"] < 100000


def test_history_records_loss_terms_and_errors():
    p = get_problem("poisson")
    s = solve(p, MLP(2, bounds=p.geometry.bbox), stages=[Adam(steps=20, lr=1e-3)],
              collocation=Collocation(128, 32), eval_every=10)
    assert len(s.history) == 20
    row = s.history[-1]
    assert {"stage", "step", "time", "loss", "loss_pde", "loss_dirichlet", "rel_l2"} <= set(row)
    assert not math.isnan(row["rel_l2"])
    for row in s.history:  # the loss and its terms come from one evaluation
        assert math.isclose(row["loss"], row["loss_pde"] + row["loss_dirichlet"], rel_tol=1e-12)


@pytest.mark.parametrize("make", [
    lambda p: (MLP(2, bounds=p.geometry.bbox), [Adam(steps=4, lr=1e-3), LBFGS(steps=4)]),
    lambda p: (GMNM(2, components=25, bounds=p.geometry.bbox),
               [LeastSquares(equilibrate=False), VarPro(steps=3, equilibrate=False)]),
    lambda p: (GMNM(2, components=16, bounds=p.geometry.bbox),
               [GaussNewton(steps=2, head_only=True, equilibrate=False),
                GaussNewton(steps=2, equilibrate=False)]),
], ids=["adam-lbfgs", "lstsq-varpro", "gauss-newton"])
def test_every_stage_records_the_weighted_sum_of_the_terms_it_logs(make):
    """Each history row's loss is Σ w_t · loss_t of the same row (terms are unweighted
    mean squares), whichever stage wrote it (with the given weights: equilibration, which
    rescales them, is off here and tested in test_equilibrate.py)."""
    p = get_problem("poisson")
    model, stages = make(p)
    s = solve(p, model, stages=stages, collocation=Collocation(128, 32),
              weights={"pde": 0.3, "dirichlet": 7.0})
    assert {r["stage"] for r in s.history} == {st.kind for st in stages}
    for row in s.history:
        assert math.isclose(row["loss"], 0.3 * row["loss_pde"] + 7.0 * row["loss_dirichlet"],
                            rel_tol=1e-12)


def test_loss_weights_by_term_name():
    p = get_problem("poisson")
    with pytest.raises(GMNMError, match="unknown loss term 'boundary'"):
        solve(p, GMNM(2, components=16), stages=[Adam(steps=1)], weights={"boundary": 10.0},
              collocation=Collocation(64, 16))


def test_same_seed_same_result():
    def once():
        p = get_problem("poisson")
        torch.manual_seed(3)
        m = MLP(2, 1, 10, 2, bounds=p.geometry.bbox)
        return solve(p, m, stages=[Adam(steps=15, lr=1e-2)], collocation=Collocation(64, 16),
                     seed=3).metrics["rel_l2"]

    assert once() == once()


def test_stage_specs_round_trip():
    for stage in (Adam(steps=5, lr=1e-3, final_lr=1e-4), LBFGS(steps=7), LeastSquares(),
                  VarPro(steps=3)):
        assert stage_from_dict(stage.to_dict()) == stage
    with pytest.raises(GMNMError, match="unknown training stage 'adma'"):
        stage_from_dict({"type": "adma"})
    with pytest.raises(GMNMError, match="must be a whole number"):
        Adam(steps=-1)
