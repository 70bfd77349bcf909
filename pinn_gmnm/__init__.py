"""gmnm-pde: physics-informed PDE solving with Gaussian Mixture-Inspired Nonlinear Modules.

The public API: shapes and samplers, problems and conditions, models, training stages
and :func:`solve`. Everything else is internal.

The names are resolved on first use (PEP 562), so that importing a light part of the
package (``pinn_gmnm.config``, ``pinn_gmnm.errors``, ``pinn_gmnm.registry``) or running
``gmnm-pde --help`` does not import torch; ``from pinn_gmnm import solve`` works as usual.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

__version__ = "0.1.0"

# PyTorch backs its CPU tensors of 2 MB and more with transparent huge pages when this is
# set before its first allocation (Linux; elsewhere, or where the kernel has them off, it
# does nothing). The solvers allocate matrices of tens of MB at every step (a Jacobian of
# 6120 × 1021 in float64 is 50 MB), and on 4 kB pages the first touch of each page costs
# as much as the arithmetic: a fresh 50 MB array took 20 ms to fill with zeros, 11 ms with
# huge pages, and ``burgers``' march at 60 s on a 2-core CPU ended in 49 s of training
# where it spent the whole budget (72 Newton steps against 68). Set it to 0 to opt out;
# it has no effect when torch was imported before this package.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

_SUBMODULES: dict[str, tuple[str, ...]] = {
    ".conditions": ("Condition", "Data", "Dirichlet", "Initial", "Neumann", "Periodic", "Robin"),
    ".derivatives": ("Field",),
    ".errors": ("GMNMError",),
    ".evaluation": ("Evaluator",),
    ".fitting": ("fit_problem", "register_target"),
    ".geometry": ("Ball", "Box", "Difference", "Disk", "Geometry", "Intersection", "Interval",
                  "Polygon", "Rectangle", "SpaceTime", "Sphere", "Union", "near"),
    ".interrupt": ("StopOnSignal",),
    ".models": ("GMNM", "KAN", "MLP", "PINN", "GMNMLayer", "build_model", "count_parameters"),
    ".models.hard": ("HardConstraint", "hard_constraint"),
    ".prediction": ("LoadedSolution", "load_solution"),
    ".profiles": ("Profile",),
    ".problem": ("PROBLEMS", "Problem", "get_problem", "register"),
    ".references": ("Reference", "load_reference"),
    ".sampling": ("Grid", "Halton", "LatinHypercube", "Sampler", "Sobol", "Uniform"),
    ".training": ("LBFGS", "Adam", "Coefficients", "Collocation", "Divergence", "GaussNewton",
                  "Grow", "LeastSquares", "Solution", "Stage", "VarPro", "solve"),
    ".unknowns": ("Unknown",),
}
_WHERE = {name: module for module, names in _SUBMODULES.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    """Import the submodule that defines a public name the first time it is asked for."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

