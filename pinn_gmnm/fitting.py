"""Function fitting — the paper's function-approximation experiment — as a problem the
solvers already know how to train.

A target f on a box (by default [−1, 1]^d) becomes a :class:`~pinn_gmnm.problem.Problem`
whose "PDE" is the identity operator,

    residual(u, x) = u(x) − f(x)      at the training points,

so the loss is the mean squared error on the training set and every training method
applies: least squares and variable projection (the residual is affine in u), Adam,
L-BFGS. The split is fixed by construction: the **training set** is the run's interior
points (``--points``, drawn by ``--sampler`` with the run's seed); the **test set** is
the fixed evaluation grid (about 20 000 points, boundary included), on which the relative
L2 and max errors are measured. The two never share points.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import Tensor

from ._types import Points
from .conditions import evaluate_value
from .derivatives import Field
from .errors import GMNMError, require_positive, unknown
from .geometry import Box
from .problem import PROBLEMS, TARGET_FACTORY, Problem, problem_file, register
from .registry import first_line

FIT_GROUP = "fit"
"""The group fitting targets are listed under in ``gmnm-pde list``."""

Target = Callable[[Points], Tensor]
"""``f(x)``: points (n, d) → values (n,)."""


@dataclass(frozen=True)
class DataResidual:
    """u(x) − f(x): the residual of a fitting problem (what marks a problem as one)."""

    function: Target

    def __call__(self, u: Field, x: Points) -> Tensor:
        return u() - evaluate_value(self.function, x)


def fit_problem(function: Target, dim: int, *, lo: float | Sequence[float] = -1.0,
                hi: float | Sequence[float] = 1.0, description: str = "") -> Problem:
    """The problem of fitting ``function`` on the box [lo, hi]^dim from samples."""
    require_positive("dimension", dim, integer=True)
    lo_t = tuple(lo) if isinstance(lo, Sequence) else (float(lo),) * dim
    hi_t = tuple(hi) if isinstance(hi, Sequence) else (float(hi),) * dim
    return Problem(Box(lo_t, hi_t), DataResidual(function), exact=function, linear=True,
                   description=description)


def register_target(name: str, dim: int, *, lo: float = -1.0, hi: float = 1.0,
                    replace: bool = False) -> Callable[[Target], Target]:
    """Register ``f(x) -> (n,)`` as the fitting target ``name`` on [lo, hi]^dim.

    It is then a problem like any other (``gmnm-pde list`` shows it under *fit*) and
    ``gmnm-pde fit NAME`` compares the models on it. The docstring's first line is its
    summary::

        @register_target("ripple", dim=2)
        def ripple(x):
            '''sin(5 r) / (1 + r), r = |x|.'''
            r = x.norm(dim=1)
            return torch.sin(5 * r) / (1 + r)
    """

    def decorate(function: Target) -> Target:
        def factory() -> Problem:
            return fit_problem(function, dim, lo=lo, hi=hi)

        summary = first_line(function.__doc__) or f"fitting target {name}"
        factory.__name__ = function.__name__
        factory.__doc__ = (
            f"{summary}\n\n"
            f"Domain:     [{lo:g}, {hi:g}]^{dim}\n"
            "PDE:        none: a supervised fit of u = f from samples (residual u − f)\n"
            f"Solution:   u = f, the target ({summary.rstrip('.')})\n"
        )
        register(name, group=FIT_GROUP, replace=replace)(factory)
        setattr(function, TARGET_FACTORY, factory)  # `fit file.py:function` finds it
        return function

    return decorate


def is_fit_problem(problem: Problem) -> bool:
    return isinstance(problem.residual, DataResidual)


def fit_targets() -> list[str]:
    """The names of the registered fitting targets."""
    return [e.name for e in PROBLEMS if e.group == FIT_GROUP]


def check_fit_target(name: str) -> None:
    """A clear error unless ``name`` is a registered fitting target (or a user file)."""
    if problem_file(name) is not None or name in fit_targets():
        return
    if name not in PROBLEMS:
        raise unknown("fitting target", name, fit_targets())
    raise GMNMError(
        f"'{name}' is a PDE problem, not a fitting target; compare models on it with "
        f"`gmnm-pde compare {name}`; fitting targets: {', '.join(fit_targets())}"
    )
