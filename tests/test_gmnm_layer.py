"""The GMNM layer against its formula, its gradients and its initialisation."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from pinn_gmnm import GMNM, GMNMLayer, count_parameters
from pinn_gmnm.derivatives import AutogradEngine


def formula(layer: GMNMLayer, x: torch.Tensor) -> torch.Tensor:
    """G(x) = Σ_i π_i exp(−½ ‖W_i (x − μ_i)‖²) + b, one component at a time."""
    out = layer.bias.expand(len(x), -1).clone()
    for i in range(layer.components):
        y = (x - layer.means[i]) @ layer.proj[i].T
        out = out + torch.exp(-0.5 * (y * y).sum(dim=1))[:, None] * layer.weights[i]
    return out


@pytest.mark.parametrize("d,o,m,k", [(1, 1, 5, None), (2, 3, 7, None), (3, 2, 6, 2), (2, 1, 4, 5)])
def test_layer_matches_formula(d, o, m, k):
    layer = GMNMLayer(d, o, m, k).double()
    with torch.no_grad():
        layer.proj.add_(0.3 * torch.randn_like(layer.proj))
        layer.weights.normal_()
        layer.bias.normal_()
    x = torch.rand(50, d, dtype=torch.float64) * 2 - 1
    assert layer(x).shape == (50, o)
    torch.testing.assert_close(layer(x), formula(layer, x), rtol=1e-10, atol=1e-12)


def test_prediction_without_autograd_is_the_tracked_value_bit_for_bit():
    """Under no_grad the layer works in place on one array; values must not move, and a
    tracked call afterwards must still differentiate (nothing it needs was overwritten)."""
    layer = GMNMLayer(2, 1, 9).double()
    x = torch.rand(40, 2, dtype=torch.float64) * 2 - 1
    tracked = layer(x)
    with torch.no_grad():
        fast = layer(x)
    assert torch.equal(fast, tracked.detach())
    tracked.sum().backward()
    assert layer.means.grad is not None and layer.means.grad.abs().sum() > 0
    with torch.no_grad():  # inputs that require grad but autograd is off: in place too
        assert torch.equal(layer(x.clone().requires_grad_(True)), fast)


def test_parameter_count():
    d, o, m, k = 3, 2, 10, 4
    layer = GMNMLayer(d, o, m, k)
    assert count_parameters(layer) == m * d + m * k * d + m * o + o
    assert {n for n, _ in layer.named_parameters()} == {"means", "proj", "weights", "bias"}


def test_gradcheck_float64():
    layer = GMNMLayer(2, 2, 4).double()
    with torch.no_grad():
        layer.proj.add_(0.2 * torch.randn_like(layer.proj))
    x = (torch.rand(6, 2, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    params = [layer.means, layer.proj, layer.weights, layer.bias]

    def f(x, means, proj, weights, bias):
        return torch.func.functional_call(
            layer, {"means": means, "proj": proj, "weights": weights, "bias": bias}, (x,))

    assert torch.autograd.gradcheck(f, (x, *params))


def test_initialisation_spreads_means_and_matches_widths():
    model = GMNM(2, components=100, bounds=((0, -2), (4, 2)), width_factor=1.0)
    means = model.layer.means.detach()
    # the means cover the normalised box and a margin of 0.3 around it (a 10 x 10 grid:
    # cell centres, the outermost half a cell inside the margin's edge)
    assert means.min() == pytest.approx(-1.3 + 1.3 / 10) and means.max() == pytest.approx(1.3 - 1.3 / 10)
    assert len(torch.unique(means[:, 0])) == 10
    spacing = math.sqrt(4.0 / 100)  # the width is tied to the spacing over the box itself
    torch.testing.assert_close(model.layer.proj.detach()[0], torch.eye(2) / spacing)
    assert model.layer.weights.abs().max() < 0.1  # small π


def test_non_power_components_use_quasi_random_layout():
    layer = GMNMLayer(2, 1, 37)
    means = layer.means.detach()
    assert means.shape == (37, 2)
    assert (means.abs() < 1).all()
    assert len(torch.unique(means[:, 0])) == 37


def test_usable_as_hidden_layer():
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), GMNMLayer(4, 8, 16), nn.Linear(8, 1))
    x = torch.randn(10, 3)
    y = net(x)
    assert y.shape == (10, 1)
    y.sum().backward()
    for param in (net[2].means, net[0].weight):  # gradients reach through the layer
        assert param.grad is not None and param.grad.isfinite().all() and param.grad.abs().max() > 0


@pytest.mark.parametrize("d", [1, 2, 3])
def test_closed_form_matches_autograd(d):
    model = GMNM(d, 2, 12, bounds=(tuple(range(d)), tuple(2 * v + 1.5 for v in range(d)))).double()
    with torch.no_grad():
        model.layer.proj.add_(0.3 * torch.randn_like(model.layer.proj))
        model.layer.weights.normal_()
    lo = torch.arange(d, dtype=torch.float64)
    x = lo + torch.rand(20, d, dtype=torch.float64) * (lo + 1.5)
    cf, ag = model.derivative_engine(x), AutogradEngine(model, x)
    axes_list = [(), *[(a,) for a in range(d)], *[(a, b) for a in range(d) for b in range(a, d)]]
    for axes in axes_list:
        for c in (0, 1, None):
            torch.testing.assert_close(cf.partial(c, axes), ag.partial(c, axes), rtol=1e-10, atol=1e-12)
    all_axes = tuple(range(d))
    torch.testing.assert_close(cf.laplacian(None, all_axes), ag.laplacian(None, all_axes),
                               rtol=1e-10, atol=1e-10)
    # third and fourth order in closed form too (the Gaussians' own, mixed by random
    # weights), mixed axes with full (rotated) W_i
    high = [(0, 0, 0), (0, 0, 0, 0), (0, 0, 0, 0, 0),
            *([(0, 1, 1), (0, 0, 0, 1), (0, 0, 1, 1), (1, 1, 1), (0, 1, 1, 1, 1)] if d > 1
              else []), *([(0, 1, 2), (0, 1, 2, 2), (0, 1, 1, 2)] if d > 2 else [])]
    for axes, c in itertools.product(high, (0, None)):
        torch.testing.assert_close(cf.partial(c, axes), ag.partial(c, axes), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("d", [2, 3])
def test_high_order_with_axis_aligned_gaussians(d):
    """The closed form skips the pairings of off-diagonal entries when W_i is diagonal
    (the grid layouts'); what is left must still equal autograd."""
    model = GMNM(d, 1, 9, bounds=(tuple(0.0 for _ in range(d)), tuple(1.0 for _ in range(d)))).double()
    with torch.no_grad():
        model.layer.weights.normal_()
    x = torch.rand(15, d, dtype=torch.float64)
    cf, ag = model.derivative_engine(x), AutogradEngine(model, x)
    for axes in [(0, 0, 1), (0, 0, 1, 1), (0, 1, 1), (0, 0, 0, 0), (0, 1, 1, 1, 1)]:
        torch.testing.assert_close(cf.partial(0, axes), ag.partial(0, axes), rtol=1e-9, atol=1e-9)


class _LaplacianLoss(nn.Module):
    """A loss through the closed-form path, as a module so functional_call can swap
    the parameters."""

    def __init__(self, model: GMNM) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eng = self.model.derivative_engine(x)
        return eng.laplacian(0, (0, 1)).square().sum() + eng.partial(0, (0, 1)).sum()


def test_closed_form_loss_gradcheck():
    """Parameter gradients of a loss built from closed-form derivatives agree with
    finite differences."""
    model = GMNM(2, 1, 5, bounds=((-1, -1), (1, 3)), width_factor=1.0).double()
    wrapper = _LaplacianLoss(model)
    x = torch.rand(8, 2, dtype=torch.float64) * 2 - 1
    names = [n for n, _ in wrapper.named_parameters()]

    def f(*params):
        return torch.func.functional_call(wrapper, dict(zip(names, params)), (x,))

    params = tuple(p.detach().clone().requires_grad_(True) for p in wrapper.parameters())
    assert torch.autograd.gradcheck(f, params)
