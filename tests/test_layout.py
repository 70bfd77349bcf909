"""Where a GMNM's Gaussians start: over the domain plus a margin, as many as the points
support."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from pinn_gmnm import GMNM, Collocation, LeastSquares, get_problem, solve
from pinn_gmnm.models.layout import (DEFAULT_EQUATIONS, MARGIN, OVERSAMPLING, default_components,
                                     near_points, spread_centres)
from pinn_gmnm.sampling import Sobol
from pinn_gmnm.training.layout import Layout


@pytest.mark.parametrize("dim", [1, 2, 3, 4])
def test_default_centres_cover_the_box_and_its_margin(dim):
    model = GMNM(dim)
    means = model.layer.means.detach().double()
    k = round(model.layer.components ** (1 / dim))
    half_cell = (1 + MARGIN) / k
    for a in range(dim):  # a grid reaching to half a cell inside the margin's edge
        assert float(means[:, a].min()) == pytest.approx(-1 - MARGIN + half_cell)
        assert float(means[:, a].max()) == pytest.approx(1 + MARGIN - half_cell)
    # every place of the enlarged box has a centre within one cell (max-norm)
    places = (2 * torch.from_numpy(Sobol().unit(4096, dim, 0)) - 1) * (1 + MARGIN)
    assert near_points(places, means, 2 * half_cell + 1e-9).all()


@pytest.mark.parametrize("dim", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("equations", [50, DEFAULT_EQUATIONS, 20_000])
@pytest.mark.parametrize("outputs", [1, 2])
def test_default_counts_never_have_more_unknowns_than_equations(dim, equations, outputs):
    m = default_components(dim, equations, outputs)
    assert m >= 1
    if equations >= OVERSAMPLING * 2 * outputs:  # room for one Gaussian and the bias
        assert (m + 1) * outputs <= equations / OVERSAMPLING
    assert GMNM(dim, outputs, equations=equations).layer.components == m


def test_default_counts_by_dimension():
    # 5D: a 4⁵ grid is too coarse per axis (MIN_GRID_AXIS); every unknown the budget allows
    assert [default_components(d) for d in range(1, 6)] == [64, 1024, 1000, 625, 1199]


def test_coarse_layouts_are_sobol_sets_covering_the_margin():
    means = GMNM(5).layer.means.detach().double()
    assert len(means) == 1199 and len(torch.unique(means[:, 0])) == 1199  # not a grid
    assert float(means.abs().max()) <= 1 + MARGIN
    assert float(means.abs().amax(dim=1).max()) > 1  # some centres lie in the margin


def test_a_fit_has_a_narrow_margin_and_a_run_sizes_the_model_to_its_points():
    from pinn_gmnm.config import RunConfig
    from pinn_gmnm.models.layout import FIT_MARGIN
    from pinn_gmnm.run import build

    fit = GMNM(2, conditions=False)
    reach = float(fit.layer.means.detach().abs().max())
    assert 1 < reach <= 1 + FIT_MARGIN < 1 + MARGIN
    _, model = build(RunConfig(problem="poisson", interior=300, boundary=100))
    assert model.layer.components == default_components(2, 400)
    _, model = build(RunConfig(problem="front", interior=500))  # a fit: no boundary rows
    assert model.layer.components == default_components(2, 500)


def test_a_system_is_sized_to_an_equation_per_field_and_a_slab_to_its_points_once():
    from pinn_gmnm.config import RunConfig
    from pinn_gmnm.models.slabs import TimeSlabs
    from pinn_gmnm.run import build

    _, model = build(RunConfig(problem="stokes", interior=300, boundary=100))  # u, v, p
    assert model.layer.components == default_components(2, 3 * 300 + 100, 3)
    assert model.layer.components > default_components(2, 300 + 100, 3)
    _, model = build(RunConfig(problem="gray-scott", interior=300, boundary=100, slabs=2))
    assert isinstance(model, TimeSlabs)
    assert all(piece.layer.components == default_components(2, 300 + 100, 2)
               for piece in model.pieces)


def _lshape_points(n=3000):
    p = get_problem("poisson-lshape")
    g = p.geometry
    x = torch.cat([g.sample_interior(n, Sobol(), 0), g.sample_boundary(n // 4, Sobol(), 1)])
    return x.double()  # the L-shape's box is [−1, 1]²: already normalised


def test_culled_layout_covers_the_domain_and_margin_only():
    x = _lshape_points()
    m = 400
    centres, fraction = spread_centres(m, x, seed=0)
    assert centres.shape == (m, 2)
    # the L plus a band of 0.3 around it: the enlarged box minus [0.3, 1.3] × [−1.3, −0.3]
    assert fraction == pytest.approx(1 - 1.0 / 2.6**2, abs=0.03)
    reach = MARGIN + 2 / math.sqrt(len(x))
    assert near_points(centres, x, reach).all()  # nothing far from the domain
    assert (centres.abs().amax(dim=1) > 1).sum() > 0.15 * m  # the margin is covered too
    spacing = math.sqrt(fraction * 2.6**2 / m)
    band = (2 * torch.from_numpy(Sobol().unit(4096, 2, 3)) - 1) * (1 + MARGIN)
    band = band[near_points(band, x, MARGIN)]
    assert near_points(band, centres, 2.5 * spacing).all()  # evenly: no holes in the layout


def test_layout_stage_keeps_a_box_layout_and_culls_an_lshape():
    p = get_problem("poisson")
    torch.manual_seed(0)
    model = GMNM(2, components=100, bounds=p.geometry.bbox).double()
    before = copy.deepcopy(model.state_dict())
    s = solve(p, model, stages=[Layout()], collocation=Collocation(256, 64))
    assert s.events[0]["kept"] == 1.0
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])

    p = get_problem("poisson-lshape")
    torch.manual_seed(0)
    model = GMNM(2, components=100, bounds=p.geometry.bbox)
    width = 1 / float(model.layer.proj.detach()[0, 0, 0])
    s = solve(p, model, stages=[Layout(), LeastSquares()], collocation=Collocation(512, 128))
    event = next(e for e in s.events if e["event"] == "layout")
    assert event["kept"] < 0.9 and event["width"] == pytest.approx(width * math.sqrt(event["kept"]))
    assert 1 / float(model.layer.proj.detach()[0, 0, 0]) == pytest.approx(event["width"])
    means = model.layer.means.detach()
    assert not ((means[:, 0] > 0.35) & (means[:, 1] < -0.35)).any()  # culled corner


def test_uncapped_counts_keep_the_oversampling_asked_for():
    # a refinement (growth): 9600 equations at 4 per unknown, past the 2D cap of 1024
    assert default_components(2, 9600, capped=False, oversampling=4.0) == 48**2
    assert default_components(2, 9600) == 1024
    assert default_components(3, 9600, capped=False, oversampling=4.0) == 13**3


def test_respread_lays_m_isotropic_gaussians_over_the_domain_and_margin():
    x = _lshape_points()
    model = GMNM(2, components=100).double()
    report = model.respread(400, x, seed=0, width_factor=2.0)
    layer = model.layer
    assert layer.components == 400 and layer.means.shape == (400, 2)
    assert torch.equal(layer.weights.detach(), torch.zeros(400, 1, dtype=torch.float64))
    A = layer.precision().detach()
    sigma = A[:, 0, 0].rsqrt()
    assert torch.allclose(sigma, torch.full_like(sigma, report["width"]))
    assert torch.allclose(A[:, 0, 1], torch.zeros(400, dtype=torch.float64))
    # width 2 × the spacing of 400 centres over the kept part of the enlarged box
    assert report["width"] == pytest.approx(2.0 * (report["kept"] * 4 / 400) ** 0.5)
    means = layer.means.detach()
    assert float(means.abs().max()) <= 1 + MARGIN
    assert not bool(((means[:, 0] > 0.35) & (means[:, 1] < -0.35)).any())  # culled


CHANNEL = ((0.0, 0.0), (2.2, 0.41))  # the cylinder benchmark's channel, 5.4 times as long


def _physical_spacings(model):
    """The distinct centre coordinates' spacing along each axis, in physical units."""
    _, mu = model.physical()
    mu = mu.detach().double()
    return [float(torch.unique(mu[:, a].round(decimals=9)).diff().mean()) for a in range(2)]


def test_grid_shapes_have_one_spacing_on_every_axis():
    from pinn_gmnm.models.layout import even_count, grid_shape, proportions

    assert grid_shape(1024, (1.0, 1.0)) == (32, 32)
    assert grid_shape(1000, (1.0, 1.0)) is None  # 25 × 40 spaces its axes 1.6 apart
    a = proportions(*CHANNEL)
    assert a == pytest.approx((1.0, 0.41 / 2.2))
    shape = grid_shape(1022, a)
    assert shape == (73, 14)
    assert even_count(1024, a, 5) == 1022
    assert default_components(2, aspect=a) == 1022
    assert default_components(2, aspect=(1.0, 1.0)) == default_components(2) == 1024


def test_an_isotropic_model_on_a_channel_is_round_and_even_in_physical_units():
    torch.manual_seed(0)
    plain = GMNM(2, bounds=CHANNEL).double()
    sx, sy = _physical_spacings(plain)
    assert sx / sy > 5  # the normalised layout: 5.4 times coarser along the channel
    torch.manual_seed(0)
    model = GMNM(2, bounds=CHANNEL, isotropic=True).double()
    assert model.layer.components == 1020  # 68 × 15 over the channel and its margin
    sx, sy = _physical_spacings(model)
    assert sx / sy == pytest.approx(1.0, abs=0.05)
    A, mu = model.physical()
    A = A.detach()
    torch.testing.assert_close(A[:, 0, 0], A[:, 1, 1])  # round ...
    torch.testing.assert_close(A[:, 0, 1], torch.zeros_like(A[:, 0, 1]))
    sigma = float(A[0, 0, 0].rsqrt())
    # ... width_factor × the spacing the centres would have over the channel alone
    spacing = math.sqrt(2.2 * 0.41 / model.layer.components)
    assert sigma == pytest.approx(model.width_factor * spacing)
    lo, hi = torch.tensor(CHANNEL[0]), torch.tensor(CHANNEL[1])
    pad = MARGIN * float((hi - lo).min()) / 2  # one margin, a share of the shorter half-width
    mu = mu.detach()
    assert (mu.amin(0) > lo - pad).all() and (mu.amax(0) < hi + pad).all()
    assert (mu.amin(0) < lo).all() and (mu.amax(0) > hi).all()
    torch.manual_seed(0)
    square = GMNM(2, bounds=((0.0, 0.0), (1.0, 1.0)), isotropic=True)
    torch.manual_seed(0)
    torch.testing.assert_close(square.state_dict(), GMNM(2, bounds=((0.0, 0.0), (1.0, 1.0))).state_dict())


def test_isotropic_arrange_respread_and_children_stay_round():
    from pinn_gmnm.training.growth import child_widths

    torch.manual_seed(0)
    model = GMNM(2, components=300, bounds=CHANNEL, isotropic=True).double()
    lo, hi = torch.tensor(CHANNEL[0]), torch.tensor(CHANNEL[1])
    x = lo + (hi - lo) * torch.rand(2000, 2, dtype=torch.float64)
    x = x[(x - torch.tensor([0.2, 0.2])).norm(dim=1) > 0.05]  # a hole: still nearly all kept
    for lay in (lambda: model.arrange(x, seed=1), lambda: model.respread(500, x, seed=2)):
        report = lay()
        A = model.physical()[0].detach()
        torch.testing.assert_close(A[:, 0, 0], A[:, 1, 1])
        # the report's width is the Gaussians' in the common unit (the box's longest half-width)
        width = float(A[0, 0, 0].rsqrt()) / 1.1
        assert width == pytest.approx(report["width"])
    assert model.layer.components == 500
    # a child Gaussian is round too: its width, times the aspect, per axis
    widths = child_widths(model, model.normalize(x[:5]))
    assert widths.shape == (5,) and bool((widths > 0).all())
    assert float(widths.max()) <= report["width"] / model.width_factor + 1e-12


@pytest.mark.parametrize("parametrisation", ["plain", "scaled"])
def test_arrange_sets_the_width_whatever_the_parametrisation(parametrisation):
    x = _lshape_points()
    torch.manual_seed(0)
    model = GMNM(2, components=100, parametrisation=parametrisation).double()
    report = model.arrange(x, seed=0, width_factor=2.0)
    sigma = model.layer.precision().detach()[:, 0, 0].rsqrt()
    torch.testing.assert_close(sigma, torch.full_like(sigma, report["width"]))


def _brute_grid_shape(m, side, tol):
    """Every factorisation of m into len(side) counts, the most nearly equal spacings."""
    def shapes(rest, d):
        if d == 1:
            yield (rest,)
            return
        for k in range(1, rest + 1):
            if rest % k == 0:
                for tail in shapes(rest // k, d - 1):
                    yield (k, *tail)

    def ratio(k):
        spacings = [s / c for s, c in zip(side, k)]
        return max(spacings) / min(spacings)

    best = min(shapes(m, len(side)), key=ratio)
    return best if ratio(best) <= tol else None


@pytest.mark.parametrize("side", [(1.0, 0.186), (1.0, 0.75), (2.0, 1.0, 0.5), (1.0, 0.9, 0.4)])
def test_even_grids_match_a_search_of_every_factorisation(side):
    from pinn_gmnm.models.layout import SPACING_TOLERANCE, even_count, grid_shape

    for m in range(1, 700):
        want = _brute_grid_shape(m, side, SPACING_TOLERANCE)
        got = grid_shape(m, side)
        assert (got is None) == (want is None), m
        if got is not None:  # (ties between equally good shapes may go either way)
            assert math.prod(got) == m
            ratio = lambda k: max(s / c for s, c in zip(side, k)) / min(s / c for s, c in zip(side, k))  # noqa: E731
            assert ratio(got) == pytest.approx(ratio(want))
    for most in (50, 300, 699):
        best = max((m for m in range(1, most + 1)
                    if (s := _brute_grid_shape(m, side, SPACING_TOLERANCE)) and min(s) >= 2),
                   default=None)
        assert even_count(most, side, 2) == best


def test_a_box_too_thin_for_its_count_keeps_the_normalised_layout():
    torch.manual_seed(0)
    thin = GMNM(2, bounds=((0.0, 0.0), (100.0, 1.0)), isotropic=True)  # 5 across: 2500
    assert thin.aspect == (1.0, 1.0) and thin.layer.components == 1024
    torch.manual_seed(0)
    plain = GMNM(2, bounds=((0.0, 0.0), (100.0, 1.0)))
    torch.testing.assert_close(thin.state_dict(), plain.state_dict())
    assert GMNM(2, bounds=((0.0, 0.0), (40.0, 1.0)), isotropic=True).aspect[1] == 0.025
    assert GMNM(2, 1, 50, bounds=CHANNEL, isotropic=True).aspect == (1.0, 1.0)


def test_a_run_lays_a_steady_problem_out_round_unless_told_not_to():
    from pinn_gmnm.config import RunConfig
    from pinn_gmnm.models.slabs import TimeSlabs
    from pinn_gmnm.run import build

    _, model = build(RunConfig(problem="poisson-holes", interior=300, boundary=100))
    assert model.aspect == pytest.approx((1.0, 0.9))  # its box is 2 × 1.8
    _, model = build(RunConfig(problem="poisson-holes", interior=300, boundary=100,
                               model_options={"isotropic": False}))
    assert model.aspect == (1.0, 1.0)
    _, model = build(RunConfig(problem="burgers", interior=300, boundary=100))  # x and t
    pieces = list(model.pieces) if isinstance(model, TimeSlabs) else [model]
    assert all(p.aspect == (1.0, 1.0) for p in pieces if isinstance(p, GMNM))


def test_a_space_time_box_is_round_in_space_and_time_is_a_mean_axis():
    """A time-dependent problem's single block is laid out round in space, with as many
    centres along time as along a mean axis of space; on a square in space, the
    normalised layout as before."""
    from pinn_gmnm.models.layout import space_time_proportions

    assert space_time_proportions((0, 0, 0), (1, 1, 5)) == (1.0, 1.0, 1.0)
    assert space_time_proportions((0, 0), (3, 0.1)) == (1.0, 1.0)  # 1-D space
    a = space_time_proportions((0, 0, 0), (4, 1, 1))
    assert a == pytest.approx((1.0, 0.25, 0.5))
    square = GMNM(3, bounds=((0, 0, 0), (1, 1, 2)), isotropic=True, time_axis=True)
    plain = GMNM(3, bounds=((0, 0, 0), (1, 1, 2)))
    assert not square.elongated and square.layer.components == plain.layer.components


def test_a_march_on_a_long_plate_lays_its_block_round_in_space_and_its_slabs_itself():
    from pathlib import Path

    from pinn_gmnm.config import RunConfig
    from pinn_gmnm.run import build

    spec = f"{Path(__file__).parents[1] / 'benchmarks' / 'untuned_problems.py'}:heat_strip"
    _, model = build(RunConfig(problem=spec))
    whole, piece = model.whole, model.pieces[0]
    assert whole.aspect == pytest.approx((1.0, 0.25, 0.5)) and whole.elongated
    half = torch.tensor(whole.normalize.half_width, dtype=torch.float64)
    widths = half / whole.layer.proj.detach().diagonal(dim1=1, dim2=2)  # physical
    torch.testing.assert_close(widths[:, 0], widths[:, 1])  # round in space
    assert not piece.elongated  # the slabs: slab_layout's grid, round in space itself


def test_the_coarser_layout_of_an_elongated_block_exists():
    """Grow.convergence_order compares a block's first solve with a coarser layout's; on
    the 4 x 1 plate's space-time block no even grid lies below 0.7^3 of its 765."""
    from pinn_gmnm.models.layout import even_count, grid_shape
    from pinn_gmnm.training.growth import coarser_count

    sides = (2.15, 0.65, 1.15)
    assert even_count(round(0.7**3 * 765), sides, 2) is None
    count = coarser_count(765, sides)
    assert count is not None and 0.343 * 765 <= count < 765 and grid_shape(count, sides)
    assert coarser_count(1000, (2.6, 2.6, 2.6)) == 343
