"""The derivative interface residuals are written against.

A residual receives a :class:`Field` — the network's output at the collocation points —
and asks it for values and derivatives by variable name::

    def residual(u, x):
        return -u.laplacian() - f(x)          # or u.d("t") + u() * u.d("x") - nu * u.d("xx")

Per-point quantities are 1-D tensors of length n, so ``x, y = x.T`` gives coordinates
that combine with them directly. How the numbers are computed is the model's business:
a model may supply a closed-form :class:`DerivativeEngine` (``model.derivative_engine``);
otherwise autograd answers. Both give the same numbers and the residual never knows which
path ran.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from ._types import Points
from .errors import GMNMError
from .models.contract import closed_form_engine


@runtime_checkable
class DerivativeEngine(Protocol):
    """Computes a model's k outputs and their partial derivatives at n fixed points.

    ``output`` selects one output (result shape (n,)); ``None`` asks for all of them at
    once (shape (n, k)), which the least-squares solvers use. ``axes`` is sorted.
    """

    def value(self) -> Tensor:
        """The outputs, shape (n, k)."""

    def partial(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        """∂^|axes| u / ∂x_axes[0] ∂x_axes[1] …"""

    def laplacian(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        """Σ_a ∂²u / ∂x_a² over ``axes``."""


class AutogradEngine:
    """Derivatives by reverse-mode autograd, each gradient computed once and reused.

    The cache lives as long as this engine, which is made for one set of points in one
    loss evaluation; it is keyed by (output, sorted axes), never by tensor identity.
    """

    def __init__(self, model: nn.Module | None, x: Points, out: Tensor | None = None) -> None:
        if out is None:
            assert model is not None
            self.x = x if x.requires_grad else x.detach().requires_grad_(True)
            out = model(self.x)
        else:
            self.x = x  # ``out`` was computed from ``x`` by the caller
        self._out = out[:, None] if out.ndim == 1 else out
        self._cache: dict[tuple[int, tuple[int, ...]], Tensor] = {}

    def value(self) -> Tensor:
        return self._out

    def partial(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        if output is None:
            return torch.stack([self.partial(c, axes) for c in range(self._out.shape[1])], dim=1)
        key = (output, axes)
        if key not in self._cache:
            if not axes:
                return self._out[:, output]
            lower = self.partial(output, axes[:-1])
            if not lower.requires_grad:  # the lower derivative is constant in x
                g = torch.zeros_like(self.x)
            else:
                (g,) = torch.autograd.grad(lower.sum(), self.x, create_graph=True,
                                           allow_unused=True)
                g = torch.zeros_like(self.x) if g is None else g
            for a in range(self.x.shape[1]):
                self._cache.setdefault((output, tuple(sorted(axes[:-1] + (a,)))), g[:, a])
        return self._cache[key]

    def laplacian(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        return sum(self.partial(output, (a, a)) for a in axes)


class FuncEngine:
    """Derivatives of a pointwise function ``fn: (n, d) -> (n, k)`` by ``torch.func``:
    per-point Jacobians (reverse mode) and Hessians (forward over reverse), vectorised
    over the points with ``vmap``. Gives every output's derivatives at once, which is
    what the least-squares solvers need for a network's hidden features."""

    def __init__(self, fn, x: Points) -> None:
        self.fn, self.x = fn, x
        self._value = fn(x)
        self._single = lambda xi: fn(xi[None])[0]
        self._jac: Tensor | None = None
        self._hess: Tensor | None = None

    def value(self) -> Tensor:
        return self._value

    def jacobian(self) -> Tensor:
        """(n, k, d)."""
        if self._jac is None:
            self._jac = torch.func.vmap(torch.func.jacrev(self._single))(self.x)
        return self._jac

    def hessian(self) -> Tensor:
        """(n, k, d, d)."""
        if self._hess is None:
            self._hess = torch.func.vmap(torch.func.jacfwd(torch.func.jacrev(self._single)))(self.x)
        return self._hess

    def partial(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        if len(axes) == 0:
            out = self._value
        elif len(axes) == 1:
            out = self.jacobian()[..., axes[0]]
        elif len(axes) == 2:
            out = self.hessian()[..., axes[0], axes[1]]
        else:
            raise GMNMError(f"derivatives of order {len(axes)} are not available here (at most 2)")
        return out if output is None else out[:, output]

    def laplacian(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        h = self.hessian()
        out = sum(h[..., a, a] for a in axes)
        return out if output is None else out[:, output]


def engine_for(model: nn.Module, x: Points, *, closed_form: bool = True) -> DerivativeEngine:
    """The model's own closed-form engine when it has one (and ``closed_form``), else autograd."""
    engine = closed_form_engine(model, x) if closed_form else None
    return AutogradEngine(model, x) if engine is None else engine


class Field:
    """One output of the network at n points, with its derivatives by variable name.

    ``u()`` is the value, ``u.d("x")`` = ∂u/∂x, ``u.d("xy")`` = ∂²u/∂x∂y (variables with
    one-letter names may be run together; otherwise pass them separately, ``u.d("x1", "x2")``),
    ``u.grad()`` the spatial gradient (n, d), ``u.laplacian()`` the spatial Laplacian.
    ``u["v"]`` is the field of another output of the same network. All per-point results
    have shape (n,).

    The least-squares solvers evaluate residuals on a *basis* field, whose results have
    shape (B, n): one row per basis function. Residuals written with elementwise
    operations on (n,) tensors (the natural way) work unchanged.
    """

    def __init__(self, engine: DerivativeEngine, variables: Sequence[str],
                 outputs: Sequence[str] = ("u",), spatial: Sequence[str] | None = None,
                 output: int = 0, combine: Callable[[int, Tensor], Tensor] | None = None) -> None:
        self.engine = engine
        self.variables = tuple(variables)
        self.outputs = tuple(outputs)
        self.spatial = tuple(spatial if spatial is not None else variables)
        self.output = output
        self.combine = combine

    @classmethod
    def of(cls, model: nn.Module, x: Points, variables: Sequence[str],
           outputs: Sequence[str] = ("u",), spatial: Sequence[str] | None = None,
           *, closed_form: bool = True) -> Field:
        """The field of ``model`` at points ``x`` (shape (n, len(variables)))."""
        if x.ndim != 2 or x.shape[1] != len(variables):
            raise GMNMError(
                f"points of shape {tuple(x.shape)} do not match the variables {tuple(variables)}"
            )
        return cls(engine_for(model, x, closed_form=closed_form), variables, outputs, spatial)

    @property
    def name(self) -> str:
        return self.outputs[self.output]

    def __repr__(self) -> str:
        return f"Field({self.name!r} of {self.outputs}, variables={self.variables})"

    def __getitem__(self, name: str) -> Field:
        if name not in self.outputs:
            raise GMNMError(f"unknown output '{name}'; this problem's outputs: {', '.join(self.outputs)}")
        return Field(self.engine, self.variables, self.outputs, self.spatial,
                     self.outputs.index(name), self.combine)

    def _select(self, compute: Callable[[int | None], Tensor]) -> Tensor:
        if self.combine is None:
            return compute(self.output)
        return self.combine(self.output, compute(None))

    def __call__(self) -> Tensor:
        if self.combine is None:
            return self.engine.value()[:, self.output]
        return self.combine(self.output, self.engine.value())

    def _axis(self, name: str) -> int:
        try:
            return self.variables.index(name)
        except ValueError:
            raise GMNMError(
                f"unknown variable '{name}'; this problem's variables: {', '.join(self.variables)}"
            ) from None

    def _axes(self, spec: Sequence[str]) -> tuple[int, ...]:
        if len(spec) == 1 and spec[0] not in self.variables and all(
            len(v) == 1 for v in self.variables
        ):
            spec = tuple(spec[0])  # "xy" -> ("x", "y")
        return tuple(sorted(self._axis(s) for s in spec))

    def d(self, *spec: str) -> Tensor:
        """A partial derivative by variable names: ``u.d("x")``, ``u.d("xx")``, ``u.d("x", "t")``."""
        if not spec:
            raise GMNMError("d() needs at least one variable, e.g. u.d('x')")
        axes = self._axes(spec)
        return self._select(lambda c: self.engine.partial(c, axes))

    def grad(self) -> Tensor:
        """The gradient over the spatial variables, shape (n, d); on a basis field (B, n, d):
        index its last axis (``u.grad()[..., 0]``) to serve both."""
        return torch.stack([self.d(v) for v in self.spatial], dim=-1)

    def laplacian(self) -> Tensor:
        """Σ ∂²u/∂x_a² over the spatial variables (time excluded), shape (n,)."""
        axes = tuple(self._axis(v) for v in self.spatial)
        return self._select(lambda c: self.engine.laplacian(c, axes))

    def normal_derivative(self, normals: Points) -> Tensor:
        """∂u/∂n = ∇u · n for given unit normals of shape (n, d_spatial)."""
        return (self.grad() * normals).sum(dim=-1)
