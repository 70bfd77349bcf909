"""The compact march: a few space-time Gaussians per slab, started from a compact fit of
the initial state and carried from slab to slab along their paths; chosen only where the
grid march's Gaussians cannot represent the initial state as well."""

from __future__ import annotations

import copy

import pytest
import torch

from pinn_gmnm import GMNM, Collocation, GaussNewton, get_problem, solve
from pinn_gmnm.geometry import Disk, SpaceTime
from pinn_gmnm.models.slabs import TimeSlabs
from pinn_gmnm.training.compact_march import (COMPACT_COMPONENTS, FOCUS_SPREAD,
                                              HELD_OUT_PATIENCE, JITTER, advance,
                                              compact_stages,
                                              features, first_slab_stages, focus_points,
                                              initial_condition, lift, shares,
                                              slab_components)
from pinn_gmnm.training.growth import Grow
from pinn_gmnm.training.march import March


def spatial_fit(means, weights, sd=0.05) -> GMNM:
    """A GMNM on the unit square with isotropic Gaussians at ``means`` (physical)."""
    fit = GMNM(2, 1, len(means), bounds=((0.0, 0.0), (1.0, 1.0)), width_factor=1.0,
               conditions=False).double()
    with torch.no_grad():
        fit.layer.means.copy_(torch.tensor(means, dtype=torch.float64) * 2 - 1)
        fit.layer.proj.copy_(torch.eye(2, dtype=torch.float64).expand(len(means), 2, 2)
                             * (0.5 / sd))  # normalised coordinates: half-width 0.5
        fit.layer.weights.copy_(torch.tensor(weights, dtype=torch.float64)[:, None])
        fit.layer.bias.fill_(0.01)
    return fit


def test_features_group_overlapping_gaussians_and_share_the_slab_equally():
    """Two Gaussians 0.02 apart (width 0.05) are one feature, one 0.5 away another, a
    negligible weight none: 8 Gaussians a feature, shared within a feature by |π|."""
    fit = spatial_fit([(0.3, 0.3), (0.32, 0.3), (0.8, 0.7), (0.1, 0.9)],
                      [0.6, 0.2, -0.5, 1e-4])
    assert sorted(map(sorted, features(fit))) == [[0, 1], [2]]
    assert slab_components(fit) == 2 * COMPACT_COMPONENTS
    assert shares(fit, 16) == [6, 2, 8, 0]


def test_a_lifted_slab_starts_as_the_fit_and_an_advanced_one_goes_on_along_its_path():
    """The first slab's piece at t_0 equals the fit it was lifted from; a Gaussian moving
    at velocity v, advanced into the next slab, has the same velocity there and the same
    profile in space at that slab's middle."""
    fit = spatial_fit([(0.3, 0.4), (0.7, 0.6)], [1.0, -0.5])
    model = TimeSlabs(lambda b: GMNM(3, 1, 8, bounds=b, width_factor=1.0),
                      ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)), 4).double()
    for piece in model.pieces:
        piece.layer._resize(8)
    lift(model.pieces[0], fit, seed=0)
    x = torch.rand(200, 2, dtype=torch.float64)
    at_t0 = torch.cat([x, torch.zeros(len(x), 1, dtype=torch.float64)], dim=1)
    torch.testing.assert_close(model.pieces[0](at_t0), fit(x), rtol=1e-12, atol=1e-14)
    assert len(model.pieces[0].layer.means.unique(dim=0)) == 8  # the copies jittered
    # give piece 0 a shear: each Gaussian's centre moves at v = (0.4, -0.2) in time
    v = torch.tensor([0.4, -0.2], dtype=torch.float64)
    with torch.no_grad():
        A, mu = model.pieces[0].physical()
        Axx = A[:, :2, :2]
        A[:, :2, 2] = A[:, 2, :2] = -(Axx @ v)
        A[:, 2, 2] = 30.0 + ((Axx @ v) * v).sum(dim=1)
        h = torch.tensor(model.pieces[0].normalize.half_width, dtype=torch.float64)
        W = torch.linalg.cholesky(A * h[:, None] * h[None, :]).transpose(-1, -2)
        model.pieces[0].layer.proj.copy_(W)
    advance(model, 1)
    A1, mu1 = model.pieces[1].physical()
    v1 = -torch.linalg.solve(A1[:, :2, :2], A1[:, :2, 2:]).squeeze(-1)
    torch.testing.assert_close(v1, v.expand_as(v1), rtol=1e-10, atol=1e-12)
    t_mid = 0.5 * (model.times[1] + model.times[2])
    mid = torch.cat([x, torch.full((len(x), 1), t_mid, dtype=torch.float64)], dim=1)
    torch.testing.assert_close(model.pieces[1](mid), model.pieces[0](mid), rtol=1e-10,
                               atol=1e-12)


def test_an_advanced_slab_puts_a_gaussian_that_carries_nothing_back_to_work():
    """A Gaussian of negligible weight that ran far off (as Levenberg–Marquardt leaves
    some) is not carried on: in the next slab it is a copy of a significant one, jittered
    about its centre in space, moving with it, with weight 0; the others advance as
    before."""
    fit = spatial_fit([(0.3, 0.4), (0.7, 0.6)], [1.0, -0.5])
    model = TimeSlabs(lambda b: GMNM(3, 1, 4, bounds=b, width_factor=1.0),
                      ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)), 4).double()
    for piece in model.pieces:
        piece.layer._resize(4)
    first = model.pieces[0]
    lift(first, fit, seed=0)
    with torch.no_grad():
        first.layer.weights.copy_(torch.tensor([[1.0], [2e-3], [-0.5], [0.3]]))
        first.layer.means[1, :2] = 100.0  # run off, far outside the square
    kept = copy.deepcopy(first)
    with torch.no_grad():
        kept.layer.weights[1] = 0.0
    advance(model, 1)
    layer = model.pieces[1].layer
    weights, proj, means = (p.detach() for p in (layer.weights, layer.proj, layer.means))
    assert float(weights[1]) == 0.0
    j = next(j for j in (0, 2, 3) if torch.equal(proj[1], proj[j]))
    narrow = 1.0 / float(torch.linalg.svdvals(proj[j]).max())
    assert float((means[1, :2] - means[j, :2]).norm()) <= 5 * JITTER * narrow
    assert float(means[1, 2]) == float(means[j, 2])
    t_mid = 0.5 * (model.times[1] + model.times[2])
    mid = torch.cat([torch.rand(200, 2, dtype=torch.float64),
                     torch.full((200, 1), t_mid, dtype=torch.float64)], dim=1)
    torch.testing.assert_close(model.pieces[1](mid), kept(mid), rtol=1e-10, atol=1e-12)


def test_focused_points_follow_the_significant_gaussians_inside_the_slab():
    """A slab of one moving Gaussian (sd 0.05, velocity (0.4, −0.2)) and one of negligible
    weight far off, on a disk: the points drawn inside the slab lie about the moving one,
    those of the initial slice about its centre there, none near the other; a Gaussian
    moving out of the disk still gives points, all of them inside."""
    piece = GMNM(3, 1, 2, bounds=((-1.0, -1.0, 0.0), (1.0, 1.0, 0.5)), width_factor=1.0).double()
    v, sd = torch.tensor([0.4, -0.2], dtype=torch.float64), 0.05
    A = torch.zeros(2, 3, 3, dtype=torch.float64)
    A[:, :2, :2] = torch.eye(2) / sd**2
    A[:, :2, 2] = A[:, 2, :2] = -(A[:, :2, :2] @ v)
    A[:, 2, 2] = 4.0 + (v @ A[0, :2, :2] @ v)
    h = torch.tensor(piece.normalize.half_width, dtype=torch.float64)
    c = torch.tensor(piece.normalize.center, dtype=torch.float64)
    mu = torch.tensor([[0.2, 0.1, 0.25], [-0.6, -0.6, 0.25]], dtype=torch.float64)
    with torch.no_grad():
        piece.layer.proj.copy_(torch.linalg.cholesky(A * h[:, None] * h[None, :]).transpose(-1, -2))
        piece.layer.means.copy_((mu - c) / h)
        piece.layer.weights.copy_(torch.tensor([[1.0], [1e-6]], dtype=torch.float64))
    slab = SpaceTime(Disk((0.0, 0.0), 1.0), (0.0, 0.5))
    x = focus_points(piece, slab, 2000, seed=3)
    assert x.shape == (2000, 3) and bool(slab.interior(x).all())
    path = mu[0, :2] + v * (x[:, 2:] - mu[0, 2])  # the moving Gaussian's centre at each t
    r = (x[:, :2] - path).norm(dim=1) / (FOCUS_SPREAD * sd)
    assert float(r.max()) < 6 and 1.0 < float(r.pow(2).mean()) < 3.0  # ≈ 2: a 2-D normal
    face = focus_points(piece, slab, 500, seed=4, at=0.0)
    assert bool((face[:, 2] == 0.0).all())
    torch.testing.assert_close(face[:, :2].mean(dim=0), mu[0, :2] - v * mu[0, 2],
                               atol=0.02, rtol=0)
    with torch.no_grad():
        piece.layer.means[0, :2] = (torch.tensor([0.99, 0.0], dtype=torch.float64) - c[:2]) / h[:2]
    rim = focus_points(piece, slab, 2000, seed=5)
    assert 1000 < len(rim) <= 2000 and bool(slab.interior(rim).all())


def test_a_compact_slab_trains_and_checks_on_points_focused_where_its_state_is(monkeypatch):
    """Every compact slab draws half its interior points from its Gaussians (the other
    half uniform) and its held-out checks get as many focused ones, drawn apart from
    them; the first slab's initial condition gets its own focused points (400 on the
    slice, 80 boundary points drawn: 80 more)."""
    from pinn_gmnm.training import heldout

    seen = []
    init = heldout.HeldOut.__init__

    def spy(self, task, params, **kw):
        init(self, task, params, **kw)
        focus = getattr(task, "extra", {}).get("focus")
        if focus is not None:
            seen.append((task.slab, task.loss.batch, self.loss.batch, focus))

    monkeypatch.setattr(heldout.HeldOut, "__init__", spy)
    compact_run("advection-diffusion-2d")
    assert {slab for slab, *_ in seen} == {0, 1, 2, 3}
    for slab, train, held, focus in seen:
        assert len(focus) == 4 and len(focus[0]) == len(focus[2]) == 200
        assert len(train.interior) == len(held.interior) == 400
        torch.testing.assert_close(train.interior[200:], focus[0])
        torch.testing.assert_close(held.interior[200:], focus[2])
        assert not torch.equal(focus[0], focus[2])
        if slab == 0:  # the initial condition: its uniform points, then the focused ones
            torch.testing.assert_close(train.conditions[1][-len(focus[1]):], focus[1])
            torch.testing.assert_close(held.conditions[1][-len(focus[3]):], focus[3])


def test_an_unsolved_later_compact_slab_is_halved_and_keeps_its_gaussians():
    """With a single Levenberg–Marquardt step a slab, the later compact slabs are left
    unsolved: each is halved once (``splits`` 2: one level below the compact march's),
    its halves started from the slab before with as many Gaussians; the first slab,
    started from the initial state's fit, is never halved."""
    run = compact_run("advection-diffusion-2d", splits=2,
                      compact=(GaussNewton(steps=1, head_only=True), GaussNewton(steps=1)))
    splits = [e for e in run.events if e["event"] == "split"]
    assert splits and all(e["reason"] == "unsolved" and e["slab"] > 0 for e in splits)
    assert run.model.levels.tolist()[0] == 1 and max(run.model.levels.tolist()) == 2
    assert {q.layer.components for q in run.model.pieces} == {COMPACT_COMPONENTS}
    assert run.model.slabs == 4 + len(splits)


def compact_run(name: str, *, components: int = 64, splits: int = 0,
                compact=(GaussNewton(steps=1, head_only=True), GaussNewton(steps=3)), **kw):
    """The default march of a linear problem, small: 2 slabs grown by least squares (the
    block tried first), going on compact when that wins, its slabs trained by a few
    Levenberg–Marquardt steps (``compact``); no budget, so that runs are reproducible."""
    p = get_problem(name)
    torch.manual_seed(0)
    model = TimeSlabs(lambda b: GMNM(p.dim, p.n_outputs, bounds=b, components=components),
                      p.geometry.bbox, 2, whole=True, spatial=True)
    grow = Grow(steps=1, tol=1e-6, refinements=0)
    return solve(p, model, stages=[March(stages=(grow,), whole=(grow,), compact=compact,
                                         splits=splits)],
                 collocation=Collocation(400, 80), **kw)


def test_a_smooth_initial_state_keeps_the_grid_march():
    """heat-2d's smooth initial state the grid fits far better than 8 Gaussians do: the
    grid march (the pulse that goes compact: the slow test below)."""
    heat = compact_run("heat-2d")
    (choice,) = [e for e in heat.events if e["event"] == "compact march"]
    assert not choice["chosen"] and choice["layout_error"] < choice["fit_error"]
    assert heat.model.slabs == 2 and all(q.layer.components > 8 for q in heat.model.pieces)


def test_the_first_compact_slab_trains_every_parameter_without_a_cap():
    """Started at rest, the first slab must find how its state moves: no Newton step on
    the head alone, and Levenberg–Marquardt for as long as it needs; the stages
    themselves are left as they were for the later slabs."""
    stages = (GaussNewton(steps=1, head_only=True), GaussNewton(steps=40, patience=7))
    (first,) = first_slab_stages(stages)
    assert isinstance(first, GaussNewton) and not first.head_only
    assert first.steps is None and first.patience == 7
    assert stages[1].steps == 40
    (default,) = first_slab_stages(compact_stages())  # the run's: the held-out patience kept
    assert default.steps is None and default.held_out == HELD_OUT_PATIENCE > 3


def test_only_a_scalar_problem_started_by_its_value_is_judged():
    assert initial_condition(get_problem("advection-diffusion-2d")) is not None
    assert initial_condition(get_problem("wave-1d")) is None  # u and u_t start it
    assert initial_condition(get_problem("gray-scott")) is None  # two fields


def test_a_stopped_compact_march_resumes_to_the_same_result(stop_and_resume):
    """Stopped in the second compact slab (step 33: the trial's solve, the first slab's
    30 steps, then the second's): the first slab's lift, its fit, the carry-over into
    the second and its focused points are redone or restored exactly."""
    full, _, resumed = stop_and_resume(
        lambda **kw: compact_run("advection-diffusion-2d", **kw), 33)
    assert [e["step"] for e in full.events if e["event"] == "slab"][:2] == [31, 35]
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in full.history]
    assert resumed.model.levels.tolist() == [1, 1, 1, 1]


@pytest.mark.slow
def test_the_compact_march_carries_a_pulse_the_grid_march_smears():
    """advection-diffusion-2d in the small march above, 20 Levenberg–Marquardt steps a
    compact slab: its pulse (0.1 wide) is one Gaussian, which the compact fit finds
    exactly while the grid's 55 Gaussians a slab do not: compact, in 4 slabs of 8
    Gaussians. The pulse arrives with a relative L2 error under 5e-2 (2.1e-2 measured),
    where the grid march of the same run, with 343 Gaussians a slab, is off by more than
    0.3 (0.36; 0.84 with 64)."""
    compact = compact_run("advection-diffusion-2d",
                          compact=(GaussNewton(steps=1, head_only=True), GaussNewton(steps=20)))
    assert compact.metrics["rel_l2"] < 5e-2, compact.metrics["rel_l2"]
    (choice,) = [e for e in compact.events if e["event"] == "compact march"]
    assert choice["chosen"] and choice["fit_error"] < 1e-6 < choice["layout_error"]
    assert compact.model.slabs == 4 and compact.model.levels.tolist() == [1, 1, 1, 1]
    assert all(q.layer.components == 8 for q in compact.model.pieces)
    assert [e["slab"] for e in compact.events if e["event"] == "slab"] == [0, 1, 2, 3]
    assert compact.parameters == 4 * (8 * (3 + 9 + 1) + 1)
    grid = compact_run("advection-diffusion-2d", components=343, compact=())
    assert not [e for e in grid.events if e["event"] == "compact march"]
    assert grid.metrics["rel_l2"] > 0.3, grid.metrics["rel_l2"]
