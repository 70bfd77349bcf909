"""Checks of what users hand in, made before training starts, with errors that say what is
wrong, where, and how to fix it.

- :func:`check_model` — the model accepts the problem's points and gives one value per
  output (a model built for 2 inputs used on a 3-D problem fails here, not mid-training);
- :func:`check_conditions` — a warning when a PDE has no conditions (no unique solution);
- :func:`check_initial_loss` — the residuals and conditions can be evaluated and give a
  finite loss at the initial model;
- :func:`~pinn_gmnm.errors.user_location` — `` (file.py line N)``: where in the user's
  own code an exception was raised.

Reference-solution files are checked where they are read
(:func:`~pinn_gmnm.references.load_reference`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from .errors import GMNMError, GMNMWarning, user_location
from .fitting import is_fit_problem
from .models.contract import input_features
from .problem import Problem


def check_model(problem: Problem, model: nn.Module, dtype: torch.dtype,
                device: torch.device | str) -> None:
    """The model maps a few of the problem's points (n, d) to (n, k) values, k the
    problem's number of outputs; otherwise a GMNMError saying which side does not fit."""
    d, k = problem.dim, problem.n_outputs
    what = f"problem '{problem.name}' has {d} input variable(s) ({', '.join(problem.variables)})"
    expects = input_features(model)
    if expects is not None and expects != d:
        raise GMNMError(
            f"{type(model).__name__} was built for {expects} input(s), but {what}; "
            f"build it with in_features={d}"
        )
    lo, hi = problem.geometry.bbox
    x = torch.tensor([lo, hi], dtype=dtype, device=device).lerp(
        torch.tensor([hi, lo], dtype=dtype, device=device), 0.25)
    try:
        with torch.no_grad():
            y = model(x)
    except Exception as exc:
        raise GMNMError(
            f"{type(model).__name__} cannot take this problem's points of shape {tuple(x.shape)}: "
            f"{what} ({type(exc).__name__}: {exc}); build the model for {d} input(s)"
        ) from exc
    if not isinstance(y, Tensor) or y.reshape(len(x), -1).shape[1] != k or y.shape[0] != len(x):
        shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise GMNMError(
            f"{type(model).__name__} gives outputs of shape {shape} for {len(x)} points, but "
            f"problem '{problem.name}' has {k} output(s) ({', '.join(problem.outputs)}): "
            f"build it with out_features={k}"
        )


def check_conditions(problem: Problem) -> None:
    """Warn (GMNMWarning) about a PDE problem without any condition: its solution is not
    unique, so whatever the training finds is one of many. Fitting problems, whose
    residual u − f pins u down, need none."""
    if not problem.conditions and not is_fit_problem(problem):
        warnings.warn(
            f"problem '{problem.name}' has no conditions: its solution is not unique (add "
            "boundary, initial or data conditions, e.g. Dirichlet, Neumann, Initial, Data)",
            GMNMWarning, stacklevel=3)


def check_initial_loss(problem: Problem, evaluate: Callable[[], tuple[Tensor, Mapping[str, Tensor]]]
                       ) -> float:
    """Evaluate the loss once at the initial model; errors in the user's residual or
    conditions are reported with their place in the user's code, and a non-finite loss
    names the terms responsible. Returns the initial loss."""
    try:
        total, parts = evaluate()
    except Exception as exc:
        where = user_location(exc)
        if isinstance(exc, GMNMError):
            raise GMNMError(f"{exc}{where}") from exc
        raise GMNMError(
            f"problem '{problem.name}': evaluating the residual and conditions raised "
            f"{type(exc).__name__}: {exc}{where}"
        ) from exc
    loss = float(total)
    if not math.isfinite(loss):
        bad = [name for name, v in parts.items() if not math.isfinite(float(v))]
        raise GMNMError(
            f"problem '{problem.name}': the loss at the initial model is {loss} (terms not finite: "
            f"{', '.join(bad) or 'none'}); check the residual and condition values for "
            "divisions by zero, logarithms or square roots of negative numbers"
        )
    return loss
