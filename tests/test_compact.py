"""The compact stage: a small mixture with every parameter trained, for fits that least
squares over fixed Gaussians leaves short; kept only when the held-out points say so."""

from __future__ import annotations

import math

import torch

from pinn_gmnm import GMNM, Collocation, LeastSquares, solve
from pinn_gmnm.fitting import fit_problem
from pinn_gmnm.methods import METHODS, Steps
from pinn_gmnm.problem import get_problem
from pinn_gmnm.training.compact import Compact, compact_components


def ridge(x):
    """A front of width 0.1 along the diagonal: what fixed Gaussians resolve poorly."""
    return torch.tanh(10 * (x[:, 0] + x[:, 1]))


def smooth(x):
    return torch.sin(math.pi * x[:, 0]) * torch.sin(math.pi * x[:, 1])


def _fit(target, stages, components=100, **kw):
    p = fit_problem(target, 2)
    torch.manual_seed(0)
    model = GMNM(2, components=components, conditions=False, bounds=p.geometry.bbox)
    return solve(p, model, stages=stages, collocation=Collocation(600, 4), **kw)


def test_compact_components_keep_equations_per_gaussian_and_per_parameter():
    assert compact_components(2, 2, 2000) == 40  # one per 50 equations
    m = compact_components(2, 2, 2000, oversampling=8.0)  # 7 parameters each, 1 more
    assert (m * 7 + 1) * 8 <= 2000 < ((m + 1) * 7 + 1) * 8
    assert compact_components(4, 4, 10) == 1  # never none


def test_a_compact_mixture_beats_least_squares_on_a_front():
    base = _fit(ridge, [LeastSquares()])
    compact = _fit(ridge, [LeastSquares(), Compact(steps=60)])
    kept = [e for e in compact.events if e["event"] == "compact kept"]
    assert kept and compact.model.layer.components < 100
    # least squares over 100 fixed Gaussians: 0.11; 60 iterations on 12 Gaussians: 3.0e-3
    assert compact.metrics["rel_l2"] < 0.1 * base.metrics["rel_l2"]


def test_a_compact_mixture_that_does_worse_is_undone():
    base = _fit(smooth, [LeastSquares()])
    worse = _fit(smooth, [LeastSquares(), Compact(steps=1, oversampling=500.0, skip_below=1e-30)])
    assert [e["event"] for e in worse.events if e["event"].startswith("compact")] == [
        "compact", "compact undone"]
    assert worse.model.layer.components == 100
    assert worse.metrics["rel_l2"] == base.metrics["rel_l2"]


def test_a_solved_fit_is_left_alone():
    s = _fit(smooth, [LeastSquares(), Compact(skip_below=1e-2)])
    assert any(e["event"] == "compact skipped" for e in s.events)
    assert s.model.layer.components == 100


def test_a_resumed_compact_stage_ends_equal_to_an_uninterrupted_one(stop_and_resume):
    full, _, resumed = stop_and_resume(
        lambda **kw: _fit(ridge, [LeastSquares(), Compact(steps=30)], **kw), 10)
    assert resumed.model.layer.components == full.model.layer.components < 100


def test_grow_goes_on_with_a_compact_mixture_and_an_interpolant_for_fits_only():
    kinds = lambda name: [s.kind for s in METHODS.get("grow").stages(  # noqa: E731
        get_problem(name), GMNM(2, components=16), Steps())]
    assert kinds("front") == ["grow", "compact", "interpolate"]
    assert kinds("poisson") == ["grow"]
