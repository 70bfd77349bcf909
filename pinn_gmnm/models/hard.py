"""Hard constraints: an output transform that makes Dirichlet (and initial) conditions
hold exactly, whatever the network computes.

    u(x) = g(x) + D(x) · N(x)

N is any model, g a *lift* that takes the prescribed values on the constrained boundary,
and D a distance-like factor that vanishes exactly there and is positive inside:
for the constrained faces of a box [lo, hi], D = Π (x_a − lo_a)/(hi_a − lo_a) ·
(hi_a − x_a)/(hi_a − lo_a) · 4 over the faces' axes (each factor is at most 1), times
(t − t0)/(t1 − t0) when an initial value u(x, t0) = u0 is imposed on a space-time box.
With a Dirichlet value b and an initial value u0 the lift is g = b(x, t) + u0(x) − b(x, t0),
which matches both wherever the data are compatible (u0 = b on ∂Ω at t0).

Derivatives of the transformed model come from autograd (the network's own closed-form
engine does not see the transform), and least squares does not apply to it. What the
wrapped model declares about its training (a fixed method, callbacks such as KAN's grid
updates, whether automatic least squares suits it) carries over to the wrapper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .._types import Points
from ..conditions import Dirichlet, Initial, ValueSpec, evaluate_value
from ..errors import GMNMError
from ..methods import Method
from ..problem import Problem
from ..sampling import Sobol
from .contract import Surrogate, capabilities, training_callbacks


@dataclass(frozen=True)
class _Output:
    """How one output is constrained: faces (axis, high?) and its lift's pieces."""

    faces: tuple[tuple[int, bool], ...]
    boundary: ValueSpec | None
    initial: ValueSpec | None


class HardConstraint(Surrogate):
    """``g(x) + D(x) · model(x)`` for each output; build it with :func:`hard_constraint`."""

    def __init__(self, model: nn.Module, lo: tuple[float, ...], hi: tuple[float, ...],
                 outputs: tuple[_Output, ...], time_axis: int | None) -> None:
        super().__init__()
        self.model = model
        self.lo, self.hi, self.outputs, self.time_axis = lo, hi, outputs, time_axis
        self.in_features, self.out_features = len(lo), len(outputs)

    @property
    def least_squares_by_default(self) -> bool:  # type: ignore[override]
        return capabilities(self.model).least_squares_by_default

    def fixed_method(self) -> Method | None:
        return capabilities(self.model).fixed_method

    def training_callbacks(self) -> list[Any]:
        return training_callbacks(self.model)

    def _distance(self, spec: _Output, x: Points) -> Tensor:
        d = torch.ones(len(x), dtype=x.dtype, device=x.device)
        for axis, high in spec.faces:
            width = self.hi[axis] - self.lo[axis]
            s = (x[:, axis] - self.lo[axis]) / width
            d = d * (2 * (1 - s) if high else 2 * s)  # one factor per face, 1 mid-box
        if spec.initial is not None:
            t = self.time_axis
            d = d * (x[:, t] - self.lo[t]) / (self.hi[t] - self.lo[t])
        return d

    def _lift(self, spec: _Output, x: Points) -> Tensor:
        g = torch.zeros(len(x), dtype=x.dtype, device=x.device)
        if spec.boundary is not None:
            g = g + evaluate_value(spec.boundary, x)
        if spec.initial is not None:
            x0 = x.clone()
            x0[:, self.time_axis] = self.lo[self.time_axis]
            g = g + evaluate_value(spec.initial, x0)
            if spec.boundary is not None:
                g = g - evaluate_value(spec.boundary, x0)
        return g

    def forward(self, x: Points) -> Tensor:
        n = self.model(x)
        n = n[:, None] if n.ndim == 1 else n
        cols = [self._lift(s, x) + self._distance(s, x) * n[:, c] for c, s in enumerate(self.outputs)]
        return torch.stack(cols, dim=1)

    def extra_repr(self) -> str:
        return f"exact on faces {[s.faces for s in self.outputs]}"


def _faces_of(condition: Dirichlet, problem: Problem) -> tuple[tuple[int, bool], ...]:
    """The box faces a Dirichlet condition covers, found by testing its predicate on
    points of every face; a face it covers only partly is an error."""
    g = problem.geometry
    lo, hi = g.bbox
    spatial = [i for i, v in enumerate(problem.variables) if v != "t"]
    box = g.sample_bbox(64, Sobol(), 7)
    faces = []
    for axis in spatial:
        for high in (False, True):
            x = box.clone()
            x[:, axis] = hi[axis] if high else lo[axis]
            sel = torch.ones(len(x), dtype=torch.bool) if condition.on is None else condition.on(x)
            if sel.all():
                faces.append((axis, high))
            elif sel.any():
                raise GMNMError(
                    f"hard constraints: condition '{condition.label}' covers part of the face "
                    f"{problem.variables[axis]} = {(hi if high else lo)[axis]:g}; they need "
                    "whole faces of a box")
    return tuple(faces)


def hard_constraint(problem: Problem, model: nn.Module) -> HardConstraint:
    """Wrap ``model`` so that ``problem``'s Dirichlet conditions (whole faces of a box,
    one condition per output) and initial values (on a space-time box) hold exactly."""
    g = problem.geometry
    space = getattr(g, "space", g)
    if not space.is_box:
        raise GMNMError(f"hard constraints need a box-shaped domain (or box × time), got {g!r}")
    specs = []
    for c_index, name in enumerate(problem.outputs):
        mine = [c for c in problem.conditions
                if (c.output or problem.outputs[0]) == name]
        dirichlet = [c for c in mine if isinstance(c, Dirichlet)]
        initial = [c for c in mine if isinstance(c, Initial) and c.order == 0]
        if len(dirichlet) > 1 or len(initial) > 1:
            raise GMNMError(
                f"hard constraints: output '{name}' has {len(dirichlet)} Dirichlet and "
                f"{len(initial)} initial conditions; the transform supports one of each")
        if initial and not g.time_dependent:
            raise GMNMError("hard initial conditions need a SpaceTime domain")
        if initial and initial[0].on is not None:
            raise GMNMError(f"hard constraints: '{initial[0].label}' must cover the whole initial slice")
        faces = _faces_of(dirichlet[0], problem) if dirichlet else ()
        if not faces and not initial:
            raise GMNMError(f"hard constraints: output '{name}' has no Dirichlet or initial "
                            "condition to enforce exactly")
        specs.append(_Output(faces, dirichlet[0].value if dirichlet else None,
                             initial[0].value if initial else None))
    lo, hi = g.bbox
    return HardConstraint(model, tuple(lo), tuple(hi), tuple(specs),
                          g.dim - 1 if g.time_dependent else None)
