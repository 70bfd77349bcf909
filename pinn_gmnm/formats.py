"""File formats named on the command line, kept free of heavy imports so that the CLI
can list them in its help without loading torch."""

PREDICTION_FORMATS = (".csv", ".txt", ".npz")
"""What ``gmnm-pde predict --out`` may end with: comma-separated text (``.csv``, ``.txt``)
or numpy arrays (``.npz``)."""

MESH_FORMATS = (".vtu", ".vtk", ".msh")
"""Mesh files ``--reference`` reads with meshio (the ``fem`` extra): the mesh's nodes and
a point field on them (VTK's unstructured grids, legacy VTK, Gmsh)."""
