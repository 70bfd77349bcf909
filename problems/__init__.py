"""The built-in problem catalogue, written with the same public API users have.

Importing this package registers every problem in it; ``pinn_gmnm.get_problem`` does
that on first use, so users never need to import it themselves.
"""

from . import burgers, elliptic, evolution, fitting, flows, inverse, poisson, systems  # noqa: F401

__all__ = ["burgers", "elliptic", "evolution", "fitting", "flows", "inverse", "poisson", "systems"]
