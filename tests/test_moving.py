"""A slab's Gaussians and points moved to where the state it starts from is steep."""

import math

import pytest
import torch

from pinn_gmnm import GMNM, get_problem
from pinn_gmnm.models.slabs import TimeSlabs, slab_layout
from pinn_gmnm.training import moving
from pinn_gmnm.training.batch import Collocation
from pinn_gmnm.training.gauss_newton import GaussNewton
from pinn_gmnm.training.march import MOVE_AGAIN, March
from pinn_gmnm.training.moving import monitor_warp, move, thin_grid
from pinn_gmnm.training.solve import solve

BOX = ((-1.0, 0.0), (1.0, 0.125))


def thin_piece(components: int = 1024) -> GMNM:
    torch.manual_seed(0)
    piece = GMNM(2, 1, bounds=BOX, components=components)
    slab_layout(piece, 8)
    return piece


def front(x: torch.Tensor) -> torch.Tensor:
    return torch.tanh(x[:, :1] / 0.005)  # a shock 0.005 wide at x = 0


def test_centres_crowd_at_a_front_and_keep_the_grid():
    piece = thin_piece()
    shape = thin_grid(piece)
    assert shape == (170, 6)
    times, t_widths = piece.layer.means[:, 1].clone(), piece.layer.proj[:, 1, 1].clone()
    move(piece, monitor_warp(piece, (-1.0, 1.0), front, [0.0]))
    assert thin_grid(piece) == shape  # still 170 places along x by 6 along t
    assert torch.equal(piece.layer.means[:, 1], times)
    assert torch.equal(piece.layer.proj[:, 1, 1], t_widths)
    xs = piece.layer.means[:, 0].detach().unique()
    gaps = xs.diff()
    assert bool((gaps > 0).all())
    uniform = 2.6 / 170  # the equal spacing over the box and its margin (normalised)
    at_front = gaps[(xs[1:] - 0).abs().argmin()]
    far = gaps[(xs[1:] + 0.8).abs().argmin()]
    # at the front 1/RATIO of the spacing where the state is flat (ρ = 1 there), which
    # is coarser than the equal spacing: the front takes its share of the centres
    assert float(far / at_front) == pytest.approx(moving.RATIO, rel=0.15)
    assert far > uniform
    # each Gaussian is width_factor × its local spacing wide along x
    widths = 1 / piece.layer.proj[:, 0, 0].detach()
    x = piece.layer.means[:, 0].detach()
    i = (x - 0).abs().argmin()
    assert widths[i] / piece.width_factor == pytest.approx(float(at_front), rel=0.1)
    assert (piece.layer.proj[:, 0, 1] == 0).all() and (piece.layer.proj[:, 1, 0] == 0).all()


def test_a_flat_state_keeps_the_equal_spacing():
    piece = thin_piece()
    before = piece.layer.means.detach().clone()
    widths = piece.layer.proj.detach().clone()
    move(piece, monitor_warp(piece, (-1.0, 1.0), lambda x: torch.ones(len(x), 2), [0.0]))
    torch.testing.assert_close(piece.layer.means.detach(), before)
    torch.testing.assert_close(piece.layer.proj.detach(), widths)


def test_points_move_with_the_centres_and_keep_the_ends():
    piece = thin_piece()
    warp = monitor_warp(piece, (-1.0, 1.0), front, [0.0])
    gen = torch.Generator().manual_seed(0)
    x = torch.cat([torch.rand(4000, 1, generator=gen) * 2 - 1,
                   torch.rand(4000, 1, generator=gen) * 0.125], dim=1).double()
    ends = torch.tensor([[-1.0, 0.05], [1.0, 0.1]], dtype=torch.float64)
    y = warp.points(torch.cat([x, ends]))
    torch.testing.assert_close(y[-2:], ends)  # the domain's ends stay
    assert torch.equal(y[:, 1], torch.cat([x, ends])[:, 1])  # times stay
    order = torch.argsort(x[:, 0])
    assert bool((y[order, 0].diff() >= 0).all())  # the map is monotone
    near = lambda z: float(((z[:, 0]).abs() < 0.02).float().mean())  # noqa: E731
    assert near(y[:-2]) > 5 * near(x), (near(y[:-2]), near(x))
    assert bool((y[:, 0].abs() <= 1).all())


def thin_march(**kw):
    """Burgers (ν = 0.01/π, its shock forming at t ≈ 0.32) in 3 thin slabs of 8²
    Gaussians each (⌈1.5 · 8 / 3⌉ = 4 along t, 16 along x), Newton on each, the single
    block tried first."""
    p = get_problem("burgers")
    torch.manual_seed(0)
    model = TimeSlabs(lambda b: GMNM(2, 1, bounds=b, components=64), p.geometry.bbox, 3,
                      whole=True, thin=True)
    newton = GaussNewton(steps=4, head_only=True, damping=1e-20, min_progress=0.5, patience=2)
    stages = [March(stages=(newton,), whole=(newton,), tol=1e-12)]
    return solve(p, model, stages=stages, collocation=Collocation(300, 60), **kw)


def test_a_thin_march_moves_its_slabs_and_trains_again_where_its_own_front_lies_elsewhere():
    run = thin_march()
    assert run.model.marched
    passes = [(e["slab"], e.get("moved")) for e in run.events if e["event"] == "slab"]
    # the first slab starts equally spaced, later ones moved by the state they start from
    first: dict[int, int | None] = {}
    for k, m in passes:
        first.setdefault(k, m)
    assert first == {0: None, 1: 1, 2: 1}
    again = [e for e in run.events if e["event"] == "moved"]
    assert again and all(e["shift"] > MOVE_AGAIN for e in again)
    for e in again:  # each followed by the slab's second pass
        assert (e["slab"], 2) in passes
    for piece in run.model.pieces[1:]:
        gaps = torch.unique(piece.layer.means[:, 0].detach()).diff()
        assert float(gaps.max() / gaps.min()) > 1.2  # no longer equally spaced


# inside the second slab's first pass (moved), its second pass, the third slab
@pytest.mark.parametrize("stop_at", [8, 10, 13])
def test_a_stopped_thin_march_resumes_to_the_same_result(stop_at, stop_and_resume):
    full, _, resumed = stop_and_resume(thin_march, stop_at)
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in full.history]
    assert math.isfinite(full.metrics["rel_l2"])
