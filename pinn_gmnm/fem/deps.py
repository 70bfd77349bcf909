"""The optional dependencies of the finite-element path, imported when first used."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from ..errors import GMNMError

FEM_PACKAGES = {"skfem": "scikit-fem", "gmsh": "gmsh", "meshio": "meshio"}
"""Import name → distribution name of what the ``fem`` extra installs."""


def require(module: str) -> ModuleType:
    """Import ``module`` (one of :data:`FEM_PACKAGES`), or fail with one line naming the
    extra that provides it."""
    if module not in FEM_PACKAGES:
        raise GMNMError(f"unknown finite-element dependency '{module}'; known: "
                        f"{', '.join(FEM_PACKAGES)}")
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise GMNMError(
            f"the finite-element path needs {FEM_PACKAGES[module]}, which is not installed "
            f"({exc.msg}); install the 'fem' extra: pip install \"gmnm-pde[fem]\"") from None


def available() -> bool:
    """Whether every dependency of the ``fem`` extra is installed (without importing
    them)."""
    return all(importlib.util.find_spec(m) is not None for m in FEM_PACKAGES)
