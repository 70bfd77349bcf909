"""Conditions a solution must meet besides the PDE: boundary values and the like.

A condition picks its points (a boundary piece chosen by a predicate, by default the
whole boundary; the initial slice; or given observation points) and returns a residual
per point that is zero when it holds. The loss adds ``weight * mean(residual²)`` for
each condition.

=================  ==========================================================
``Dirichlet``      u = g on the selected boundary
``Neumann``        ∂u/∂n = g (outward normal of the geometry)
``Robin``          a u + b ∂u/∂n = g
``Periodic``       u (or ∂ᵏu/∂xᵏ) equal on the two opposite faces of a box axis
``Initial``        u = g (order 0) or ∂u/∂t = g (order 1) at t = t0
``Data``           u = observed values at given points (inverse problems)
=================  ==========================================================

Residuals are written with elementwise operations, so they also work on the *basis
fields* of the least-squares solvers, whose values carry a leading dimension (B, n).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ._types import Points, Predicate
from .derivatives import Field
from .errors import GMNMError
from .geometry import Geometry, near
from .sampling import Sampler

ValueSpec = float | Callable[[Points], Tensor]
"""A constant, or a function of the points (n, d) returning values of shape (n,)."""


def evaluate_value(value: ValueSpec, x: Points) -> Tensor:
    """A :data:`ValueSpec` at points ``x`` as a tensor of shape (n,)."""
    if callable(value):
        v = torch.as_tensor(value(x), dtype=x.dtype, device=x.device)
        if v.ndim == 2 and v.shape[1] == 1:
            return v.reshape(-1)
        if v.ndim > 1 or (v.ndim == 1 and len(v) not in (1, len(x))):
            raise GMNMError(
                f"its value function gives shape {tuple(v.shape)} for {len(x)} points, where "
                f"one value per point, shape ({len(x)},), is needed (a condition sets one "
                "output: for a system, give one condition per output, e.g. output=\"u\")")
        return v.expand(len(x))
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
    pointwise = True
    """Whether the residual at a point depends on that point alone, so its points may be
    split into pieces (the streamed and sparse least-squares solves do). A condition whose
    residual pairs points or uses data tied to its points' order sets it False."""

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

    def sample(self, geometry: Geometry, boundary: Points, *, variables: Sequence[str],
               n: int, sampler: Sampler, seed: int) -> Points:
        """This condition's points for one batch (float64). ``boundary`` is the batch's
        shared boundary sample, ``n`` the boundary point count asked for; conditions that
        live elsewhere (the initial slice, observation points) draw or keep their own."""
        return self.select(geometry, boundary)

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


def _spatial_normals(u: Field, x: Points, geometry: Geometry) -> Tensor:
    """The geometry's outward unit normals at ``x``, restricted to the spatial variables
    (the time component of a space-time normal is dropped), shape (n, d_spatial)."""
    n = geometry.normal(x).to(x)
    return n[:, [u.variables.index(v) for v in u.spatial]]


@dataclass(frozen=True)
class Neumann(Condition):
    """∂u/∂n = g on the selected boundary: the derivative along the geometry's outward
    unit normal (on a hole's rim that points into the hole)."""

    value: ValueSpec = 0.0
    kind = "neumann"

    def residual(self, u: Field, x: Points, geometry: Geometry) -> Tensor:
        f = self.field(u)
        return f.normal_derivative(_spatial_normals(f, x, geometry)) - evaluate_value(self.value, x)


@dataclass(frozen=True)
class Robin(Condition):
    """a u + b ∂u/∂n = g on the selected boundary (a, b, g constants or functions of
    the points). a = 0 gives a Neumann condition, b = 0 a Dirichlet one."""

    a: ValueSpec = 1.0
    b: ValueSpec = 1.0
    value: ValueSpec = 0.0
    kind = "robin"

    def residual(self, u: Field, x: Points, geometry: Geometry) -> Tensor:
        f = self.field(u)
        dn = f.normal_derivative(_spatial_normals(f, x, geometry))
        return (evaluate_value(self.a, x) * f() + evaluate_value(self.b, x) * dn
                - evaluate_value(self.value, x))


@dataclass(frozen=True)
class Periodic(Condition):
    """Periodicity along one box axis: u (``order`` 0) or ∂ᵏu/∂vᵏ (``order`` k) takes
    the same value at matching points of the low face v = lo and the high face v = hi.

    The points are the batch's boundary points on the low face (restricted by ``on``),
    each paired with its image on the high face; both faces must be part of the
    boundary (a box, or a space-time domain over an interval or box). Use one condition
    per derivative order, e.g. ``Periodic("x")`` and ``Periodic("x", order=1)``.
    """

    variable: str = "x"
    order: int = 0
    kind = "periodic"
    pointwise = False  # pairs the first half of its points with the second

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.order, bool) or not isinstance(self.order, int) or self.order < 0:
            raise GMNMError(f"{self.label}: order must be a whole number >= 0, got {self.order!r}")

    def sample(self, geometry: Geometry, boundary: Points, *, variables: Sequence[str],
               n: int, sampler: Sampler, seed: int) -> Points:
        if self.variable not in variables:
            raise GMNMError(f"{self.label}: unknown variable '{self.variable}'; "
                            f"variables: {', '.join(variables)}")
        axis = list(variables).index(self.variable)
        lo, hi = geometry.bbox[0][axis], geometry.bbox[1][axis]
        low = self.select(geometry, boundary)
        low = low[near(low[:, axis], lo, 1e-9 * max(1.0, abs(hi - lo)))]
        high = low.clone()
        high[:, axis] = hi
        if len(low) == 0 or not bool(geometry.on_boundary(high).all()):
            raise GMNMError(
                f"{self.label}: the faces {self.variable} = {lo:g} and {self.variable} = {hi:g} "
                f"of {geometry!r} do not match; periodic conditions need a box-shaped axis"
            )
        return torch.cat([low, high])

    def residual(self, u: Field, x: Points, geometry: Geometry) -> Tensor:
        f = self.field(u)
        v = f() if self.order == 0 else f.d(*([self.variable] * self.order))
        m = x.shape[0] // 2
        gap = v[..., :m] - v[..., m:]
        return torch.cat([gap, -gap], dim=-1)  # one row per point, same mean square


@dataclass(frozen=True)
class Initial(Condition):
    """u(x, t0) = g(x) (``order`` 0), or ∂u/∂t(x, t0) = g(x) (``order`` 1, the second
    condition of a problem of second order in time, such as the wave equation).

    g is a constant or a function of the points (n, d) — time included, as the last
    column. The points are drawn on the initial slice of a
    :class:`~pinn_gmnm.geometry.SpaceTime` domain (``count`` of them, by default the
    batch's boundary point count); on other domains, they are the boundary points whose
    last coordinate is the lowest. ``on`` restricts them further.
    """

    value: ValueSpec = 0.0
    order: int = 0
    count: int | None = None
    kind = "initial"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.order not in (0, 1):
            raise GMNMError(
                f"{self.label}: order must be 0 (u) or 1 (∂u/∂t), got {self.order!r}")
        if self.count is not None and not (isinstance(self.count, int) and self.count > 0):
            raise GMNMError(f"{self.label}: count must be a positive integer, got {self.count!r}")

    def sample(self, geometry: Geometry, boundary: Points, *, variables: Sequence[str],
               n: int, sampler: Sampler, seed: int) -> Points:
        if variables[-1] != "t":
            raise GMNMError(f"{self.label}: initial conditions need time as the last variable "
                            f"'t'; this problem's variables: {', '.join(variables)}")
        make = getattr(geometry, "sample_initial", None)
        if make is not None:
            x = make(self.count or n, sampler, seed)
        else:
            t0 = geometry.bbox[0][-1]
            x = boundary[near(boundary[:, -1], t0, 1e-9 * max(1.0, geometry.diameter))]
        return x if self.on is None else self.select(geometry, x)

    def state(self, u: Field) -> Tensor:
        """What the condition prescribes: u (order 0) or ∂u/∂t (order 1), of its output."""
        f = self.field(u)
        return f() if self.order == 0 else f.d("t")

    def residual(self, u: Field, x: Points, geometry: Geometry) -> Tensor:
        return self.state(u) - evaluate_value(self.value, x)


@dataclass(frozen=True)
class Data(Condition):
    """u = observed values at given points: measurements for an inverse problem, or
    any pointwise data.

    ``points`` has shape (N, d) and ``values`` shape (N,) (for the output named by
    ``output``, the first by default). They are kept in float64 and cast to the run's
    dtype with the rest of the batch.
    """

    points: Tensor | None = None
    values: Tensor | None = None
    kind = "data"
    pointwise = False  # its values belong to all of its points, in order

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.points is None or self.values is None:
            raise GMNMError(f"{self.label}: give both points (N, d) and values (N,)")
        x = torch.as_tensor(self.points, dtype=torch.float64)
        v = torch.as_tensor(self.values, dtype=torch.float64)
        x = x[:, None] if x.ndim == 1 else x
        v = v.reshape(-1) if v.ndim == 2 and v.shape[1] == 1 else v
        if x.ndim != 2 or len(x) == 0:
            raise GMNMError(
                f"{self.label}: needs at least one point, shape (N, d); got {tuple(x.shape)}")
        if v.shape != (len(x),):
            raise GMNMError(f"{self.label}: {len(x)} points but values of shape {tuple(v.shape)}")
        if not (torch.isfinite(x).all() and torch.isfinite(v).all()):
            raise GMNMError(f"{self.label}: points and values must be finite")
        object.__setattr__(self, "points", x)
        object.__setattr__(self, "values", v)

    def sample(self, geometry: Geometry, boundary: Points, *, variables: Sequence[str],
               n: int, sampler: Sampler, seed: int) -> Points:
        if self.points.shape[1] != geometry.dim:
            raise GMNMError(f"{self.label}: points have {self.points.shape[1]} coordinates, "
                            f"the domain has {geometry.dim}")
        return self.points if self.on is None else self.select(geometry, self.points)

    def residual(self, u: Field, x: Points, geometry: Geometry) -> Tensor:
        v = self.values
        if self.on is not None:
            v = v[torch.as_tensor(self.on(self.points))]
        return self.field(u)() - v.to(x)
