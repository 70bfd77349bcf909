"""GMNM as the nonlinearity inside a network (``gmnm-net``): formula, gradients, the
registry, parameter matching and a short solve through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from typer.testing import CliRunner

from pinn_gmnm.cli.main import app
from pinn_gmnm.models import build_model, count_parameters
from pinn_gmnm.models.gmnm_net import GMNMNet
from pinn_gmnm.models.sizing import match_parameters


def mixture(layer, z: torch.Tensor) -> torch.Tensor:
    """Σ_i π_i exp(−½ ‖W_i (z − μ_i)‖²) + b, one component at a time."""
    out = layer.bias.expand(len(z), -1).clone()
    for i in range(layer.components):
        y = (z - layer.means[i]) @ layer.proj[i].T
        out = out + torch.exp(-0.5 * (y * y).sum(dim=1))[:, None] * layer.weights[i]
    return out


def formula(net: GMNMNet, x: torch.Tensor) -> torch.Tensor:
    """h_l = G_l(L_l h_{l−1}), u = L_out h_depth, with h_0 the inputs scaled to [−1, 1]^d."""
    lo = torch.tensor(net.normalize.lo, dtype=x.dtype)
    hi = torch.tensor(net.normalize.hi, dtype=x.dtype)
    h = 2 * (x - lo) / (hi - lo) - 1
    for lin, mix in zip(net.linears, net.mixtures):
        h = mixture(mix, h @ lin.weight.T + lin.bias)
    return h @ net.head.weight.T + net.head.bias


def _net(**kw) -> GMNMNet:
    net = GMNMNet(2, 3, width=5, depth=2, components=4, projections=2,
                  bounds=((0.0, -1.0), (2.0, 3.0)), **kw).double()
    with torch.no_grad():  # away from the initial values, so every term matters
        for p in net.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return net


def test_net_matches_its_formula():
    net = _net()
    x = torch.rand(40, 2, dtype=torch.float64) * torch.tensor([2.0, 4.0]) + torch.tensor([0.0, -1.0])
    assert net(x).shape == (40, 3)
    torch.testing.assert_close(net(x), formula(net, x), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(net.linear_head().features(x).value(), net.features(x))


def test_net_passes_gradcheck_in_float64():
    net = _net()
    x = torch.rand(6, 2, dtype=torch.float64, requires_grad=True)
    params = list(net.parameters())

    def f(x, *ps):
        with torch.nn.utils.stateless._reparametrize_module(
                net, dict(zip([n for n, _ in net.named_parameters()], ps))):
            return net(x)

    assert torch.autograd.gradcheck(f, (x, *[p.detach().clone().requires_grad_() for p in params]))
    assert torch.autograd.gradgradcheck(lambda x: net(x), (x,))


def test_closed_form_derivatives_match_autograd_in_float64():
    """The forward-mode engine (the network's and its output layer's features) gives
    autograd's values, first and second derivatives, mixed ones and Laplacians, and its
    parameter gradients; third order falls back to autograd."""
    from pinn_gmnm.derivatives import AutogradEngine
    from pinn_gmnm.models.contract import capabilities

    net = _net()
    assert capabilities(net).closed_form
    x = torch.rand(30, 2, dtype=torch.float64) * torch.tensor([2.0, 4.0]) + torch.tensor([0.0, -1.0])
    jet, auto = net.derivative_engine(x), AutogradEngine(net, x)
    for axes in [(), (0,), (1,), (0, 0), (0, 1), (1, 1), (0, 0, 1)]:
        expected = auto.partial(None, axes)
        assert expected.abs().max() > 1e-3  # every check compares numbers that matter
        torch.testing.assert_close(jet.partial(None, axes), expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(jet.laplacian(2, (0, 1)), auto.laplacian(2, (0, 1)),
                               rtol=1e-10, atol=1e-12)
    features = net.linear_head().features(x)
    torch.testing.assert_close(features.partial(None, (1, 1)),
                               AutogradEngine(net.features, x).partial(None, (1, 1)))
    grads = [torch.autograd.grad(e.laplacian(0, (0, 1)).sum(), list(net.parameters()),
                                 materialize_grads=True)
             for e in (net.derivative_engine(x), AutogradEngine(net, x))]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_builds_through_the_registry_and_is_sized_by_match_parameters():
    bounds = ((-1.0, -1.0), (1.0, 1.0))
    net = build_model("gmnm-net", 2, 1, bounds=bounds)
    assert isinstance(net, GMNMNet) and net.linear_head() is not None
    w, m, k, d, depth = 16, 16, 2, 2, 2
    expected = (d + 1) * w + (depth - 1) * (w + 1) * w + depth * (m * w * (k + 2) + w) + w + 1
    assert count_parameters(net) == expected
    target = count_parameters(build_model("mlp", 2, 1, bounds=bounds))
    options = match_parameters("gmnm-net", 2, 1, target, bounds=bounds)
    got = count_parameters(build_model("gmnm-net", 2, 1, bounds=bounds, **options))
    assert abs(got - target) <= 0.1 * target


def test_solves_poisson_1d_a_little_through_the_cli(tmp_path: Path):
    r = CliRunner().invoke(app, ["solve", "poisson-1d", "--model", "gmnm-net", "--method",
                                 "adam-lbfgs", "--adam-steps", "30", "--lbfgs-steps", "20",
                                 "--points", "64", "--boundary-points", "2", "-q",
                                 "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    (run,) = tmp_path.iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["rel_l2"] < 0.5


def test_least_squares_solves_its_output_layer():
    """Least squares (which builds its system with gradients off) gets the features'
    forward-mode derivatives right: poisson-1d to ~1e-3 in one solve."""
    from pinn_gmnm import Collocation, LeastSquares, get_problem, solve

    p = get_problem("poisson-1d")
    s = solve(p, GMNMNet(1, bounds=p.geometry.bbox), stages=[LeastSquares()],
              collocation=Collocation(64, 2))
    assert s.metrics["rel_l2"] < 1e-2
