"""A steady incompressible flow read off a problem's residual, as :mod:`.operator` reads
a scalar operator: the finite-element path assembles the equations the user wrote.

The flows it solves (in 2-D, outputs two velocity components and a pressure, in any
order and under any names) are

    c (u·∇)u + ∇p − ν Δu = f(x),   ∇·u = 0,

ν > 0 and c constants (c = 0: Stokes), each equation in any order and multiplied by
any nonzero s(x). The residual is evaluated once on *jet fields*
(:func:`.operator.evaluate_jets`): the zero jet (giving −s f, and continuity's source),
plus and minus a unit jet per output and derivative of order ≤ 2 (their difference is
the linear part, whose coefficients must be exactly s ∂_i p − s ν Δu_i and s ∇·u; their
sum must be twice the zero jet's: no u², (u_x)², …), and random jets J, J′ and 2J, whose
remainder beyond the linear part must be c s (J_u ∂_x + J_v ∂_y) J_{u_i}.
Anything else — a term the form does not have, a viscosity that differs between the
equations or from point to point, a source in the continuity equation, a nonlinearity
other than convection — is named in a one-line reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .._types import Points
from ..conditions import Data, Dirichlet
from ..errors import GMNMError
from ..problem import Problem
from .operator import _TooHigh, evaluate_jets, jet_orders, unmeshable

FORM = "c (u·∇)u + ∇p − νΔu = f, ∇·u = 0"
"""The equations the finite-element path solves for a flow."""

_VALUE, _DX, _DY, _DXX, _DXY, _DYY = range(6)  # the jet entries in 2-D (jet_orders(2))
_NAMES = {_VALUE: "{}", _DX: "∂{}/∂x", _DY: "∂{}/∂y", _DXX: "∂²{}/∂x²", _DXY: "∂²{}/∂x∂y",
          _DYY: "∂²{}/∂y²"}


@dataclass
class Flow:
    """A steady flow c (u·∇)u + ∇p − ν Δu = f, ∇·u = 0: ``velocity`` the indices of the
    outputs u and v among the problem's outputs, ``pressure`` that of p, ``force`` f at
    the probed points (n, 2)."""

    velocity: tuple[int, int]
    pressure: int
    nu: float
    convection: float
    force: np.ndarray


def flow(problem: Problem, x: Points) -> Flow:
    """The flow ``problem``'s residual states at points ``x`` (n, 2), or a GMNMError
    saying in one line why it is not of the form :data:`FORM`."""
    name = problem.name
    if problem.n_outputs != 3 or problem.dim != 2:
        raise GMNMError(f"problem '{name}' has {problem.n_outputs} outputs in {problem.dim}-D; "
                        "a flow has three (u, v, p) in 2-D")
    k_out, m = problem.n_outputs, len(jet_orders(2))
    generator = torch.Generator().manual_seed(0)
    random = torch.rand(2, k_out, m, generator=generator, dtype=torch.float64) + 0.5
    units = torch.eye(k_out * m, dtype=torch.float64).reshape(-1, k_out, m)
    jets = torch.cat([torch.zeros(1, k_out, m, dtype=torch.float64), units, -units, random,
                      2 * random[:1]])
    try:
        r = torch.stack(evaluate_jets(problem, x, jets))               # (E, R, n)
    except _TooHigh:
        raise GMNMError(f"problem '{name}' has derivatives of order three or more") from None
    if len(r) != 3:
        raise GMNMError(f"problem '{name}' has {len(r)} equations; a flow has three (two "
                        "momentum equations and continuity)")
    r0, count = r[:, 0], k_out * m                                       # (E, n)
    plus, minus = r[:, 1:1 + count], r[:, 1 + count:1 + 2 * count]
    lin = ((plus - minus) / 2).reshape(3, k_out, m, -1)                 # (E, K, M, n)
    tol = 1e-9 * (1 + float(lin.abs().max()) + float(r0.abs().max()))
    if float(((plus + minus) / 2 - r0[:, None]).abs().max()) > tol:     # u², (u_x)², …
        raise GMNMError(f"problem '{name}' is nonlinear in a way the flow {FORM} is not "
                        "(only the convection (u·∇)u may be)")
    present = lin.abs().amax(dim=-1) > tol                              # (E, K, M)

    second = present[:, :, _DXX:].any(dim=(0, 2))
    velocity = [k for k in range(k_out) if second[k]]
    if len(velocity) != 2:
        raise GMNMError(f"problem '{name}' is not a flow: {len(velocity)} of its outputs have "
                        "second derivatives, a flow's two velocity components (−νΔu) do")
    (pressure,) = set(range(k_out)) - set(velocity)
    role = []
    for e in range(3):
        px, py = bool(present[e, pressure, _DX]), bool(present[e, pressure, _DY])
        role.append("x" if px and not py else "y" if py and not px else "c" if not (px or py)
                    else "?")
    if sorted(role) != ["c", "x", "y"]:
        raise GMNMError(f"problem '{name}' is not a flow: its equations should be one with "
                        "∂p/∂x, one with ∂p/∂y and one without p (continuity)")
    ex, ey, ec = (role.index(w) for w in "xyc")
    a = max(velocity, key=lambda k: float(lin[ex, k, _DXX].abs().max()))
    b = velocity[0] if a == velocity[1] else velocity[1]
    sx, sy, sc = lin[ex, pressure, _DX], lin[ey, pressure, _DY], lin[ec, a, _DX]
    for s, term in ((sx, "x-momentum equation's ∂p/∂x"), (sy, "y-momentum equation's ∂p/∂y"),
                    (sc, f"continuity equation's ∂{problem.outputs[a]}/∂x")):
        if float(s.abs().min()) <= tol:
            raise GMNMError(f"problem '{name}': the {term} vanishes at some points; the "
                            f"finite-element path solves {FORM}")
    nu = float((-lin[ex, a, _DXX] / sx).mean())
    expected = torch.zeros_like(lin)
    for e, s, k in ((ex, sx, a), (ey, sy, b)):
        expected[e, k, _DXX] = expected[e, k, _DYY] = -nu * s
    expected[ex, pressure, _DX], expected[ey, pressure, _DY] = sx, sy
    expected[ec, a, _DX], expected[ec, b, _DY] = sc, sc
    wrong = ((lin - expected).abs() > tol).any(dim=-1).nonzero().tolist()
    if wrong:
        e, k, j = wrong[0]
        term = _NAMES[j].format(problem.outputs[k])
        which = ("x-momentum", "y-momentum", "continuity")[(ex, ey, ec).index(e)]
        raise GMNMError(f"problem '{name}' is not the flow {FORM} (ν constant): its {which} "
                        f"equation's coefficient of {term} is not that form's")
    if nu <= 0:
        raise GMNMError(f"problem '{name}' has viscosity ν = {nu:g}; the flow {FORM} needs ν > 0")
    if float(r0[ec].abs().max()) > tol:
        raise GMNMError(f"problem '{name}' has a source in its continuity equation; the "
                        f"finite-element path solves {FORM}")

    def remainder(row: int) -> tuple[Tensor, Tensor, Tensor]:
        """The residual beyond its linear part on jet ``row``, and the convection there."""
        jet = jets[row]
        quadratic = r[:, row] - r0 - torch.einsum("ekmn,km->en", lin, jet)
        ux, uy = jet[a, _VALUE], jet[b, _VALUE]
        conv = torch.stack([ux * jet[a, _DX] + uy * jet[a, _DY],
                            ux * jet[b, _DX] + uy * jet[b, _DY]])
        return quadratic, conv, torch.stack([sx, sy])

    first = 1 + 2 * count
    quadratic, conv, s = remainder(first)
    c = float((quadratic[[ex, ey]] / (s * conv[:, None])).mean())
    for row in (first, first + 1, first + 2):
        quadratic, conv, s = remainder(row)
        scale = 4 * tol * (1 + float(jets[row].abs().max()) ** 2)
        if (float((quadratic[[ex, ey]] - c * s * conv[:, None]).abs().max()) > scale
                or float(quadratic[ec].abs().max()) > scale):
            raise GMNMError(f"problem '{name}' is nonlinear in a way the flow {FORM} is not "
                            "(only the convection (u·∇)u may be, with one coefficient)")
    if abs(c) <= tol:
        c = 0.0
    force = -torch.stack([r0[ex] / sx, r0[ey] / sy], dim=1)
    return Flow((a, b), pressure, nu, c, force.numpy())


def output_of(problem: Problem, condition: Dirichlet | Data) -> str:
    """The output a condition constrains (the first when it names none)."""
    return condition.output or problem.outputs[0]


def flow_unsupported(problem: Problem) -> str | None:
    """Why the finite-element path cannot solve ``problem``, a system of several outputs,
    as a steady flow (None when it can), checked without meshing."""
    name, g = problem.name, problem.geometry
    if g.time_dependent:
        return (f"problem '{name}' is a time-dependent system (on space × time); of systems, "
                "the finite-element path solves steady flows only")
    if problem.n_outputs != 3:
        return (f"problem '{name}' has {problem.n_outputs} outputs ({', '.join(problem.outputs)});"
                " systems the finite-element path solves are flows (u, v, p)")
    if problem.unknowns:
        return f"problem '{name}' has unknown coefficients (an inverse problem)"
    shape = unmeshable(g)
    if shape is not None:
        return f"its domain contains a {shape}, which the mesher does not take"
    from ..sampling import Sobol

    try:
        fl = flow(problem, g.sample_interior(64, Sobol(), seed=0))
    except GMNMError as exc:
        return str(exc)
    velocity = [problem.outputs[k] for k in fl.velocity]
    pressure = problem.outputs[fl.pressure]
    pins = []
    for c in problem.conditions:
        if isinstance(c, Dirichlet) and output_of(problem, c) in velocity:
            continue
        if isinstance(c, Data) and output_of(problem, c) == pressure:
            pins.append(c)
            continue
        return (f"problem '{name}' has a {type(c).__name__} condition on "
                f"{output_of(problem, c)} ('{c.label}'); a flow takes Dirichlet conditions on "
                f"the velocity and the pressure at one point")
    for v in velocity:
        if not any(isinstance(c, Dirichlet) and output_of(problem, c) == v
                   for c in problem.conditions):
            return f"problem '{name}' has no Dirichlet condition on {v}"
    if len(pins) != 1 or len(pins[0].points) != 1:
        count = sum(len(c.points) for c in pins)
        return (f"problem '{name}' fixes the pressure at {count} points; the finite-element "
                "path takes the pressure's value at one point (a Data condition on p)")
    return None


def pinned_pressure(problem: Problem, pressure: int) -> tuple[np.ndarray, float]:
    """The point (2,) and value at which ``problem`` pins its pressure."""
    (pin,) = [c for c in problem.conditions
              if isinstance(c, Data) and output_of(problem, c) == problem.outputs[pressure]]
    return pin.points[0].numpy(), float(pin.values[0])
