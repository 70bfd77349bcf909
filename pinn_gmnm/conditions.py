"""Conditions a solution must meet besides the PDE: boundary values and the like.

A condition picks its points (a boundary piece chosen by a predicate, by default the
whole boundary) and returns a residual per point that is zero when it holds. The loss
adds ``weight * mean(residual²)`` for each condition.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ._types import Points, Predicate
from .derivatives import Field
from .errors import GMNMError
from .geometry import Geometry

ValueSpec = float | Callable[[Points], Tensor]
"""A constant, or a function of the points (n, d) returning values of shape (n,)."""


def evaluate_value(value: ValueSpec, x: Points) -> Tensor:
    """A :data:`ValueSpec` at points ``x`` as a tensor of shape (n,)."""
    if callable(value):
        v = torch.as_tensor(value(x), dtype=x.dtype, device=x.device)
        return v.reshape(-1) if v.ndim == 2 and v.shape[1] == 1 else v.expand(len(x))
    return torch.full((len(x),), float(value), dtype=x.dtype, device=x.device)


@dataclass(frozen=True, kw_only=True)
class Condition(ABC):
    """Base class of all conditions.

    Subclasses say where the condition applies (:meth:`select`) and what must vanish
    there (:meth:`residual`). ``on`` restricts a boundary condition to the boundary
    points it returns True for; ``output`` names the output it constrains (the first by
    default); ``weight`` scales its loss term; ``name`` labels it in histories.
    """

    on: Predicate | None = None
    output: str | None = None
    weight: float = 1.0
    name: str | None = None

    kind = "condition"

    def __post_init__(self) -> None:
        if not self.weight >= 0:
            raise GMNMError(f"{self.label}: weight must be non-negative, got {self.weight!r}")

    @property
    def label(self) -> str:
        return self.name or self.kind

    def select(self, geometry: Geometry, boundary: Points) -> Points:
        """The points this condition is enforced at, from the shared boundary sample."""
        if self.on is None:
            return boundary
        mask = torch.as_tensor(self.on(boundary))
        if mask.dtype != torch.bool or mask.shape != (len(boundary),):
            raise GMNMError(
                f"{self.label}: the 'on' predicate must return a boolean tensor of shape "
                f"({len(boundary)},), got {mask.dtype} of shape {tuple(mask.shape)}"
            )
        return boundary[mask]

    def field(self, u: Field) -> Field:
        return u[self.output] if self.output is not None else u

    @abstractmethod
    def residual(self, u: Field, x: Points, geometry: Geometry) -> Tensor:
        """What must vanish at points ``x``, shape (n,)."""


@dataclass(frozen=True)
class Dirichlet(Condition):
    """u = g on the selected boundary, g a constant or a function of the points."""

    value: ValueSpec = 0.0
    kind = "dirichlet"

    def residual(self, u: Field, x: Points, geometry: Geometry) -> Tensor:
        return self.field(u)() - evaluate_value(self.value, x)
