"""Re-entrant corners: the geometry finds them, the mixture and the points are graded
towards them, and that solve's rows are scaled to equal norms."""

from __future__ import annotations

import dataclasses
import math

import torch

from pinn_gmnm import GMNM, Collocation, Polygon, Rectangle, Union, get_problem
from pinn_gmnm.training import corners
from pinn_gmnm.training.batch import sample_batch
from pinn_gmnm.training.linear import linear_head
from pinn_gmnm.training.loss import Loss
from pinn_gmnm.training.lsq import linear_system, term_blocks

from test_local_growth import _lshape

L_VERTICES = [(-1, -1), (0, -1), (0, 0), (1, 0), (1, 1), (-1, 1)]


def _reentrant(g):
    return [(c.point, round(c.angle / math.pi, 9)) for c in corners.reentrant_corners(g)]


def test_polygons_and_differences_of_rectangles_know_their_reentrant_corners():
    assert _reentrant(Polygon(L_VERTICES)) == [((0.0, 0.0), 1.5)]
    assert _reentrant(Polygon(L_VERTICES[::-1])) == [((0.0, 0.0), 1.5)]  # either orientation
    cut = Rectangle((-1, -1), (1, 1)) - Rectangle((0, -1), (1, 0))
    assert _reentrant(cut) == [((0.0, 0.0), 1.5)]
    (c,) = corners.reentrant_corners(cut)
    assert sorted(c.edges) == [(0.0, -1.0), (1.0, 0.0)]  # along the two edges that meet there
    hole = Rectangle((-1, -1), (1, 1)) - Rectangle((-0.2, -0.2), (0.2, 0.2))
    assert len(_reentrant(hole)) == 4
    assert _reentrant(Rectangle((0, 0), (2, 1))) == []  # convex: nothing to grade
    assert [round(c.angle / math.pi, 9) for c in Rectangle((0, 0), (2, 1)).corners()] == [0.5] * 4
    overlap = Union(Rectangle((0, 0), (1, 1)), Rectangle((0.5, 0.5), (2, 2)))
    assert sorted(_reentrant(overlap)) == [((0.5, 1.0), 1.5), ((1.0, 0.5), 1.5)]  # edges cross


def test_unions_find_the_corner_where_their_pieces_meet_and_not_along_a_shared_edge():
    ell = Rectangle((-1, -1), (0, 1)) | Rectangle((0, 0), (1, 1))  # the L-shape, built as a union
    assert _reentrant(ell) == [((0.0, 0.0), 1.5)]
    (c,) = corners.reentrant_corners(ell)
    assert sorted(c.edges) == [(0.0, -1.0), (1.0, 0.0)]  # not up the edge the pieces share
    plus = Rectangle((-1, -0.2), (1, 0.2)) | Rectangle((-0.2, -1), (0.2, 1))
    found = sorted(tuple(round(v, 9) for v in p) for p, _ in _reentrant(plus))
    assert found == [(-0.2, -0.2), (-0.2, 0.2), (0.2, -0.2), (0.2, 0.2)]
    assert all(abs(a - 1.5) < 1e-2 for _, a in _reentrant(plus))
    interior, boundary = corners.corner_points(plus)
    assert bool(plus.interior(interior).all()) and bool(plus.on_boundary(boundary).all())


def test_graded_points_lie_in_the_domain_and_on_its_edges_nearer_and_nearer_the_corner():
    g = Polygon(L_VERTICES)
    interior, boundary = corners.corner_points(g)
    assert bool(g.interior(interior).all()) and bool(g.on_boundary(boundary).all())
    r = interior.norm(dim=1)
    shortest = corners.REACH * corners.RATIO ** corners.LEVELS
    assert float(r.min()) < shortest and float(r.max()) < 2 * corners.REACH
    assert int((r < 1e-2).sum()) >= 100  # graded: dense where the singularity is
    centres, widths = corners.corner_gaussians(g)
    assert bool(torch.isclose(widths, corners.WIDTH * centres.norm(dim=1)).all())
    deep = (centres[:, 0] > 0.6 * centres.norm(dim=1)) & (centres[:, 1] < -0.6 * centres.norm(dim=1))
    assert not bool(deep.any())  # none deep in the cut-away quadrant


def test_equal_rows_scale_every_row_to_the_same_norm_and_keep_a_consistent_solution():
    p = get_problem("poisson-lshape")
    torch.manual_seed(0)
    model = GMNM(2, components=30, bounds=p.geometry.bbox).double()
    loss = Loss(p, sample_batch(p, Collocation(200, 80), seed=0))
    head = linear_head(model)
    with torch.no_grad():
        plain = linear_system(loss, model, head)
        loss.equal_rows = True
        blocks = term_blocks(loss, model, head)
    for (J, _), n in zip(blocks, loss.counts):
        assert torch.allclose(J.norm(dim=1), torch.full((len(J),), 1 / math.sqrt(n), dtype=J.dtype))
    # a right-hand side that some head meets exactly: both scalings find that head
    theta = torch.randn(plain[0].shape[1], dtype=torch.float64)
    J0, _ = plain
    Je, re = torch.cat([J for J, _ in blocks]), torch.cat([r for _, r in blocks])
    scale = Je.norm(dim=1) / J0.norm(dim=1)
    x = torch.linalg.lstsq(Je, (J0 @ theta) * scale).solution
    assert torch.allclose(J0 @ x, J0 @ theta, atol=1e-8 * float((J0 @ theta).norm()))
    assert re.shape == (len(Je),)


def test_grading_the_lshape_corner_resolves_its_singularity():
    """100 Gaussians and 300 points, one round: 0.12 without grading, 5e-4 with it."""
    plain, graded = _lshape(1), _lshape(1, corners=True)
    assert plain.metrics["rel_l2"] > 5e-2
    assert graded.metrics["rel_l2"] < 2e-3
    (event,) = [e for e in graded.events if e["event"] == "graded"]
    assert event["gaussians"] > 0 and event["points"] > 0
    assert graded.task.loss.equal_rows and not plain.task.loss.equal_rows


def test_an_lshape_built_as_a_union_is_graded_as_the_polygon_is():
    """The same L-shape from two rectangles: its corner is found, graded, and solved as
    well as the polygon's (the FEM reference of ``poisson-lshape`` serves both)."""
    polygon = get_problem("poisson-lshape")
    union = dataclasses.replace(polygon, geometry=Rectangle((-1, -1), (0, 1)) | Rectangle((0, 0), (1, 1)))
    a, b = _lshape(1, corners=True), _lshape(1, union, corners=True)
    assert b.metrics["rel_l2"] < 2e-3 and b.metrics["rel_l2"] < 3 * a.metrics["rel_l2"]
    (graded,) = [e for e in b.events if e["event"] == "graded"]
    assert graded["gaussians"] > 0
