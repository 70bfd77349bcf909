"""Models: the GMNM surrogate and the baselines, and a registry to build them by name."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from ..errors import GMNMError
from ..registry import Registry
from .base import Bounds, Normalize, count_parameters
from .gmnm import GMNM, GMNMLayer
from .kan import KAN, KANLayer
from .mlp import MLP
from .pinn import PINN

__all__ = [
    "GMNM", "GMNMLayer", "KAN", "KANLayer", "MLP", "MODELS", "Normalize", "PINN", "build_model",
    "count_parameters", "model_options",
]

ModelBuilder = Callable[..., nn.Module]
"""``builder(in_features, out_features, *, bounds, **options) -> nn.Module``."""

MODELS: Registry[ModelBuilder] = Registry("model")


def _gmnm(in_features: int, out_features: int, *, bounds: Bounds, components: int | None = None,
          projections: int | None = None, width_factor: float = 4.0) -> nn.Module:
    return GMNM(in_features, out_features, components, projections, bounds=bounds,
                width_factor=width_factor)


def _mlp(in_features: int, out_features: int, *, bounds: Bounds, width: int = 50,
         depth: int = 3, activation: str = "tanh") -> nn.Module:
    return MLP(in_features, out_features, width, depth, activation, bounds=bounds)


def _pinn(in_features: int, out_features: int, *, bounds: Bounds, width: int = 50,
          depth: int = 3) -> nn.Module:
    return PINN(in_features, out_features, width, depth, bounds=bounds)


def _kan(in_features: int, out_features: int, *, bounds: Bounds, width: int = 15, depth: int = 2,
         grid: int = 5, order: int = 3, grid_updates: bool = True) -> nn.Module:
    return KAN(in_features, out_features, width, depth, grid, order, bounds=bounds,
               grid_updates=grid_updates)


# The option that scales each model, for parameter-matched comparisons (models/sizing.py).
_gmnm.size_option = "components"  # type: ignore[attr-defined]
_mlp.size_option = _pinn.size_option = _kan.size_option = "width"  # type: ignore[attr-defined]
# Small KANs grow in steps of ~60 % per unit of width; the grid size fills the gaps.
_kan.fine_size_option = "grid"  # type: ignore[attr-defined]

MODELS.add("gmnm", _gmnm, "Gaussian mixture module: Σ π_i exp(−½‖W_i(x−μ_i)‖²) + b")
MODELS.add("mlp", _mlp, "tanh multilayer perceptron, trained with the same settings as GMNM")
MODELS.add("pinn", _pinn, "classic PINN (DeepXDE-style): tanh MLP, always Adam (lr 1e-3) then L-BFGS")
MODELS.add("kan", _kan, "B-spline Kolmogorov–Arnold network (cubic splines, pykan-style grid updates)")


def model_options(name: str) -> dict[str, Any]:
    """The options model ``name`` accepts, with their defaults."""
    sig = inspect.signature(MODELS.get(name))
    return {p.name: p.default for p in sig.parameters.values()
            if p.kind is p.KEYWORD_ONLY and p.name != "bounds"}


def build_model(name: str, in_features: int, out_features: int, *, bounds: Bounds,
                **options: Any) -> nn.Module:
    """Build model ``name`` for inputs in the box ``bounds``; unknown options are errors."""
    allowed = model_options(name)
    for key in options:
        if key not in allowed:
            raise GMNMError(
                f"option '{key}' does not apply to model '{name}'; its options: {', '.join(allowed)}"
            )
    return MODELS.get(name)(in_features, out_features, bounds=bounds, **options)
