"""A problem's finite-element solution as a reference on a regular grid.

The solution is sampled on the nodes of a regular grid over the domain's bounding box
(NaN outside the domain), through the finite-element interpolant: metrics then weigh
the domain evenly whatever the mesh's grading, and plots interpolate on the grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..problem import Problem
from ..references import Reference
from .elliptic import solve_elliptic
from .mesh import Refinement
from .model import FEM


def fem_reference(problem: Problem, *, size: float, order: int = 2,
                  refine: Sequence[Refinement] = (), grid: int = 512) -> Reference:
    """``problem`` solved by :func:`~.elliptic.solve_elliptic` (``order``, ``size``,
    ``refine``) and sampled on a grid of ``grid`` cells per axis of its bounding box."""
    fem = solve_elliptic(problem, order=order, size=size, refine=refine)
    model = FEM(2, 1, fem_order=order, fem_size=size)
    model.set_solution(fem.nodes, fem.cells, fem.values)
    lo, hi = problem.geometry.bbox
    axes = [np.linspace(a, b, grid + 1) for a, b in zip(lo, hi)]
    points = torch.cartesian_prod(*(torch.from_numpy(a) for a in axes))
    inside = problem.geometry.inside(points)
    values = torch.full((len(points),), torch.nan, dtype=torch.float64)
    with torch.no_grad():
        values[inside] = model(points[inside])[:, 0]
    graded = f", graded to {min(r.size for r in refine):g} at {len(refine)} point(s)" if refine else ""
    return Reference.on_grid(axes, values.reshape(grid + 1, grid + 1).numpy(), source=(
        f"P{order} finite elements (scikit-fem), {len(fem.values)} degrees of freedom on a gmsh "
        f"mesh of {fem.triangles} triangles, h <= {size:g}{graded}, sampled on a "
        f"{grid + 1}×{grid + 1} grid"))
