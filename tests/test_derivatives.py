"""The derivative interface against hand-derived derivatives, on every engine."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from pinn_gmnm import GMNM, MLP, Field, GMNMError
from pinn_gmnm.derivatives import AutogradEngine, FuncEngine


class Known(nn.Module):
    """u(x, y) = x² y + sin(y), v(x, y) = x y."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        X, Y = x.T
        return torch.stack([X**2 * Y + torch.sin(Y), X * Y], dim=1)


@pytest.fixture
def pts():
    return torch.rand(30, 2, dtype=torch.float64)


def test_named_partials_match_hand_derivatives(pts):
    u = Field.of(Known(), pts, ("x", "y"), ("u", "v"))
    X, Y = pts.T
    torch.testing.assert_close(u(), X**2 * Y + torch.sin(Y))
    torch.testing.assert_close(u.d("x"), 2 * X * Y)
    torch.testing.assert_close(u.d("y"), X**2 + torch.cos(Y))
    torch.testing.assert_close(u.d("xx"), 2 * Y)
    torch.testing.assert_close(u.d("xy"), 2 * X)
    torch.testing.assert_close(u.d("yx"), 2 * X)
    torch.testing.assert_close(u.d("y", "y"), -torch.sin(Y))
    torch.testing.assert_close(u.d("xxy"), 2 * torch.ones_like(X))
    torch.testing.assert_close(u.laplacian(), 2 * Y - torch.sin(Y))
    torch.testing.assert_close(u.grad(), torch.stack([2 * X * Y, X**2 + torch.cos(Y)], dim=1))
    v = u["v"]
    torch.testing.assert_close(v.d("x"), Y)
    torch.testing.assert_close(v.laplacian(), torch.zeros_like(X))
    normals = torch.tensor([[1.0, 0.0]], dtype=torch.float64).expand(30, 2)
    torch.testing.assert_close(u.normal_derivative(normals), 2 * X * Y)


def test_laplacian_skips_time(pts):
    u = Field.of(Known(), pts, ("x", "t"), ("u", "v"), spatial=("x",))
    X, T = pts.T
    torch.testing.assert_close(u.laplacian(), 2 * T)
    torch.testing.assert_close(u.d("t"), X**2 + torch.cos(T))


def test_bad_names_are_clear(pts):
    u = Field.of(Known(), pts, ("x", "y"), ("u", "v"))
    with pytest.raises(GMNMError, match="unknown variable 'z'"):
        u.d("z")
    with pytest.raises(GMNMError, match="unknown output 'w'"):
        u["w"]
    with pytest.raises(GMNMError, match="do not match"):
        Field.of(Known(), pts[:, :1], ("x", "y"))


@pytest.mark.parametrize("make", [
    lambda: GMNM(2, 2, 9, bounds=((-1, 0), (2, 1))).double(),
    lambda: MLP(2, 2, 8, 2, "tanh", bounds=((-1, 0), (2, 1))).double(),
    lambda: MLP(2, 2, 8, 2, "sin").double(),
])
def test_model_engines_agree_with_autograd(make, pts):
    model = make()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    fast = Field.of(model, pts, ("x", "y"), ("u", "v"))
    slow = Field.of(model, pts, ("x", "y"), ("u", "v"), closed_form=False)
    assert not isinstance(fast.engine, AutogradEngine)
    assert isinstance(slow.engine, AutogradEngine)
    for spec in ("x", "y", "xx", "xy", "yy"):
        for name in ("u", "v"):
            torch.testing.assert_close(fast[name].d(spec), slow[name].d(spec), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(fast.laplacian(), slow.laplacian(), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(fast.d("xxy"), slow.d("xxy"), rtol=1e-10, atol=1e-10)


def test_func_engine_matches_autograd(pts):
    model = Known()
    fe = FuncEngine(model, pts)
    ag = AutogradEngine(model, pts)
    for axes in [(0,), (1,), (0, 1), (1, 1)]:
        torch.testing.assert_close(fe.partial(None, axes), ag.partial(None, axes))
    torch.testing.assert_close(fe.laplacian(1, (0, 1)), ag.laplacian(1, (0, 1)))


@pytest.mark.parametrize("make", [
    lambda: GMNM(3, 2, 16, bounds=((-1, 0, 0), (2, 1, 3)), width_factor=1.5),
    lambda: MLP(3, 2, 16, 3, "tanh", bounds=((-1, 0, 0), (2, 1, 3))),
])
def test_model_engines_in_float32(make):
    """float32 closed-form / forward-mode derivatives against float64 autograd, to float32
    accuracy, for every output, every first and second partial and partial Laplacians."""
    model = make()
    x = torch.rand(40, 3) * torch.tensor([3.0, 1.0, 3.0]) + torch.tensor([-1.0, 0.0, 0.0])
    fast = Field.of(model, x, ("x", "y", "t"), ("u", "v"), spatial=("x", "y"))
    slow = Field.of(copy.deepcopy(model).double(), x.double(), ("x", "y", "t"), ("u", "v"), spatial=("x", "y"),
                    closed_form=False)
    assert fast.d("x").dtype == torch.float32
    for name in ("u", "v"):
        scale = float(slow[name].laplacian().detach().abs().max())
        for spec in ("", "x", "t", "xx", "xy", "yt", "tt"):
            got = fast[name]() if not spec else fast[name].d(spec)
            want = slow[name]() if not spec else slow[name].d(spec)
            torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-5 * scale)
        torch.testing.assert_close(fast[name].laplacian().double(), slow[name].laplacian(),
                                   rtol=1e-4, atol=1e-5 * scale)
