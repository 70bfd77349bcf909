"""The B-spline KAN: basis, grids, refinement, derivatives, linear head, sizing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from pinn_gmnm.derivatives import AutogradEngine
from pinn_gmnm.models import KAN, KANLayer, build_model, count_parameters
from pinn_gmnm.models.bspline import bspline_basis, extend_grid, fit_coefficients, uniform_grid
from pinn_gmnm.models.head import ConstantColumn
from pinn_gmnm.errors import GMNMError
from pinn_gmnm.models.sizing import match_parameters, parameter_count


@pytest.fixture(autouse=True)
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _nonuniform_grid(d: int, G: int, k: int) -> torch.Tensor:
    inner = torch.sort(torch.rand(d, G + 1) * 2 - 1, dim=1).values
    inner[:, 0], inner[:, -1] = -1.0, 1.0
    return extend_grid(inner, k)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_basis_is_a_partition_of_unity_inside_the_grid(k):
    for grid in (uniform_grid(-torch.ones(3), torch.ones(3), 7, k), _nonuniform_grid(3, 7, k)):
        x = torch.rand(500, 3) * 2 - 1
        B = bspline_basis(x, grid, k)[0]
        assert B.shape == (500, 3, 7 + k)
        assert (B >= 0).all()
        torch.testing.assert_close(B.sum(-1), torch.ones(500, 3), atol=1e-13, rtol=0)


def _cardinal_cubic(u: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The cubic B-spline on the knots 0, 1, 2, 3, 4 and its first two derivatives, piece
    by piece (zero outside [0, 4))."""
    pieces = [  # (N, N', N'') on [0, 1), [1, 2), [2, 3), [3, 4)
        (u**3 / 6, u**2 / 2, u),
        ((-3 * u**3 + 12 * u**2 - 12 * u + 4) / 6, (-3 * u**2 + 8 * u - 4) / 2, 4 - 3 * u),
        ((3 * u**3 - 24 * u**2 + 60 * u - 44) / 6, (3 * u**2 - 16 * u + 20) / 2, 3 * u - 8),
        ((4 - u) ** 3 / 6, -((4 - u) ** 2) / 2, 4 - u),
    ]
    out = [torch.zeros_like(u) for _ in range(3)]
    for i, piece in enumerate(pieces):
        on = (u >= i) & (u < i + 1)
        out = [torch.where(on, p, o) for p, o in zip(piece, out)]
    return tuple(out)


def test_uniform_cubic_basis_equals_the_hand_computed_spline():
    """On a uniform grid of spacing h, B_j(x) = N((x − t_j)/h) with N the cardinal cubic
    B-spline (1/6, 2/3, 1/6 at the knots), B′ = N′/h and B″ = N″/h²."""
    lo, hi, G, k = -0.5, 2.5, 6, 3
    h = (hi - lo) / G
    grid = uniform_grid(torch.tensor([lo]), torch.tensor([hi]), G, k)
    x = torch.linspace(lo, hi, 301)[:-1, None]
    got = bspline_basis(x, grid, k, derivatives=2)
    u = (x - grid[0, :G + k]) / h                                   # (n, G + k)
    want = _cardinal_cubic(u)
    for i, (g, w) in enumerate(zip(got, want)):
        torch.testing.assert_close(g[:, 0], w / h**i, atol=1e-12, rtol=1e-12)
    at_knot = bspline_basis(torch.tensor([[lo + 3 * h]]), grid, k)[0][0, 0]
    torch.testing.assert_close(at_knot[3:6], torch.tensor([1 / 6, 2 / 3, 1 / 6]), atol=1e-15, rtol=0)
    assert at_knot[:3].abs().max() == 0 and at_knot[6:].abs().max() == 0


def test_splines_reproduce_polynomials_of_their_degree():
    """Marsden's identity: Σ_j ξ_j B_j(x) = x with the Greville abscissae
    ξ_j = (t_{j+1} + … + t_{j+k})/k, on any grid; and the least-squares fit of a cubic
    by cubic splines (without the ridge) is the cubic itself."""
    torch.manual_seed(0)
    for k in (1, 2, 3):
        grid = _nonuniform_grid(2, 5, k)
        x = torch.rand(400, 2) * 2 - 1
        B = bspline_basis(x, grid, k)[0]
        greville = torch.stack([grid[:, j + 1:j + k + 1].mean(1) for j in range(B.shape[-1])], -1)
        torch.testing.assert_close((B * greville).sum(-1), x, atol=1e-13, rtol=0)
    grid = _nonuniform_grid(1, 5, 3)
    x = torch.linspace(-1, 1, 200)[:, None]
    cubic = lambda z: 2 * z**3 - z**2 + 0.5 * z - 3  # noqa: E731
    coef = fit_coefficients(x, cubic(x)[:, :, None], grid, 3, ridge=0.0)  # exact: no ridge
    fresh = torch.rand(100, 1) * 2 - 1
    fitted = torch.einsum("nik,iok->nio", bspline_basis(fresh, grid, 3)[0], coef)[:, 0, 0]
    torch.testing.assert_close(fitted, cubic(fresh[:, 0]), atol=1e-10, rtol=0)


def test_basis_derivatives_match_autograd():
    grid = _nonuniform_grid(2, 6, 3)
    x = (torch.rand(100, 2) * 2 - 1).requires_grad_(True)
    B, B1, B2 = bspline_basis(x, grid, 3, derivatives=2)
    w = torch.randn(B.shape[-1])
    (g1,) = torch.autograd.grad((B * w).sum(), x, create_graph=True)
    (g2,) = torch.autograd.grad(g1.sum(), x)
    torch.testing.assert_close(g1, (B1 * w).sum(-1), atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(g2, (B2 * w).sum(-1), atol=1e-9, rtol=1e-9)


def _pykan_spline():
    """pykan's spline module (loaded alone: it needs only torch); skips the test when
    pykan is not installed, and fails when an installed pykan lacks the functions the
    comparison needs (a layout change must not turn into a silent skip)."""
    spec = importlib.util.find_spec("kan")
    if spec is None or spec.origin is None:
        pytest.skip("pykan is not installed (pip install pykan)")
    path = Path(spec.origin).parent / "spline.py"
    assert path.is_file(), f"pykan is installed but has no {path}"
    s = importlib.util.spec_from_file_location("_pykan_spline", path)
    module = importlib.util.module_from_spec(s)
    s.loader.exec_module(module)
    missing = [f for f in ("B_batch", "coef2curve", "extend_grid") if not hasattr(module, f)]
    assert not missing, f"pykan's spline.py lacks {missing}"
    return module


def test_basis_and_splines_agree_with_pykan():
    ks = _pykan_spline()
    inner = torch.sort(torch.rand(3, 6) * 2 - 1, dim=1).values
    torch.testing.assert_close(extend_grid(inner, 3), ks.extend_grid(inner, 3))
    grid = extend_grid(inner, 3)
    x = torch.rand(300, 3) * 2.4 - 1.2
    torch.testing.assert_close(bspline_basis(x, grid, 3)[0], ks.B_batch(x, grid, 3),
                               atol=1e-14, rtol=0)
    coef = torch.randn(3, 4, 8)
    ours = torch.einsum("nik,iok->nio", bspline_basis(x, grid, 3)[0], coef)
    torch.testing.assert_close(ours, ks.coef2curve(x, grid, coef, 3), atol=1e-12, rtol=0)


def test_layer_is_one_matrix_product_of_edge_functions():
    layer = KANLayer(3, 2, grid=5)
    h = torch.rand(40, 3) * 2 - 1
    B = bspline_basis(h, layer.grid, 3)[0]
    silu = torch.nn.functional.silu(h)
    phi = (layer.scale_base * silu[..., None]
           + layer.scale_spline * torch.einsum("nik,iok->nio", B, layer.coef))
    torch.testing.assert_close(layer(h), phi.sum(1) + layer.bias)
    assert count_parameters(layer) == 3 * 2 * (5 + 3 + 2) + 2


def test_grid_update_keeps_the_function():
    torch.manual_seed(0)
    model = KAN(2, 1, width=4, depth=1)
    x = torch.rand(2000, 2) * 2 - 1
    x[:, 0] = x[:, 0] ** 3  # skewed samples: the quantile grid differs from the uniform one
    before = model(x)
    grid0 = model.layers[0].grid.clone()
    model.update_grid(x)
    assert not torch.allclose(model.layers[0].grid, grid0)
    after = model(x)
    with torch.no_grad():
            assert float((after - before).norm() / before.norm()) < 2e-2


def test_refinement_onto_a_nested_grid_is_exact_and_lowers_the_fitting_error():
    torch.manual_seed(0)
    layer = KANLayer(1, 1, grid=4)
    h = torch.linspace(-1, 1, 400)[:, None]
    target = torch.sin(3 * torch.pi * h)[:, :, None]          # (n, 1, 1)

    def fit_error() -> float:
        layer.coef.data = fit_coefficients(h, target, layer.grid, 3)
        return float((layer.splines(h) - target).abs().max())

    with torch.no_grad():
        layer.scale_spline.fill_(1.0)
        coarse = fit_error()
        before = layer(h)
        layer.refine(8, h)  # 4 → 8 intervals: the old knots are kept, so nothing changes
        torch.testing.assert_close(layer(h), before, atol=1e-7, rtol=0)  # (up to the tiny ridge)
        fine = fit_error()
    assert layer.intervals == 8 and layer.coef.shape == (1, 1, 11)
    assert fine < coarse / 5


def test_gradcheck_in_float64():
    torch.manual_seed(0)
    model = KAN(2, 1, width=3, depth=1, grid=4)
    x = (torch.rand(6, 2) * 2 - 1).requires_grad_(True)
    assert torch.autograd.gradcheck(model, (x,))
    layer = model.layers[1]
    h = torch.rand(5, 3) * 2 - 1

    def by_params(coef, base, spline):
        return torch.func.functional_call(
            layer, {"coef": coef, "scale_base": base, "scale_spline": spline,
                    "bias": layer.bias, "grid": layer.grid}, (h,))

    params = tuple(p.detach().clone().requires_grad_(True)
                   for p in (layer.coef, layer.scale_base, layer.scale_spline))
    assert torch.autograd.gradcheck(by_params, params)


def test_forward_mode_derivatives_match_autograd():
    torch.manual_seed(0)
    model = KAN(3, 2, width=4, depth=2, bounds=((0, 0, 0), (2, 1, 1)))
    x = torch.rand(30, 3) * torch.tensor([2.0, 1.0, 1.0])
    mine, ref = model.derivative_engine(x), AutogradEngine(model, x)
    for axes in [(), (0,), (2,), (0, 0), (0, 1), (1, 2), (2, 2)]:
        for out in (0, 1):
            torch.testing.assert_close(mine.partial(out, axes), ref.partial(out, axes),
                                       atol=1e-10, rtol=1e-9)
    torch.testing.assert_close(mine.laplacian(1, (0, 1, 2)), ref.laplacian(1, (0, 1, 2)),
                               atol=1e-10, rtol=1e-9)


def test_linear_head_reproduces_the_model_and_its_derivatives():
    torch.manual_seed(0)
    model = KAN(2, 1, width=5, depth=2)
    x = torch.rand(25, 2) * 2 - 1
    head = model.linear_head()
    theta = head.get()
    assert theta.shape == (head.n_features + 1, 1)
    feats = ConstantColumn(head.features(x))
    ref = AutogradEngine(model, x)
    torch.testing.assert_close(feats.value() @ theta, model(x))
    for axes in [(0,), (0, 1), (1, 1)]:
        torch.testing.assert_close(feats.partial(None, axes) @ theta, ref.partial(0, axes)[:, None],
                                   atol=1e-10, rtol=1e-9)
    new = torch.randn_like(theta)
    head.set(new)
    torch.testing.assert_close(head.get(), new)
    torch.testing.assert_close(model(x), feats.value() @ new)


@pytest.mark.parametrize("name", ["gmnm", "mlp", "pinn", "kan"])
@pytest.mark.parametrize("dim,target", [(1, 1201), (2, 2801), (3, 5201), (2, 900), (1, 193)])
def test_models_are_sized_within_ten_percent(name, dim, target):
    bounds = ((-1.0,) * dim, (1.0,) * dim)
    options = match_parameters(name, dim, 1, target, bounds=bounds)
    got = parameter_count(name, dim, 1, bounds=bounds, **options)
    assert abs(got - target) <= 0.1 * target
    state = torch.random.get_rng_state()
    parameter_count(name, dim, 1, bounds=bounds, **options)
    assert torch.equal(state, torch.random.get_rng_state())  # sizing never moves the RNG


def test_small_kans_are_sized_with_the_grid_when_the_width_alone_cannot():
    # The default 1D GMNM (64 Gaussians, 193 parameters: the `bessel` fit): KAN widths 3
    # and 4 give 157 and 249; width 3 with a grid of 7 gives 187.
    bounds = ((-1.0,), (1.0,))
    assert match_parameters("kan", 1, 1, 193, bounds=bounds) == {"width": 3, "grid": 7}
    assert match_parameters("kan", 2, 1, 2801, bounds=((-1.0,) * 2, (1.0,) * 2)) == {"width": 15}
    with pytest.raises(GMNMError, match="cannot be sized"):
        match_parameters("kan", 1, 1, 193, bounds=bounds, grid=5)  # grid given: width only


def test_pinn_always_trains_with_the_classic_recipe():
    from pinn_gmnm.config import RunConfig
    from pinn_gmnm.run import prepare

    for method in ("auto", "varpro", "adam-lbfgs"):
        _, model, used, stages = prepare(RunConfig(model="pinn", method=method, adam_steps=7,
                                                   lbfgs_steps=3))
        assert used == "adam-lbfgs"
        assert [s.to_dict() for s in stages] == [
            {"type": "adam", "steps": 7, "lr": 1e-3, "final_lr": None, "group_lr": None},
            {"type": "lbfgs", "steps": 3, "history": 100, "lr": 1.0}]
    activation = build_model("pinn", 2, 1, bounds=((-1, -1), (1, 1))).activation
    z = torch.linspace(-3, 3, 13)
    assert activation.name == "tanh" and torch.equal(activation(z), torch.tanh(z))
