"""What a problem's residual says, read off by probing it: the finite-element path
assembles the weak form of the PDE the user wrote, never a rewritten copy.

A linear second-order residual is, at every point x,

    r(u)(x) = Σ_{i≤j} a_ij(x) ∂_ij u + Σ_i b_i(x) ∂_i u + c(x) u + r₀(x).

(on a space-time domain t is one of the variables). Its coefficients are found by evaluating the residual once on a *jet field*: a field
whose rows are "unit jets" — row 0 all zero (giving r₀), then one row per derivative
∂^α with that derivative equal to 1 and every other value and derivative 0 (giving the
coefficient of ∂^α plus r₀) — as the least-squares solvers evaluate it on a basis field.
Two more rows, a random jet and twice it, check that the residual is affine in u
(u·u_x, u³ and the like fail there). The finite-element path takes the form

    m u_t + a Δu + b·∇u + c u + r₀ = 0

(a and m constants, a ≠ 0; m = 0 for steady problems, m ≠ 0 with an initial value on a
space-time domain; b, c functions of x, not of t; r₀ of x and t) on 2-D domains, with
Dirichlet, Neumann and Robin conditions.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .._types import Points
from ..conditions import Dirichlet, Initial, Neumann, Robin
from ..derivatives import Field
from ..errors import GMNMError
from ..geometry import Ball, Box, Difference, Geometry, Intersection, Polygon, Union
from ..problem import Problem

SUPPORTED = ("linear second-order scalar equations a Δu + b·∇u + c u = f (a constant), and "
             "their parabolic form with m u_t, on 2-D domains (rectangles, disks, polygons "
             "and their unions, differences and intersections) with Dirichlet, Neumann and "
             "Robin conditions (and an initial value); and steady flows (u, v, p), Stokes or "
             "Navier–Stokes, with the velocity given on the boundary and the pressure at one "
             "point (Taylor–Hood elements, --fem-order 2)")
"""What the finite-element path solves, for the message when it does not apply."""

CONDITIONS = (Dirichlet, Neumann, Robin)


class _TooHigh(Exception):
    """The residual asked for a derivative of order three or more."""


class JetEngine:
    """A :class:`~pinn_gmnm.derivatives.DerivativeEngine` whose outputs are the rows of
    ``jets`` (R, K, M): in row r, output k has value and derivatives ∂^α (α the
    multi-indices of order ≤ 2, in ``orders``) equal to ``jets[r, k, index of α]`` at
    every point. Results for all outputs have shape (n, K, R); :func:`evaluate_jets`
    reads them through a field whose results are (R, n)."""

    def __init__(self, jets: Tensor, orders: list[tuple[int, ...]], n: int) -> None:
        self.jets, self.orders, self.n = jets, orders, n

    def _column(self, axes: tuple[int, ...]) -> Tensor:
        if len(axes) > 2:
            raise _TooHigh
        return self.jets[:, :, self.orders.index(axes)].T[None].expand(self.n, -1, -1)

    def value(self) -> Tensor:
        return self._column(())

    def partial(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        return self._column(tuple(sorted(axes)))

    def laplacian(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        return sum(self._column((a, a)) for a in axes)


def jet_orders(d: int) -> list[tuple[int, ...]]:
    """The multi-indices of order ≤ 2 in ``d`` variables: (), (0,), …, (0, 0), (0, 1), …"""
    return [()] + [(i,) for i in range(d)] + list(itertools.combinations_with_replacement(range(d), 2))


def evaluate_jets(problem: Problem, x: Points, jets: Tensor) -> list[Tensor]:
    """``problem``'s residuals (one (R, n) tensor per equation) on the jet field of
    ``jets`` (R, K, M) at points ``x``: row r is the residual of the field whose values
    and derivatives are row r's constants (raises ``_TooHigh`` for a derivative of order
    three or more)."""
    engine = JetEngine(jets.to(x), jet_orders(problem.dim), len(x))
    field = Field(engine, problem.variables, problem.outputs, problem.spatial,
                  combine=lambda output, values: values[:, output].T)
    with torch.no_grad():
        return problem.residuals(field, x, rows=len(jets))


@dataclass
class Operator:
    """The coefficients of a residual m u_t + a Δu + b·∇u + c u + r₀ at points (n, d)."""

    a: float
    b: np.ndarray          # (n, 2)
    c: np.ndarray          # (n,)
    r0: np.ndarray         # (n,)
    m: float = 0.0


def probe(problem: Problem, x: Points) -> tuple[dict[tuple[int, ...], Tensor], Tensor, bool]:
    """The coefficient of each derivative ∂^α (order ≤ 2) of the residual at ``x``, the
    residual of u = 0 (r₀), and whether the residual is affine in u there."""
    orders = jet_orders(problem.dim)
    m = len(orders)
    generator = torch.Generator().manual_seed(0)
    random = torch.rand(m, generator=generator, dtype=torch.float64) + 0.5
    jets = torch.cat([torch.zeros(1, m, dtype=torch.float64),
                      torch.eye(m, dtype=torch.float64), random[None], 2 * random[None]])
    (r,) = evaluate_jets(problem, x, jets[:, None])
    r0 = r[0]
    coefficients = {alpha: r[1 + k] - r0 for k, alpha in enumerate(orders)}
    combined = sum(random[k] * coefficients[alpha] for k, alpha in enumerate(orders))
    scale = 1e-9 * (1 + float(sum(c.abs().max() for c in coefficients.values())) + float(r0.abs().max()))
    affine = bool(((r[-2] - r0 - combined).abs() <= scale).all()
                  and ((r[-1] - r0 - 2 * (r[-2] - r0)).abs() <= 2 * scale).all())
    return coefficients, r0, affine


def operator(problem: Problem, x: Points) -> Operator:
    """The coefficients of ``problem``'s residual at points ``x`` (n, 2), or a GMNMError
    saying why the residual is not of the form the finite-element path solves."""
    name = problem.name
    try:
        coefficients, r0, affine = probe(problem, x)
    except _TooHigh:
        raise GMNMError(f"problem '{name}' has derivatives of order three or more") from None
    if not affine:
        raise GMNMError(f"problem '{name}' is not linear in u")
    a_xx, a_yy, a_xy = (coefficients[k] for k in ((0, 0), (1, 1), (0, 1)))
    a = float(a_xx.mean())
    tol = 1e-9 * max(1.0, abs(a))
    timed = [coefficients[k] for k in ((0, 2), (1, 2), (2, 2))] if problem.dim == 3 else []
    if all(float(c.abs().max()) <= tol for c in (a_xx, a_yy, a_xy, *timed)):
        raise GMNMError(f"problem '{name}' has no second derivatives: it is not an elliptic or "
                        "parabolic PDE (a function-fitting target, for one)")
    if (abs(a) <= tol or float((a_xx - a).abs().max()) > tol or float((a_yy - a).abs().max()) > tol
            or float(a_xy.abs().max()) > tol or any(float(c.abs().max()) > tol for c in timed)):
        raise GMNMError(f"problem '{name}' has second derivatives other than a constant "
                        "multiple of the Laplacian")
    m = 0.0
    if problem.dim == 3:
        m_t = coefficients[(2,)]
        m = float(m_t.mean())
        if abs(m) <= tol or float((m_t - m).abs().max()) > tol:
            raise GMNMError(f"problem '{name}' is not of the form m u_t + a Δu + … with a "
                            "constant m ≠ 0")
    b = torch.stack([coefficients[(0,)], coefficients[(1,)]], dim=1)
    return Operator(a, b.numpy(), coefficients[()].numpy(), r0.numpy(), m)


def unsupported(problem: Problem, order: int | None = None) -> str | None:
    """Why the finite-element path cannot solve ``problem`` (None when it can), with
    elements of ``order`` when given, checked without meshing: a few interior points are
    enough to probe the residual. A system goes to :func:`.flow_operator.flow_unsupported`."""
    g = problem.geometry
    space = g.space if g.time_dependent else g
    if space.dim != 2:
        return f"problem '{problem.name}' is {space.dim}-D in space"
    if problem.n_outputs != 1:
        from .flow_operator import flow_unsupported
        from .navier_stokes import ORDER

        why = flow_unsupported(problem)
        return why if why is not None or order in (None, 2) else f"problem '{problem.name}': {ORDER}"
    if problem.unknowns:
        return f"problem '{problem.name}' has unknown coefficients (an inverse problem)"
    if problem.linear is False:
        return f"problem '{problem.name}' is not linear"
    shape = unmeshable(space)
    if shape is not None:
        return f"its domain contains a {shape}, which the mesher does not take"
    for c in problem.conditions:
        initial = isinstance(c, Initial) and c.order == 0 and g.time_dependent
        if not (isinstance(c, CONDITIONS) or initial):
            return f"problem '{problem.name}' has a {type(c).__name__} condition ('{c.label}')"
    if g.time_dependent and sum(isinstance(c, Initial) for c in problem.conditions) != 1:
        return f"problem '{problem.name}' needs one initial value"
    from ..sampling import Sobol

    x = g.sample_interior(64, Sobol(), seed=0)
    try:
        op = operator(problem, x)
        if g.time_dependent:  # b and c must not change in time
            later = x.clone()
            later[:, -1] = g.bbox[1][-1] - (x[:, -1] - g.bbox[0][-1])
            again = operator(problem, later)
            if not (np.allclose(op.b, again.b, atol=1e-12) and np.allclose(op.c, again.c, atol=1e-12)):
                return (f"problem '{problem.name}' has coefficients of ∇u or u that change in "
                        "time")
    except GMNMError as exc:
        return str(exc)
    return None


def unmeshable(g: Geometry) -> str | None:
    """The name of the first shape in ``g`` the mesher cannot take, or None."""
    if isinstance(g, (Union, Difference, Intersection)):
        return unmeshable(g.a) or unmeshable(g.b)
    return None if isinstance(g, (Box, Ball, Polygon)) else type(g).__name__
