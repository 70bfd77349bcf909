"""Poisson's equation by finite elements: a reference solution on any meshable domain.

    −Δu = f  in Ω,    u = g_i on the boundary piece each Dirichlet condition selects

Lagrange elements of order 1 or 2 (scikit-fem) on a gmsh mesh of Ω
(:func:`~pinn_gmnm.fem.mesh.mesh_geometry`), solved by :func:`~.elliptic.solve_elliptic`.
The error falls as h² (P1) or h³ (P2) for smooth solutions; for P2 the mesh's edges
along curved boundaries are bent onto them (isoparametric elements), so curved domains
keep the order.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..conditions import Dirichlet, ValueSpec, evaluate_value
from ..errors import GMNMError
from ..geometry import Geometry
from ..problem import Problem
from ..references import Reference
from .elliptic import ORDERS, solve_elliptic


def poisson_reference(geometry: Geometry, source: ValueSpec,
                      dirichlet: ValueSpec | Sequence[Dirichlet], *, size: float = 0.02,
                      order: int = 2) -> Reference:
    """The finite-element solution of −Δu = ``source`` with Dirichlet data, as a
    :class:`~pinn_gmnm.references.Reference` at the element's nodes (vertices, and edge
    midpoints for order 2).

    ``dirichlet`` is one value (a constant or a function of the points) for the whole
    boundary, or :class:`~pinn_gmnm.Dirichlet` conditions, each applied on the boundary
    edges its ``on`` predicate selects; every boundary edge must be covered. ``size`` is
    the largest triangle side; ``order`` 1 (P1) or 2 (P2).
    """
    if order not in ORDERS:
        raise GMNMError(f"finite-element order must be 1 or 2, got {order!r}")
    conditions = (list(dirichlet) if isinstance(dirichlet, Sequence)
                  else [Dirichlet(dirichlet, name="boundary")])
    for c in conditions:
        if not isinstance(c, Dirichlet):
            raise GMNMError(f"poisson_reference handles Dirichlet conditions only, got {c!r}")
    problem = Problem(geometry, lambda u, x: -u.laplacian() - evaluate_value(source, x),
                      conditions, name="poisson_reference", linear=True)
    fem = solve_elliptic(problem, order=order, size=size)
    return Reference(fem.nodes, fem.values, source=f"P{order} finite elements (scikit-fem), "
                     f"gmsh mesh of {fem.triangles} triangles, h <= {size:g}")
