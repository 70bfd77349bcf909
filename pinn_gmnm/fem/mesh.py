"""A toolkit geometry as a gmsh triangle mesh, handed to scikit-fem.

Shapes map onto gmsh's OpenCASCADE kernel one to one — a rectangle, a disk, a polygon,
and the set operators ``|``, ``-``, ``&`` as gmsh's fuse, cut and intersect — so the mesh
covers exactly the domain the networks sample. Each curve of the meshed boundary keeps
its identity: the returned mesh names the facets of each as a boundary ``curve-N``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import GMNMError, require_positive
from ..geometry import Ball, Box, Difference, Geometry, Intersection, Polygon, Union
from .deps import require

DimTags = list[tuple[int, int]]


def mesh_geometry(geometry: Geometry, size: float, order: int = 1, *,
                  refine: Sequence[Refinement] = ()) -> Any:
    """A scikit-fem triangle mesh of ``geometry`` (2-D: rectangles, disks, polygons and
    their unions, differences and intersections) with sides of about ``size`` at most:
    straight-sided (``MeshTri``, ``order`` 1) or with the edges along curved boundaries
    bent onto them (``MeshTri2``, ``order`` 2, for P2 elements). Boundary curves are named
    ``curve-1``, ``curve-2``… in ``mesh.boundaries``.

    ``refine`` grades the mesh towards points (a re-entrant corner, where the solution is
    singular): each :class:`Refinement` asks for sides of ``size`` at its point, growing
    linearly to the global size at distance ``radius``."""
    require_positive("mesh size", size)
    if order not in (1, 2):
        raise GMNMError(f"mesh order must be 1 or 2, got {order!r}")
    gmsh, skfem = require("gmsh"), require("skfem")
    lo, hi = geometry.bbox
    if geometry.dim != 2:
        raise GMNMError(f"the finite-element path meshes 2-D domains only, got {geometry!r}")
    if size > max(h - l for l, h in zip(lo, hi)):
        raise GMNMError(f"mesh size {size:g} is larger than the domain {geometry!r}")
    triangle, line = (2, 1) if order == 1 else (9, 8)  # gmsh's element types
    with _session(gmsh) as model:
        surfaces = _occ(model.occ, geometry)
        model.occ.synchronize()
        gmsh.option.setNumber("Mesh.MeshSizeMax", float(size))
        _grade(model, refine, size)
        model.mesh.generate(2)
        model.mesh.setOrder(order)
        node_tags, coords, _ = model.mesh.getNodes()
        _, triangles = model.mesh.getElementsByType(triangle)
        curves = {tag: model.mesh.getElementsByType(line, tag)[1]
                  for _, tag in model.getBoundary(surfaces, combined=True, oriented=False)}
    index = np.zeros(int(node_tags.max()) + 1, dtype=np.int64)
    index[node_tags.astype(np.int64)] = np.arange(len(node_tags))
    nodes = index[triangles.astype(np.int64)].reshape(-1, 3 * order)
    xy = coords.reshape(-1, 3)[:, :2]
    used = np.unique(nodes[:, :3])  # the vertices (gmsh also keeps unused construction points)
    renumber = np.full(len(node_tags), -1, dtype=np.int64)
    renumber[used] = np.arange(len(used))
    t = np.ascontiguousarray(renumber[nodes[:, :3]].T)
    mesh = skfem.MeshTri(np.ascontiguousarray(xy[used].T), t)
    facet_of = {f: i for i, f in enumerate(map(tuple, np.sort(mesh.facets, axis=0).T.tolist()))}
    if order == 2:  # gmsh's 6-node triangles: vertices, then the nodes on edges 01, 12, 20
        mid = np.zeros((2, mesh.facets.shape[1]))
        for k, (a, b) in enumerate([(0, 1), (1, 2), (2, 0)]):
            pairs = np.sort(np.stack([t[a], t[b]]), axis=0).T.tolist()
            mid[:, [facet_of[tuple(e)] for e in pairs]] = xy[nodes[:, 3 + k]].T
        mesh = skfem.MeshTri2(np.hstack([mesh.p, mid]), t)
    pieces = {}
    for tag, edges in curves.items():
        ends = renumber[index[edges.astype(np.int64)]].reshape(-1, order + 1)[:, :2]
        pairs = np.sort(ends, axis=1).tolist()
        pieces[f"curve-{tag}"] = np.array([facet_of[tuple(e)] for e in pairs], dtype=np.int64)
    return mesh.with_boundaries(pieces)


@dataclass(frozen=True)
class Refinement:
    """Triangle sides of ``size`` at ``point``, growing linearly to the mesh's size at
    distance ``radius``."""

    point: tuple[float, float]
    size: float
    radius: float

    def __post_init__(self) -> None:
        require_positive("refinement size", self.size)
        require_positive("refinement radius", self.radius)


def _grade(model: Any, refine: Sequence[Refinement], size: float) -> None:
    """gmsh size fields for ``refine``: the smallest of one threshold field per point."""
    fields = []
    for r in refine:
        (x, y), eps = r.point, 1e-9
        points = model.getEntitiesInBoundingBox(x - eps, y - eps, -eps, x + eps, y + eps, eps, 0)
        if not points:
            raise GMNMError(f"refinement point {r.point} is not a corner of the meshed domain")
        distance = model.mesh.field.add("Distance")
        model.mesh.field.setNumbers(distance, "PointsList", [t for _, t in points])
        threshold = model.mesh.field.add("Threshold")
        for key, value in (("InField", distance), ("SizeMin", min(r.size, size)), ("SizeMax", size),
                           ("DistMin", 0.0), ("DistMax", r.radius)):
            model.mesh.field.setNumber(threshold, key, value)
        fields.append(threshold)
    if fields:
        smallest = model.mesh.field.add("Min")
        model.mesh.field.setNumbers(smallest, "FieldsList", fields)
        model.mesh.field.setAsBackgroundMesh(smallest)


@contextmanager
def _session(gmsh: Any) -> Iterator[Any]:
    """A fresh, quiet gmsh model, removed afterwards (gmsh itself is finalised only when
    this opened it, so a caller's own gmsh session survives)."""
    opened = not gmsh.isInitialized()
    if opened:
        gmsh.initialize(readConfigFiles=False, interruptible=False)
    gmsh.option.setNumber("General.Terminal", 0)
    gmsh.model.add("gmnm-pde")
    try:
        yield gmsh.model
    finally:
        gmsh.model.remove()
        if opened:
            gmsh.finalize()


def _occ(occ: Any, g: Geometry) -> DimTags:
    """The OpenCASCADE surfaces of ``g``."""
    if isinstance(g, Box):
        (x0, y0), (x1, y1) = g.lo, g.hi
        return [(2, occ.addRectangle(x0, y0, 0, x1 - x0, y1 - y0))]
    if isinstance(g, Ball):
        (cx, cy), r = g.center, g.radius
        return [(2, occ.addDisk(cx, cy, 0, r, r))]
    if isinstance(g, Polygon):
        points = [occ.addPoint(x, y, 0) for x, y in np.asarray(g.vertices).tolist()]
        lines = [occ.addLine(a, b) for a, b in zip(points, points[1:] + points[:1])]
        return [(2, occ.addPlaneSurface([occ.addCurveLoop(lines)]))]
    if isinstance(g, (Union, Difference, Intersection)):
        a, b = _occ(occ, g.a), _occ(occ, g.b)
        combine = {Union: occ.fuse, Difference: occ.cut, Intersection: occ.intersect}[type(g)]
        out, _ = combine(a, b)
        return [(d, t) for d, t in out if d == 2]
    raise GMNMError(f"the finite-element path cannot mesh {type(g).__name__} yet; it meshes "
                    "Rectangle, Disk, Polygon and their unions, differences and intersections")
