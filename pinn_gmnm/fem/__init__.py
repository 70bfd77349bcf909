"""The classical baseline: finite elements (scikit-fem) on gmsh meshes of the same
geometry the networks see.

    mesh = mesh_geometry(Rectangle((0, 0), (1, 1)) - Disk((0.5, 0.5), 0.2), size=0.05)
    ref = poisson_reference(geometry, source=1.0, dirichlet=0.0, size=0.02, order=2)

These need the optional dependencies of the ``fem`` extra (``pip install
"gmnm-pde[fem]"``: scikit-fem, gmsh, meshio); without them each entry point fails with a
one-line error that says so. Importing this package needs none of them.
"""

from .deps import require
from .mesh import mesh_geometry
from .poisson import poisson_reference

__all__ = ["mesh_geometry", "poisson_reference", "require"]
