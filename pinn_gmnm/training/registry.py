"""Stage names for configs and the CLI, turned into stage objects in this one place."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import GMNMError, unknown
from ..fem.stage import FEMSolve
from .compact import Compact
from .gauss_newton import GaussNewton
from .growth import Grow
from .interpolate import Interpolate
from .inverse import Coefficients
from .layout import Layout
from .linear import LeastSquares, VarPro
from .march import March
from .newton_refine import NewtonRefine
from .stages import LBFGS, Adam, Stage

STAGES: dict[str, type[Stage]] = {cls.kind: cls for cls in (Adam, LBFGS, LeastSquares, VarPro,
                                                             Coefficients, GaussNewton, Layout, Grow,
                                                             Compact, Interpolate, FEMSolve, March,
                                                             NewtonRefine)}


def stage_from_dict(spec: dict[str, Any]) -> Stage:
    """``{"type": "adam", "steps": 100, "lr": 1e-3}`` → ``Adam(steps=100, lr=1e-3)``."""
    spec = dict(spec)
    kind = spec.pop("type", None)
    if kind not in STAGES:
        raise unknown("training stage", str(kind), STAGES)
    cls = STAGES[kind]
    fields = {f.name for f in dataclasses.fields(cls)}
    for key in spec:
        if key not in fields:
            raise GMNMError(
                f"unknown option '{key}' for stage '{kind}'; options: {', '.join(sorted(fields))}"
            )
    return cls(**spec)
