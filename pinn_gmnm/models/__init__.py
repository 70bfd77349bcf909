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
from .mlp import MLP

__all__ = [
    "GMNM", "GMNMLayer", "MLP", "MODELS", "Normalize", "build_model", "count_parameters",
    "model_options",
]

ModelBuilder = Callable[..., nn.Module]
"""``builder(in_features, out_features, *, bounds, **options) -> nn.Module``."""

MODELS: Registry[ModelBuilder] = Registry("model")


def _gmnm(in_features: int, out_features: int, *, bounds: Bounds, components: int = 400,
          projections: int | None = None, width_factor: float = 4.0) -> nn.Module:
    return GMNM(in_features, out_features, components, projections, bounds=bounds,
                width_factor=width_factor)


def _mlp(in_features: int, out_features: int, *, bounds: Bounds, width: int = 50,
         depth: int = 3, activation: str = "tanh") -> nn.Module:
    return MLP(in_features, out_features, width, depth, activation, bounds=bounds)


MODELS.add("gmnm", _gmnm, "Gaussian mixture module: Σ π_i exp(−½‖W_i(x−μ_i)‖²) + b")
MODELS.add("mlp", _mlp, "tanh multilayer perceptron, trained with the same settings as GMNM")


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
