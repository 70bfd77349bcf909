"""Shapes: sampling lands inside or on the boundary, normals point outward, CSG works."""

from __future__ import annotations

import math

import pytest
import torch

from pinn_gmnm import (Ball, Box, Disk, GMNMError, Interval, Polygon, Rectangle, SpaceTime, Sphere,
                       near)
from pinn_gmnm.sampling import SAMPLERS, Grid, Sobol, get_sampler

SAMPLER_NAMES = ["uniform", "sobol", "halton", "lhs", "grid"]


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_samplers_fill_the_unit_cube_deterministically(name):
    s = get_sampler(name)
    a, b = s.unit(256, 3, seed=5), s.unit(256, 3, seed=5)
    assert (a == b).all()
    assert a.min() >= 0 and a.max() < 1
    assert abs(a.mean() - 0.5) < 0.05


def test_sampler_registry_names():
    assert sorted(SAMPLERS.names()) == sorted(SAMPLER_NAMES)
    with pytest.raises(GMNMError, match="did you mean 'sobol'"):
        get_sampler("sobel")


@pytest.mark.parametrize("geom", [Interval(-1, 2), Rectangle((0, -1), (3, 1)),
                                  Box((0, 0, 0), (1, 2, 3)), Disk((1, 2), 0.5),
                                  Ball((0, 0, 0), 2.0), Sphere((1, 0, 0), 0.5),
                                  Polygon([(-1, -1), (0, -1), (0, 0), (1, 0), (1, 1), (-1, 1)]),
                                  Polygon([(0, 0), (2, 0.5), (1, 2)])])
@pytest.mark.parametrize("sampler", [Sobol(), Grid()])
def test_interior_and_boundary_samples(geom, sampler):
    x = geom.sample_interior(500, sampler, seed=1)
    assert x.shape[1] == geom.dim and len(x) > 0
    assert geom.inside(x).all()
    b = geom.sample_boundary(200, sampler, seed=2)
    if isinstance(sampler, Grid):  # grids give about the number asked for
        assert abs(len(b) - 200) <= 60
    else:
        assert len(b) == 200
    assert geom.on_boundary(b).all()
    n = geom.normal(b)
    torch.testing.assert_close(n.norm(dim=1), torch.ones(len(b), dtype=torch.float64))
    # outward: a small step along the normal leaves the shape, a step back stays in
    eps = 1e-3
    assert not geom.inside(b + eps * n).any()
    assert geom.inside(b - eps * n).all()


def test_box_normals_and_faces():
    r = Rectangle((0, 0), (2, 1))
    pts = torch.tensor([[0.0, 0.5], [2.0, 0.5], [1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    expected = torch.tensor([[-1.0, 0], [1, 0], [0, -1], [0, 1]], dtype=torch.float64)
    torch.testing.assert_close(r.normal(pts), expected)
    b = r.sample_boundary(3000, Sobol(), seed=0)
    # boundary points are spread in proportion to edge length (2, 1, 2, 1)
    left = near(b[:, 0], 0.0).double().mean()
    bottom = near(b[:, 1], 0.0).double().mean()
    assert abs(left - 1 / 6) < 0.02 and abs(bottom - 2 / 6) < 0.02


def test_rectangle_with_holes():
    outer = Rectangle((0, 0), (4, 2))
    holes = [Disk((1, 1), 0.4), Disk((3, 1), 0.3)]
    shape = outer - holes[0] - holes[1]
    x = shape.sample_interior(4000, Sobol(), seed=3)
    assert len(x) == 4000
    for h in holes:
        assert not h.interior(x).any()
    area = 8 - math.pi * (0.4**2 + 0.3**2)
    assert abs(shape.volume - area) / area < 0.02
    b = shape.sample_boundary(6000, Sobol(), seed=4)
    assert shape.on_boundary(b).all()
    perimeter = 12 + 2 * math.pi * 0.7
    assert abs(shape.boundary_measure - perimeter) / perimeter < 0.02
    for h in holes:
        share = h.on_boundary(b).double().mean().item()
        assert abs(share - 2 * math.pi * h.radius / perimeter) < 0.02
        # on a hole the outward normal of the shape points into the hole
        on = b[h.on_boundary(b)]
        n = shape.normal(on)
        assert h.interior(on + 1e-3 * n).all()


def test_union_and_intersection():
    a, b = Rectangle((0, 0), (2, 2)), Rectangle((1, 1), (3, 3))
    u, i = a | b, a & b
    # Monte Carlo measures (fixed seeds), checked to 3.5 standard errors: the areas from
    # 200 000 points (σ ≈ 0.008 for the union), the perimeters 12 and 4 from 20 000 points
    # on each side (σ ≈ 0.035)
    assert abs(u.volume - 7) < 0.03 and abs(i.volume - 1) < 0.02
    assert abs(u.boundary_measure - 12) < 0.12 and abs(i.boundary_measure - 4) < 0.12
    pts = torch.tensor([[0.5, 0.5], [2.5, 2.5], [1.5, 1.5], [2.5, 0.5]], dtype=torch.float64)
    assert u.inside(pts).tolist() == [True, True, True, False]
    assert i.inside(pts).tolist() == [False, False, True, False]
    bu = u.sample_boundary(800, Sobol(), seed=1)
    assert u.on_boundary(bu).all() and not (a.interior(bu) | b.interior(bu)).any()
    bi = i.sample_boundary(400, Sobol(), seed=1)
    assert i.on_boundary(bi).all()


def test_bad_shapes_are_rejected():
    with pytest.raises(GMNMError, match="lo < hi"):
        Box((0, 1), (1, 0))
    with pytest.raises(GMNMError, match="radius must be positive"):
        Disk((0, 0), 0)
    with pytest.raises(GMNMError, match="cannot combine"):
        Rectangle((0, 0), (1, 1)) | Interval(0, 1)


L_SHAPE = [(-1, -1), (0, -1), (0, 0), (1, 0), (1, 1), (-1, 1)]


def test_polygon_inside_area_and_edges():
    L = Polygon(L_SHAPE)
    assert L.volume == 3.0 and L.boundary_measure == 8.0 and L.bbox == ((-1, -1), (1, 1))
    pts = torch.tensor([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [0.0, -0.5], [1.5, 0]],
                       dtype=torch.float64)
    assert L.inside(pts).tolist() == [True, False, True, True, False]
    assert L.on_boundary(pts).tolist() == [False, False, False, True, False]
    # clockwise vertices describe the same region
    cw = Polygon(L_SHAPE[::-1])
    assert cw.inside(pts).tolist() == L.inside(pts).tolist()
    torch.testing.assert_close(cw.normal(pts[3:4]), torch.tensor([[1.0, 0.0]], dtype=torch.float64))
    # boundary points spread in proportion to edge length: the two unit edges of the notch
    b = L.sample_boundary(8000, Sobol(), seed=0)
    notch = (near(b[:, 0], 0.0) & (b[:, 1] < 0)) | (near(b[:, 1], 0.0) & (b[:, 0] > 0))
    assert abs(notch.double().mean() - 2 / 8) < 0.01
    x = L.sample_interior(3000, Sobol(), seed=1)
    assert len(x) == 3000 and not ((x[:, 0] > 0) & (x[:, 1] < 0)).any()


def test_polygon_rejects_bad_vertices():
    with pytest.raises(GMNMError, match="not simple"):
        Polygon([(0, 0), (2, 2), (2, 0), (0, 1)])  # a bow tie
    with pytest.raises(GMNMError, match="at least 3 vertices"):
        Polygon([(0, 0), (1, 1)])
    with pytest.raises(GMNMError, match="zero area"):
        Polygon([(0, 0), (1, 1), (2, 2)])


def test_sphere_is_a_3d_ball():
    s = Sphere((0, 0, 0), 1.0)
    assert abs(s.volume - 4 / 3 * math.pi) < 1e-12 and abs(s.boundary_measure - 4 * math.pi) < 1e-12
    with pytest.raises(GMNMError, match="3-D centre"):
        Sphere((0, 0), 1.0)


@pytest.mark.parametrize("space", [Interval(-1, 1), Disk((0, 0), 1.0)])
def test_space_time_samples_lateral_boundary_and_initial_slice(space):
    g = SpaceTime(space, (0.0, 2.0))
    assert g.dim == space.dim + 1 and g.time_dependent
    assert g.bbox == (tuple(space.bbox[0]) + (0.0,), tuple(space.bbox[1]) + (2.0,))
    x = g.sample_interior(512, Sobol(), seed=0)
    assert len(x) == 512 and g.inside(x).all() and x[:, -1].min() >= 0 and x[:, -1].max() <= 2
    assert x[:, -1].std() > 0.4  # times spread over the interval
    b = g.sample_boundary(256, Sobol(), seed=1)
    assert g.on_boundary(b).all() and space.on_boundary(b[:, :-1]).all()
    n = g.normal(b)
    assert (n[:, -1] == 0).all()
    torch.testing.assert_close(n[:, :-1], space.normal(b[:, :-1]))
    i0 = g.sample_initial(128, Sobol(), seed=2)
    assert (i0[:, -1] == 0).all() and g.on_initial(i0).all() and space.inside(i0[:, :-1]).all()
    assert abs(g.volume - 2 * space.volume) < 1e-9


def test_space_time_rejects_bad_intervals():
    with pytest.raises(GMNMError, match="t0 < t1"):
        SpaceTime(Interval(0, 1), (1.0, 0.0))
    with pytest.raises(GMNMError, match="already a space-time"):
        SpaceTime(SpaceTime(Interval(0, 1), (0, 1)), (0, 1))


def test_rectangle_with_several_holes_samples_every_piece():
    outer = Rectangle((0, 0), (3, 2))
    holes = [Disk((0.7, 0.6), 0.3), Disk((1.6, 1.3), 0.25), Disk((2.4, 0.7), 0.35)]
    shape = outer
    for h in holes:
        shape = shape - h
    x = shape.sample_interior(4000, Sobol(), seed=0)
    assert len(x) == 4000 and shape.inside(x).all()
    assert not any(h.interior(x).any() for h in holes)
    perimeter = 10 + 2 * math.pi * sum(h.radius for h in holes)
    b = shape.sample_boundary(8000, Sobol(), seed=1)
    assert shape.on_boundary(b).all()
    for h in holes:
        share = float(h.on_boundary(b).double().mean())
        assert abs(share - 2 * math.pi * h.radius / perimeter) < 0.015
        n = shape.normal(b[h.on_boundary(b)])
        assert h.interior(b[h.on_boundary(b)] + 1e-3 * n).all()  # normals point into the hole
    share_outer = float(outer.on_boundary(b).double().mean())
    assert abs(share_outer - 10 / perimeter) < 0.015


def test_an_edge_two_pieces_share_is_not_boundary():
    """An L-shape from two touching rectangles, or cut by a rectangle that lines the
    outer edges: no boundary points on the shared edge (inside the union) or on the
    edges the cut lines (outside the difference); the corners where edges cross stay."""
    union = Rectangle((-1, -1), (0, 1)) | Rectangle((0, 0), (1, 1))
    x = union.sample_boundary(4000, Sobol(), 1)
    assert not bool(((x[:, 0].abs() < 1e-9) & (x[:, 1] > 1e-9) & (x[:, 1] < 1 - 1e-9)).any())
    assert not bool(union.on_boundary(torch.tensor([[0.0, 0.5]], dtype=torch.float64))[0])
    cut = Rectangle((-1, -1), (1, 1)) - Rectangle((0, -1), (1, 0))
    x = cut.sample_boundary(4000, Sobol(), 1)
    assert not bool(((x[:, 0] > 1 - 1e-9) & (x[:, 1] < -1e-9)).any())
    assert not bool(cut.on_boundary(torch.tensor([[1.0, -0.5]], dtype=torch.float64))[0])
    crossing = Rectangle((0, 0), (1, 1)) | Disk((1, 0.5), 0.3)
    corners = torch.tensor([[1.0, 0.2], [1.0, 0.8]], dtype=torch.float64)
    assert bool(crossing.on_boundary(corners).all())


@pytest.mark.parametrize("space", [Polygon([(-1, -1), (1, -1), (1, 1), (-1, 1)]), Disk((0, 0), 1.0),
                                   Rectangle((-1, -1), (1, 1))])
def test_space_time_points_do_not_tie_time_to_space(space):
    """Times drawn beside a shape's own spatial points are paired at random: two scrambled
    Sobol' streams share the pattern of their first coordinate, and paired in order they
    put x and t on a band (correlation 0.76), leaving most of space × time unsampled."""
    g = SpaceTime(space, (0, 0.5))
    for x in (g.sample_interior(2048, Sobol(), 0), g.sample_boundary(1024, Sobol(), 1)):
        c = torch.corrcoef(x.T)
        assert float(c[:2, 2].abs().max()) < 0.15
        assert abs(float(x[:, 2].mean()) - 0.25) < 0.02  # times still spread evenly
