"""Gradient training that suits a mixture: per-group learning rates in Adam and the
scaled parametrisation of GMNM's projections."""

from __future__ import annotations

import pytest
import torch

from pinn_gmnm import GMNM, Adam, Collocation, GMNMError, GMNMLayer, get_problem, solve
from pinn_gmnm.models.gmnm_scaled import ScaledGMNMLayer
from pinn_gmnm.training import stage_from_dict


def test_parameter_groups_get_their_learning_rates_on_the_optimiser():
    model = GMNM(2, components=9)
    stage = Adam(lr=1e-2, group_lr={"means": 0.1, "layer.proj": 0.5, "w*": 3.0})
    opt = torch.optim.Adam(stage.param_groups(model, list(model.parameters())))
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    expected = {"means": 1e-3, "proj": 5e-3, "weights": 3e-2, "bias": 1e-2}
    for name, p in model.layer.named_parameters():
        assert lr_of[id(p)] == pytest.approx(expected[name]), name


def test_a_tiny_group_factor_keeps_that_group_still_in_training():
    p = get_problem("poisson-1d")
    model = GMNM(1, components=8, bounds=p.geometry.bbox)
    means, proj = model.layer.means.detach().clone(), model.layer.proj.detach().clone()
    solve(p, model, stages=[Adam(steps=5, lr=1e-2, group_lr={"means": 1e-9})],
          collocation=Collocation(32, 2))
    assert (model.layer.means - means).abs().max() < 1e-9
    assert (model.layer.proj - proj).abs().max() > 1e-4


def test_group_patterns_must_match_and_factors_be_positive():
    model = GMNM(1, components=4)
    with pytest.raises(GMNMError, match="'centres' match no trained parameter"):
        Adam(group_lr={"centres": 0.1}).param_groups(model, list(model.parameters()))
    with pytest.raises(GMNMError, match="means"):
        Adam(group_lr={"means": 0.0})
    stage = stage_from_dict({"type": "adam", "steps": 3, "group_lr": {"means": 0.1}})
    assert stage.group_lr == {"means": 0.1} and stage.to_dict()["group_lr"] == {"means": 0.1}


@pytest.mark.parametrize("d,o,m,k", [(1, 1, 5, None), (2, 3, 7, None), (3, 2, 6, 2)])
def test_scaled_projections_give_the_plain_function_for_equal_precisions(d, o, m, k):
    plain = GMNMLayer(d, o, m, k).double()
    scaled = ScaledGMNMLayer(d, o, m, k).double()
    with torch.no_grad():
        plain.proj.add_(0.3 * torch.randn_like(plain.proj))
        plain.weights.normal_()
        scaled.means.copy_(plain.means)
        scaled.weights.copy_(plain.weights)
        scaled.bias.copy_(plain.bias)
    scaled.set_projections(plain.proj)
    torch.testing.assert_close(scaled.precision(), plain.precision())
    x = torch.rand(40, d, dtype=torch.float64) * 2 - 1
    torch.testing.assert_close(scaled(x), plain(x), rtol=1e-12, atol=1e-12)
    names = {n for n, _ in scaled.named_parameters()}
    assert names == {"means", "log_scale", "directions", "weights", "bias"}


def test_scaled_gmnm_starts_as_the_plain_one_and_passes_gradcheck():
    torch.manual_seed(0)
    plain = GMNM(2, components=9).double()
    torch.manual_seed(0)
    scaled = GMNM(2, components=9, parametrisation="scaled").double()
    x = torch.rand(20, 2, dtype=torch.float64) * 2 - 1
    torch.testing.assert_close(scaled(x), plain(x))
    layer = scaled.layer
    with torch.no_grad():
        layer.directions.add_(0.2 * torch.randn_like(layer.directions))

    def f(log_scale, directions):
        with torch.nn.utils.stateless._reparametrize_module(
                layer, {"log_scale": log_scale, "directions": directions}):
            return layer(x[:5])

    assert torch.autograd.gradcheck(f, (layer.log_scale.detach().clone().requires_grad_(),
                                        layer.directions.detach().clone().requires_grad_()))
    with pytest.raises(GMNMError, match="known: plain, scaled"):
        GMNM(2, components=4, parametrisation="diagonal")


def test_a_fourth_order_problem_is_solved_by_least_squares_in_closed_form():
    """A clamped beam, u'''' = 24 on [0, 1] with u = u' = 0 at both ends (u = x²(1 − x)²):
    the Gaussians' fourth derivatives come in closed form, so the default method (least
    squares, grown) applies where it used to stop at second order."""
    from pinn_gmnm import Dirichlet, Interval, Neumann, Problem

    def exact(x):
        return x[:, 0] ** 2 * (1 - x[:, 0]) ** 2

    p = Problem(Interval(0, 1), lambda u, x: u.d("xxxx") - 24.0,
                [Dirichlet(0.0, name="ends"), Neumann(0.0, name="clamped")],
                exact=exact, linear=True)
    torch.manual_seed(0)
    r = solve(p, GMNM(1, 1, bounds=p.geometry.bbox, components=48))
    assert r.metrics["rel_l2"] < 1e-6
