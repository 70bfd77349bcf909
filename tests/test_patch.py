"""The patch of narrow Gaussians a Newton march in two space dimensions places where a
slab's state is steep (pinn_gmnm.training.patch)."""

from __future__ import annotations

import pytest
import torch

from pinn_gmnm import GMNM, Dirichlet, Initial, Problem, Rectangle, SpaceTime
from pinn_gmnm.models.slabs import NEWTON_WIDTH, PATCH_FINER, slab_layout
from pinn_gmnm.training.batch import Batch
from pinn_gmnm.training.patch import REACH, steep_patch

FRONT = 0.7
"""Where the planted front u = tanh((x − FRONT) / 0.02) crosses the square."""


def square() -> Problem:
    return Problem(SpaceTime(Rectangle((0, 0), (1, 1)), (0, 1)),
                   lambda u, x: u.d("t") - 0.01 * u.laplacian(),
                   [Dirichlet(0.0, name="edges"), Initial(0.0, name="initial")])


def slab(times=(0.25, 0.5)) -> GMNM:
    """A piece over one of 4 slabs laid out as a default Newton march's (6² → 4² a level
    and a patch of 20)."""
    torch.manual_seed(0)
    piece = GMNM(3, 1, bounds=((0.0, 0.0, times[0]), (1.0, 1.0, times[1])),
                 components=125).double()
    slab_layout(piece, 4, thin=False, width=NEWTON_WIDTH, patch=True)
    return piece


def front(x: torch.Tensor) -> torch.Tensor:
    return torch.tanh((x[:, :1] - FRONT) / 0.02)


def test_the_patch_goes_to_a_planted_front_with_its_points_and_is_placed_at_every_level():
    problem, piece = square(), slab()
    shape = piece.patch_shape
    assert shape is not None and shape.count == 20 and shape.levels == 3
    patch = steep_patch(problem, piece, front, (0.25, 0.5), rows=4, seed=1)
    step = float(patch.step[0])
    assert step == pytest.approx(2.6 / 6 / PATCH_FINER * 0.5)  # physical, half-width 0.5
    x, y = patch.centres[:, 0], patch.centres[:, 1]
    assert len(patch.centres) == 20 and len(x.unique()) > 1
    assert ((x - FRONT).abs() <= (REACH + 1) * step).all()  # at the front, on both sides
    assert (x < FRONT).any() and (x > FRONT).any()
    assert (y < 0.5).any() and (y > 0.5).any()  # along it
    # its points: rows a node and level inside, rows a node on the slab's initial slice,
    # boundary points near the nodes at the edges, all in the slab's times
    # (those of a node whose lattice cell reaches past an edge: the ones inside)
    assert 0.9 * 4 * 3 * 20 <= len(patch.interior) <= 4 * 3 * 20
    assert 0.9 * 4 * 20 <= len(patch.initial) <= 4 * 20
    inside = problem.geometry.space.inside
    assert inside(patch.interior[:, :2]).all() and inside(patch.initial[:, :2]).all()
    assert ((patch.interior[:, 0] - FRONT).abs() <= (REACH + 1.5) * step).all()
    assert patch.interior[:, 2].min() >= 0.25 and patch.interior[:, 2].max() <= 0.5
    assert (patch.initial[:, 2] == 0.25).all()
    assert len(patch.boundary) > 0
    assert ((patch.boundary[:, 0] - FRONT).abs() <= (REACH + 1.5) * step).all()
    assert patch.boundary[:, 2].min() >= 0.25 and patch.boundary[:, 2].max() <= 0.5
    edge = torch.minimum(patch.boundary[:, 1], 1 - patch.boundary[:, 1])
    assert (edge < 1e-12).all()
    # the batch keeps its count of interior points, the patch's in place of the last ones
    interior = torch.rand(1000, 3, dtype=torch.float64)
    edges, initial = torch.rand(50, 3, dtype=torch.float64), torch.rand(40, 3, dtype=torch.float64)
    batch = patch.batch(Batch(interior, (edges, initial)), problem)
    assert len(batch.interior) == 1000
    n = len(patch.interior)
    assert torch.equal(batch.interior[:1000 - n], interior[:1000 - n])
    assert torch.equal(batch.interior[1000 - n:], patch.interior)
    assert len(batch.conditions[0]) == 50 + len(patch.boundary)
    assert len(batch.conditions[1]) == 40 + len(patch.initial)
    # placed: the patch Gaussians of every level at the centres, the grid's unchanged
    grid = piece.layer.means.detach()[:shape.first].clone()
    patch.apply(piece)
    means = piece.layer.means.detach()
    assert torch.equal(means[:shape.first], grid)
    half = torch.tensor(piece.normalize.half_width[:2], dtype=torch.float64)
    center = torch.tensor(piece.normalize.center[:2], dtype=torch.float64)
    placed = means[shape.first:, :2].reshape(3, 20, 2) * half + center
    torch.testing.assert_close(placed, patch.centres.expand(3, 20, 2))


def test_a_flat_state_or_a_piece_without_a_patch_places_none():
    problem = square()
    plain = GMNM(3, 1, bounds=((0.0, 0.0, 0.0), (1.0, 1.0, 0.25)), components=125)
    assert steep_patch(problem, plain, front, (0.0, 0.25), rows=4, seed=0) is None
    flat = steep_patch(problem, slab(), lambda x: torch.ones(len(x), 1, dtype=x.dtype),
                       (0.25, 0.5), rows=4, seed=0)
    assert flat is not None and len(flat.centres) == 20  # no slope: anywhere inside
    assert ((flat.centres >= 0) & (flat.centres <= 1)).all()
