"""Poisson's equation by finite elements: a reference solution on any meshable domain.

    −Δu = f  in Ω,    u = g_i on the boundary piece each Dirichlet condition selects

Lagrange elements of order 1 or 2 (scikit-fem) on a gmsh mesh of Ω
(:func:`~pinn_gmnm.fem.mesh.mesh_geometry`), assembled with quadrature exact for the
element's products and solved by a sparse direct solver. The error falls as h² (P1) or
h³ (P2) for smooth solutions; for P2 the mesh's edges along curved boundaries are bent
onto them (isoparametric elements), so curved domains keep the order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..conditions import Dirichlet, ValueSpec, evaluate_value
from ..errors import GMNMError
from ..geometry import Geometry
from ..references import Reference
from .deps import require
from .mesh import mesh_geometry

ORDERS = (1, 2)


def poisson_reference(geometry: Geometry, source: ValueSpec,
                      dirichlet: ValueSpec | Sequence[Dirichlet], *, size: float = 0.02,
                      order: int = 2) -> Reference:
    """The finite-element solution of −Δu = ``source`` with Dirichlet data, as a
    :class:`~pinn_gmnm.references.Reference` at the element's nodes (vertices, and edge
    midpoints for order 2).

    ``dirichlet`` is one value (a constant or a function of the points) for the whole
    boundary, or :class:`~pinn_gmnm.Dirichlet` conditions, each applied on the boundary
    edges whose two ends its ``on`` predicate selects; every boundary edge must be
    covered (only Dirichlet boundaries are handled here). ``size`` is the largest
    triangle side; ``order`` 1 (P1) or 2 (P2).
    """
    if order not in ORDERS:
        raise GMNMError(f"finite-element order must be 1 or 2, got {order!r}")
    skfem = require("skfem")
    from skfem.models.poisson import laplace  # importable once skfem is

    conditions = (list(dirichlet) if isinstance(dirichlet, Sequence)
                  else [Dirichlet(dirichlet, name="boundary")])
    for c in conditions:
        if not isinstance(c, Dirichlet):
            raise GMNMError(f"poisson_reference handles Dirichlet conditions only, got {c!r}")
    mesh = mesh_geometry(geometry, size, order)
    element = skfem.ElementTriP1() if order == 1 else skfem.ElementTriP2()
    basis = skfem.Basis(mesh, element, intorder=2 * order + 1)
    stiffness = skfem.asm(laplace, basis)
    load = skfem.asm(skfem.LinearForm(lambda v, w: _at(source, w.x) * v), basis)
    fixed, values = _boundary_values(mesh, basis, conditions)
    u = skfem.solve(*skfem.condense(stiffness, load, x=values, D=fixed))
    return Reference(basis.doflocs.T, u, source=f"P{order} finite elements (scikit-fem), "
                     f"gmsh mesh of {mesh.t.shape[1]} triangles, h <= {size:g}")


def _at(value: ValueSpec, x: np.ndarray) -> np.ndarray:
    """A value spec at scikit-fem's quadrature points ``x`` of shape (2, …)."""
    pts = torch.from_numpy(np.ascontiguousarray(x.reshape(2, -1).T))
    return evaluate_value(value, pts).numpy().reshape(x.shape[1:])


def _boundary_values(mesh: Any, basis: Any, conditions: list[Dirichlet]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The degrees of freedom on the boundary and the full vector with their values."""
    facets = mesh.boundary_facets()
    ends = torch.from_numpy(np.ascontiguousarray(mesh.p[:, mesh.facets[:, facets]]
                                                 .transpose(1, 2, 0).reshape(-1, 2)))
    values = np.zeros(basis.N)
    covered = np.zeros(len(facets), dtype=bool)
    for c in conditions:
        chosen = np.ones(len(facets), dtype=bool) if c.on is None else \
            c.on(ends).numpy().reshape(2, -1).all(axis=0)
        dofs = basis.get_dofs(facets=facets[chosen]).all()
        at = torch.from_numpy(np.ascontiguousarray(basis.doflocs[:, dofs].T))
        values[dofs] = evaluate_value(c.value, at).numpy()
        covered |= chosen
    if not covered.all():
        where = mesh.p[:, mesh.facets[:, facets[~covered]]].mean(axis=1)[:, 0]
        raise GMNMError(f"{int((~covered).sum())} boundary edges (one at ({where[0]:.3g}, "
                        f"{where[1]:.3g})) are covered by no Dirichlet condition; the finite-"
                        "element reference handles Dirichlet boundaries only")
    return basis.get_dofs(facets=facets).all(), values
