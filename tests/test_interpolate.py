"""The interpolate stage: a Gaussian at every sample of a fit, its width and ridge chosen
by leave-one-out cross-validation in closed form, kept only where held-out samples say so."""

from __future__ import annotations

import math

import pytest
import torch

from pinn_gmnm import GMNM, Collocation, LeastSquares, solve
from pinn_gmnm.errors import GMNMError
from pinn_gmnm.fitting import fit_problem
from pinn_gmnm.problem import get_problem
from pinn_gmnm.training.batch import sample_batch
from pinn_gmnm.training.interpolate import Interpolate, leave_one_out


_problems: dict = {}


def rings(x):
    """Rings in 3-D that 27 Gaussians on a grid cannot follow from 300 samples."""
    return torch.sin(2 * x.square().sum(dim=1))


def smooth(x):
    return torch.sin(math.pi * x[:, 0]) * torch.sin(math.pi * x[:, 1])


def _fit(target, dim, stages, components, points=300):
    p = _problems.setdefault(target, fit_problem(target, dim))
    torch.manual_seed(0)
    model = GMNM(dim, components=components, conditions=False, bounds=p.geometry.bbox)
    return solve(p, model, stages=stages, collocation=Collocation(points, 4))


def test_leave_one_out_in_closed_form_equals_refitting_without_each_sample():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(25, 2, generator=g, dtype=torch.float64)
    y = torch.sin(3 * x[:, :1]) + x[:, 1:]
    K = torch.exp(-0.5 * torch.cdist(x, x).square() / 0.3**2)
    err, ridge, w = leave_one_out(K, y, (1e-3,))
    left = []
    for i in range(25):
        keep = torch.arange(25) != i
        wi = torch.linalg.solve(K[keep][:, keep] + 1e-3 * torch.eye(24, dtype=torch.float64), y[keep])
        left.append(y[i] - K[i, keep] @ wi)
    assert ridge == 1e-3
    assert torch.allclose(w, torch.linalg.solve(K + 1e-3 * torch.eye(25, dtype=torch.float64), y))
    assert err == pytest.approx(float(torch.stack(left).norm() / y.norm()), rel=1e-8)
    # of several ridges, the one with the least leave-one-out error
    errs = {r: leave_one_out(K, y, (r,))[0] for r in (1e-8, 1e-3, 1e-1)}
    assert leave_one_out(K, y, tuple(errs))[1] == min(errs, key=errs.get)


def test_the_interpolant_replaces_a_mixture_too_coarse_for_the_samples():
    base = _fit(rings, 3, [LeastSquares()], components=27)
    s = _fit(rings, 3, [LeastSquares(), Interpolate()], components=27)
    [event] = [e for e in s.events if e["event"] == "interpolate"]
    assert event["kept"] and event["held_out"] < event["replaced_held_out"]
    layer = s.model.layer
    assert layer.components == 300  # a Gaussian centred at every sample
    samples = sample_batch(_problems[rings], Collocation(300, 4), seed=0).interior
    x = s.model.normalize(samples)
    assert torch.equal(layer.means.detach(), x.to(layer.means))
    # measured: 0.26 from 27 Gaussians, 4.4e-2 interpolated
    assert s.metrics["rel_l2"] < 0.3 * base.metrics["rel_l2"]


def test_a_worse_interpolant_is_undone_and_a_solved_fit_left_alone():
    base = _fit(smooth, 2, [LeastSquares()], components=100)
    worse = _fit(smooth, 2, [LeastSquares(), Interpolate(skip_below=1e-30)], components=100)
    [event] = [e for e in worse.events if e["event"] == "interpolate"]
    assert not event["kept"] and event["held_out"] >= event["replaced_held_out"]
    assert worse.model.layer.components == 100
    assert worse.metrics["rel_l2"] == base.metrics["rel_l2"]
    solved = _fit(smooth, 2, [LeastSquares(), Interpolate(skip_below=1e-2)], components=100)
    assert [e["reason"] for e in solved.events if e["event"] == "interpolate skipped"] == [
        "held-out residual below skip_below"]


def test_too_many_samples_skip_the_stage_and_a_pde_is_refused():
    s = _fit(rings, 3, [LeastSquares(), Interpolate(most_samples=100)], components=27)
    [event] = [e for e in s.events if e["event"] == "interpolate skipped"]
    assert "more than most_samples" in event["reason"] and s.model.layer.components == 27
    p = get_problem("poisson-1d")
    with pytest.raises(GMNMError, match="must be a fit"):
        solve(p, GMNM(1, components=8, bounds=p.geometry.bbox), stages=[Interpolate()],
              collocation=Collocation(50, 4))
