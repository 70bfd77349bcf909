"""Adaptive growth of a GMNM: Gaussians go where the residual is, and a grown model
saves, loads and resumes at its new size."""

from __future__ import annotations

import pytest
import torch

from pinn_gmnm import GMNM, Collocation, solve
from pinn_gmnm.fitting import fit_problem
from pinn_gmnm.training.growth import Grow, peaks

PEAK = torch.tensor([0.4, -0.3], dtype=torch.float64)


def bump(x):
    """A smooth plane plus a narrow bump (width 0.05) at PEAK: the residual's one peak."""
    r2 = (x - PEAK.to(x)).square().sum(dim=1)
    return x[:, 0] + 2.0 * torch.exp(-r2 / (2 * 0.05**2))


def _grow(steps, **kw):
    p = fit_problem(bump, 2)
    torch.manual_seed(0)
    model = GMNM(2, components=64, conditions=False, bounds=p.geometry.bbox)
    return solve(p, model, stages=[Grow(steps=steps, fraction=0.1)],
                 collocation=Collocation(1500, 4), **kw)


def test_peaks_are_the_largest_scores_kept_apart():
    x = torch.tensor([[0.0, 0.0], [0.01, 0.0], [0.5, 0.5], [0.9, 0.9]], dtype=torch.float64)
    score = torch.tensor([4.0, 3.0, 2.0, 1.0])
    radius = torch.full((4,), 0.1, dtype=torch.float64)
    assert peaks(x, score, 2, radius).tolist() == [0, 2]  # point 1 is too close to point 0
    assert peaks(x, score, 10, radius).tolist() == [0, 2, 3]


def test_growth_adds_narrower_gaussians_where_the_planted_peak_is():
    s = _grow(1)
    grew = [e for e in s.events if e["event"] == "grew"]
    assert len(grew) == 1 and grew[0]["added"] >= 1
    layer = s.model.layer
    assert layer.components == 64 + grew[0]["added"] - grew[0]["removed"]
    A, mu = (t.detach() for t in s.model.physical())
    first_new = mu[64] if grew[0]["removed"] == 0 else None
    if first_new is not None:  # the largest residual is at the bump
        assert float((first_new.detach() - PEAK).abs().max()) < 0.1
    # the Gaussians nearest the bump are now narrower than the initial ones
    near = (mu - PEAK).abs().amax(dim=1) < 0.15
    widths = (2 / A.diagonal(dim1=1, dim2=2).sum(1)).sqrt()
    assert bool(near.any()) and float(widths[near].min()) < 0.6 * float(widths[:64].min())


def test_growth_lowers_the_error_on_a_planted_peak():
    from pinn_gmnm import LeastSquares

    p = fit_problem(bump, 2)
    torch.manual_seed(0)
    base = solve(p, GMNM(2, components=64, conditions=False, bounds=p.geometry.bbox),
                 stages=[LeastSquares()], collocation=Collocation(1500, 4))
    grown = _grow(4)  # 0.13 → 9.8e-3 in four rounds, widths halved each round
    assert grown.metrics["rel_l2"] < 0.1 * base.metrics["rel_l2"]


def test_a_grown_model_loads_into_a_model_of_its_config():
    s = _grow(2)
    fresh = GMNM(2, components=64, conditions=False, bounds=s.problem.geometry.bbox).double()
    fresh.load_state_dict(s.model.state_dict())
    assert fresh.layer.components == s.model.layer.components > 64
    x = torch.rand(50, 2, dtype=torch.float64) * 2 - 1
    assert torch.equal(fresh(x), s.model(x))


def test_a_resumed_growth_ends_equal_to_an_uninterrupted_one(stop_and_resume):
    full, _, resumed = stop_and_resume(lambda **kw: _grow(3, **kw), 3)
    assert full.metrics["steps"] == 4  # the first solve, then three rounds
    assert resumed.model.layer.components == full.model.layer.components


def test_a_grown_run_directory_loads_at_its_grown_size(tmp_path):
    from pinn_gmnm import load_solution
    from pinn_gmnm.config import RunConfig
    from pinn_gmnm.run import run

    config = RunConfig(problem="front", interior=400, model_options={"components": 36},
                       method="grow")
    result = run(config, out=tmp_path, name="front")
    grown = result.solution.model.layer.components  # grown, then compacted (a fit)
    assert grown != 36 and any(e["event"] == "grew" for e in result.solution.events)
    loaded = load_solution(result.directory)
    assert loaded.model.layer.components == grown
    x = torch.rand(40, 2, dtype=torch.float64) * 2 - 1
    assert torch.equal(loaded(x), result.solution.model.cpu()(x))  # (loaded on the CPU)


def _refining(**kw):
    """Poisson on the square with 16 Gaussians and few points: too coarse a level, which a
    uniform refinement (4 × the points, as many Gaussians as they allow) improves. With
    16 equations per unknown kept, local growth has no room: it stops at once and refines."""
    from pinn_gmnm import get_problem

    p = get_problem("poisson")
    torch.manual_seed(0)
    model = GMNM(2, components=16, bounds=p.geometry.bbox)
    return solve(p, model, stages=[Grow(steps=2, refinements=1, oversampling=16.0)],
                 collocation=Collocation(200, 80), **kw)


def test_a_coarse_pde_level_is_refined_uniformly_and_kept_when_it_helps():
    from pinn_gmnm import LeastSquares, get_problem

    s = _refining()
    refined = [e for e in s.events if e["event"] == "refined"]  # one per width tried
    assert [e["event"] for e in s.events].count("refine kept") == 1
    assert 1 <= len(refined) <= 2
    assert min(e["held_out"] / e["held_out_coarse"] for e in refined) < 1
    # 4 × (200 + 80) points, and 4 equations per unknown: 1120 / 4 − 1 → 16² Gaussians
    assert refined[0]["points"] == 4 * 280 and refined[0]["components"] == 256
    assert all(e["predicted_s"] > 0 for e in refined)
    assert s.model.layer.components >= 256
    p = get_problem("poisson")
    torch.manual_seed(0)
    coarse = solve(p, GMNM(2, components=16, bounds=p.geometry.bbox), stages=[LeastSquares()],
                   collocation=Collocation(200, 80))
    assert s.metrics["rel_l2"] < 0.2 * coarse.metrics["rel_l2"]


def test_a_fit_is_never_refined_its_samples_are_its_data():
    s = _grow(2)
    assert not any(e["event"].startswith("refine") for e in s.events)


def test_a_refinement_that_does_not_help_is_undone(monkeypatch):
    from pinn_gmnm.training import growth

    calls = []

    def rising(self, task):  # every later held-out check is worse than every earlier one
        calls.append(None)  # (and than the coarse level's, which the refinement weighs itself)
        return 1e9 * len(calls)

    monkeypatch.setattr(growth.HeldOut, "value", rising)
    s = _refining()
    events = [e["event"] for e in s.events]
    assert "refine undone" in events and "refine kept" not in events
    assert s.model.layer.components == 16  # back to the coarse level


def test_a_resumed_growth_continues_on_the_refined_level(stop_and_resume):
    full, _, resumed = stop_and_resume(_refining, 1)
    assert resumed.model.layer.components == full.model.layer.components >= 256


def test_a_refinements_predicted_time_scales_its_factorisations_by_their_cost():
    """The factorisations (QR, then the SVD of R) scale by :func:`lstsq_cost`, the rest of
    the solve (building the system, the held-out check) by rows × columns; a solve whose
    factorisations were not timed apart scales as a whole."""
    from pinn_gmnm.training.lsq import SVD_COST, lstsq_cost

    state = {"solve_s": 3.0, "factor_s": 2.0, "other_s": 0.5}
    ratio = lstsq_cost(8000, 600) / lstsq_cost(2000, 300)
    assert Grow.refine_seconds(state, 2000, 300, 8000, 600) == pytest.approx(
        2.0 * ratio + 1.5 * 8)
    untimed = {"solve_s": 3.0, "factor_s": 3.0, "other_s": 0.0}
    assert Grow.refine_seconds(untimed, 2000, 300, 8000, 600) == pytest.approx(3.0 * ratio)
    # tall: the QR's rows · c² and the SVD of R; not tall enough: the SVD of J itself
    assert lstsq_cost(2000, 300) == pytest.approx(2000 * 300**2 + SVD_COST * 300**3)
    assert lstsq_cost(500, 300) == pytest.approx(SVD_COST * 500 * 300**2)


def test_a_least_squares_solution_reports_its_factorisations_seconds():
    from pinn_gmnm.training.lsq import solve_lstsq

    J = torch.randn(300, 40, dtype=torch.float64)
    solution = solve_lstsq(J, torch.randn(300, dtype=torch.float64))
    assert solution.seconds > 0
