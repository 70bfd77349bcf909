"""Training methods: named recipes of stages, in one registry.

A *method* is an object that knows its name, a one-line description, which run
settings it reads (step counts, learning rate; defaults in :class:`Steps`), whether it
applies to a (problem, model) pair and how to build its stages for one. The CLI's
``--method``, ``gmnm-pde list``, config files and ``compare`` all read :data:`METHODS`.

Adding a method is one subclass and one registration::

    from pinn_gmnm.methods import METHODS, Method, Steps

    class AdamOnly(Method):
        name = "adam"
        description = "Adam alone, with the run's learning rate"
        settings = ("adam_steps", "lr")

        def stages(self, problem, model, steps: Steps):
            from pinn_gmnm import Adam
            return [Adam(steps=steps.adam_steps, lr=steps.lr)]

    METHODS.add(AdamOnly.name, AdamOnly(), AdamOnly.description)

This module imports no torch: stages are imported when they are built, so the command
line can list methods and answer ``--help`` quickly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import GMNMError
from .registry import Registry

if TYPE_CHECKING:
    from torch import nn

    from .problem import Problem
    from .training.stages import Stage


@dataclass(frozen=True)
class Steps:
    """The step counts and learning rate methods build their stages from, with their
    defaults (the one place they are written; :class:`~pinn_gmnm.config.RunConfig` and
    the command line take them from here).

    A step count of ``None`` means *until the budget*: the stage runs until the run's
    wall-clock budget is spent or its own stopping rule ends it (convergence, stalled
    progress). Only the open-ended stages take it: L-BFGS, variable projection and
    Gauss–Newton.
    """

    adam_steps: int = 1000
    lbfgs_steps: int | None = 2000
    varpro_steps: int | None = 100
    gn_steps: int | None = 100
    lr: float = 1e-2
    solver: str = "auto"
    """How least squares solves the output layer's system (see
    :mod:`~pinn_gmnm.training.solvers`): one of :data:`SOLVER_NAMES`."""

    OPEN_ENDED: ClassVar[tuple[str, ...]] = ("lbfgs_steps", "varpro_steps", "gn_steps")
    """The settings that may be None (until the budget)."""

    @classmethod
    def of(cls, settings: Any) -> Steps:
        """The fields of ``settings`` (e.g. a RunConfig) that are step settings."""
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})


SOLVER_NAMES = ("auto", "dense", "streamed", "sparse")
"""The least-squares solvers a run can name (``training/solvers.py`` builds them)."""


def check_solver_name(name: object) -> None:
    if name not in SOLVER_NAMES:
        raise GMNMError(f"unknown least-squares solver {name!r}; known: {', '.join(SOLVER_NAMES)}")


class Method(ABC):
    """A named recipe of training stages (see the module docstring)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    settings: ClassVar[tuple[str, ...]] = ()
    """The :class:`Steps` fields this method reads."""

    needs: ClassVar[str] = "does not apply"
    """What the method needs, for the message when it does not apply."""

    fallback: ClassVar[str | None] = None
    """The method a comparison gives a model this one does not apply to (``grow`` →
    ``lstsq`` for models that are not a GMNM); None: the classic ``adam-lbfgs``."""

    def unavailable(self, problem: Problem, model: nn.Module) -> str | None:
        """Why this method cannot train ``model`` on ``problem``, or None when it can."""
        return None

    @abstractmethod
    def stages(self, problem: Problem, model: nn.Module, steps: Steps) -> list[Stage]:
        """The stages for ``problem`` and ``model``."""

    def resolve(self, problem: Problem, model: nn.Module) -> Method:
        """The method that actually runs (``auto`` picks one; others are themselves)."""
        return self

    def build(self, problem: Problem, model: nn.Module, steps: Steps) -> list[Stage]:
        """The stages, after checking the method applies (a clear error when not)."""
        why = self.unavailable(problem, model)
        if why is not None:
            others = [m for m in ("gauss-newton", "adam-lbfgs") if m != self.name]
            raise GMNMError(f"method '{self.name}' {self.needs}, but {why}; use --method "
                            f"{' or '.join(others)}")
        return self.stages(problem, model, steps)


def _learn_unknowns(problem: Problem) -> list[Stage]:
    """Inverse problems learn their unknown coefficients right after least squares,
    with the head re-solved (:class:`~pinn_gmnm.training.Coefficients`)."""
    from .training.inverse import Coefficients

    return [Coefficients()] if problem.unknowns else []


def least_squares_unavailable(problem: Problem, model: nn.Module) -> str | None:
    """Why least squares cannot train ``model`` on ``problem`` (None when it can): it
    needs a linear problem (declared, or detected when not declared) and a model with a
    linear output layer."""
    from .models.contract import capabilities
    from .training.linear import detect_linear

    if not capabilities(model).linear_head:
        return f"the model ({type(model).__name__}) has no linear output layer"
    if problem.linear is False:
        return f"the problem '{problem.name}' is not linear (declared)"
    if problem.linear is None and not detect_linear(problem, model):
        return f"the problem '{problem.name}' is not linear (detected)"
    return None


class LeastSquaresMethod(Method):
    name = "lstsq"
    needs = "needs least squares"
    description = "solve the linear output layer by least squares once (linear problems)"
    settings = ("solver",)

    def unavailable(self, problem: Problem, model: nn.Module) -> str | None:
        return least_squares_unavailable(problem, model)

    def stages(self, problem: Problem, model: nn.Module, steps: Steps) -> list[Stage]:
        from .training.linear import LeastSquares

        return [LeastSquares(solver=steps.solver), *_learn_unknowns(problem)]


class VarProMethod(LeastSquaresMethod):
    name = "varpro"
    description = ("least squares, then L-BFGS on the features with the output layer re-solved "
                   "at every step")
    settings = ("varpro_steps", "solver")

    def stages(self, problem: Problem, model: nn.Module, steps: Steps) -> list[Stage]:
        from .training.linear import VarPro

        return [*super().stages(problem, model, steps), VarPro(steps=steps.varpro_steps)]


class GrowMethod(LeastSquaresMethod):
    name = "grow"
    needs = "needs least squares and a GMNM"
    fallback = "lstsq"
    description = ("least squares, then Gaussians added where the residual is largest, "
                   "narrower each round, re-solved until a held-out check stops it; for a fit "
                   "it leaves short, then a compact mixture with every parameter trained and the "
                   "kernel interpolant of its samples, the best on held-out samples kept")

    def unavailable(self, problem: Problem, model: nn.Module) -> str | None:
        from .models.gmnm import GMNM

        if not isinstance(model, GMNM):
            return f"the model ({type(model).__name__}) is not a GMNM"
        return super().unavailable(problem, model)

    settings = ()

    def stages(self, problem: Problem, model: nn.Module, steps: Steps) -> list[Stage]:
        from .fitting import is_fit_problem
        from .training.compact import Compact
        from .training.growth import Grow
        from .training.interpolate import Interpolate

        if steps.solver != "auto":
            raise GMNMError(f"method 'grow' re-solves every round with the dense solver; "
                            f"--solver {steps.solver} needs --method lstsq or varpro")
        # a fit growth leaves short goes on with a compact mixture, all of whose
        # parameters move (a fit's data are fixed, so more Gaussians overfit them), and
        # then tries the kernel interpolant of its samples (a Gaussian at each)
        compact = [Compact(), Interpolate()] if is_fit_problem(problem) else []
        return [Grow(), *compact, *_learn_unknowns(problem)]


class GaussNewtonMethod(Method):
    name = "gauss-newton"
    description = ("Levenberg-Marquardt on the linear output layer (Newton's method on the "
                   "collocation equations), then on all parameters; any problem, models of up "
                   "to 8000 parameters (larger ones with a linear output layer: that layer only); "
                   "a GMNM on a steady problem that Newton leaves short on its output layer "
                   "tries a compact mixture with every parameter trained, then goes on to "
                   "finer mixtures, warm-started, before all parameters move")
    settings = ("gn_steps",)

    needs = "needs a model of up to 8000 parameters or a linear output layer of up to 8000"

    def unavailable(self, problem: Problem, model: nn.Module) -> str | None:
        from .models import count_parameters
        from .training.gauss_newton import GaussNewton

        limit, total = GaussNewton.max_parameters, count_parameters(model)
        if total <= limit:
            return None
        if newton_unknowns(model) > limit:
            return f"the model has {total} trained parameters and no linear output layer of at most {limit}"
        if problem.unknowns:  # the output layer alone would not learn them
            return (f"the model has {total} trained parameters, and Newton on its output layer "
                    "alone would not learn the problem's unknown coefficients")
        return None

    def stages(self, problem: Problem, model: nn.Module, steps: Steps) -> list[Stage]:
        from .models import count_parameters
        from .models.contract import capabilities
        from .training.gauss_newton import GaussNewton

        # Newton on the output layer stops once its steps gain under 2 % (a creeping tail
        # of ever smaller damping); the full stage is patient through slow phases.
        head = ([GaussNewton(steps=steps.gn_steps, head_only=True, min_progress=0.02, patience=3)]
                if capabilities(model).linear_head else [])
        # A mixture Newton leaves short on its output layer is refined before every
        # parameter moves (see newton_refine): on a 2-D layer the all-parameter phase
        # took 12 s of a 60 s budget and gained nothing, while refinement needed the time.
        finer = _newton_refine(problem, model, steps)
        if head and count_parameters(model) > GaussNewton.max_parameters:
            return [*head, *finer]  # all parameters would be past the limit: the output layer alone
        # after a refinement (or a compact mixture kept), every parameter moves until the
        # budget or the held-out check stops it (see compact.STEADY_SHARE)
        return [*head, *finer, GaussNewton(steps=None if finer else steps.gn_steps,
                                           if_fits=bool(finer))]


def _newton_refine(problem: Problem, model: nn.Module, steps: Steps) -> list[Stage]:
    """A GMNM on a steady nonlinear PDE goes on to finer mixtures where Newton leaves it
    short of a solution (:mod:`~.training.newton_refine`); a linear one grows by least
    squares (method grow), evolution problems march instead, a fit's data cannot be met,
    and unknown coefficients are left to Newton on the first mixture."""
    from .fitting import is_fit_problem
    from .models.gmnm import GMNM
    from .training.compact import STEADY_SHARE, Compact
    from .training.newton_refine import NewtonRefine

    if not isinstance(model, GMNM) or problem.linear is True or problem.geometry.time_dependent \
            or is_fit_problem(problem) or problem.unknowns:
        return []
    # a compact mixture, every parameter moving, may leave the basin of the solution a
    # user's guess chose (ε²u'' = u³ − u from a guessed layer: 7.8e-3, with it 0.14)
    compact = [] if problem.guess is not None else [Compact(share=STEADY_SHARE)]
    return [*compact, NewtonRefine(gn_steps=steps.gn_steps)]


def newton_unknowns(model: nn.Module) -> int:
    """The unknowns of Newton's method on ``model``'s linear output layer (its whole
    parameter count when it has none)."""
    from .models import count_parameters
    from .models.contract import linear_head_of

    head = linear_head_of(model)
    if head is None:
        return count_parameters(model)
    return sum(p.numel() for p in head.head_parameters())


@dataclass(frozen=True)
class AdamLBFGSMethod(Method):
    """Adam, then L-BFGS. ``decay``: the learning rate decays 100-fold over the Adam
    steps; ``lr`` (when set) replaces the run's; ``history``: L-BFGS memory (None: the
    stage's default). The PINN baseline uses a configured instance (constant 1e-3,
    history 100: DeepXDE's recipe)."""

    lr: float | None = None
    decay: bool = True
    history: int | None = None

    name: ClassVar[str] = "adam-lbfgs"
    description: ClassVar[str] = ("Adam with an exponentially decaying learning rate, then "
                                  "L-BFGS (the classic PINN recipe)")
    settings: ClassVar[tuple[str, ...]] = ("adam_steps", "lbfgs_steps", "lr")

    def stages(self, problem: Problem, model: nn.Module, steps: Steps) -> list[Stage]:
        from .training.stages import LBFGS, Adam

        lr = steps.lr if self.lr is None else self.lr
        lbfgs = {} if self.history is None else {"history": self.history}
        return [Adam(steps=steps.adam_steps, lr=lr, final_lr=lr / 100 if self.decay else None),
                LBFGS(steps=steps.lbfgs_steps, **lbfgs)]


class AutoMethod(Method):
    name = "auto"
    description = ("grow (GMNM) or lstsq for linear problems with a linear-head model, else "
                   "gauss-newton for models of up to 8000 parameters or with a linear output "
                   "layer of up to 8000, else adam-lbfgs")
    settings = ("adam_steps", "lbfgs_steps", "varpro_steps", "gn_steps", "lr", "solver")

    def resolve(self, problem: Problem, model: nn.Module) -> Method:
        """The strongest method that applies: ``grow`` for a GMNM when least squares
        applies (least squares, then Gaussians added where the residual is, until a
        held-out check or a tolerance stops it: a problem solved to rounding by the first
        solve never grows), ``lstsq`` for other models with a linear head that take it
        by default (variable projection after it gained nothing
        measurable with the equilibrated solve and the margin layout, at 5–20 times the
        time: poisson, poisson-holes, heat-2d and helmholtz all equal to three digits);
        else ``gauss-newton`` where it applies: models of up to
        ``GaussNewton.max_parameters`` parameters, and larger ones whose linear output layer
        is within that (Newton on that layer alone: far ahead of Adam for a GMNM of
        thousands of Gaussians) — not for models that opt out of automatic least squares,
        whose head-only first stage is least squares in all but name; else ``adam-lbfgs``."""
        from .models.contract import capabilities

        caps = capabilities(model)
        if caps.fixed_method is not None:
            return caps.fixed_method
        if not caps.least_squares_by_default:
            return METHODS.get("adam-lbfgs")
        if least_squares_unavailable(problem, model) is None:
            grow = METHODS.get("grow")
            return grow if grow.unavailable(problem, model) is None else METHODS.get("lstsq")
        newton = METHODS.get("gauss-newton")
        return newton if newton.unavailable(problem, model) is None else METHODS.get("adam-lbfgs")

    def stages(self, problem: Problem, model: nn.Module, steps: Steps) -> list[Stage]:
        return honouring_solver(self.resolve(problem, model), steps.solver).build(
            problem, model, steps)


def honouring_solver(method: Method, solver: str) -> Method:
    """``auto``'s choice when the run names a least-squares solver: ``grow`` re-solves
    every round with the dense solver, so ``lstsq`` (one solve, by the named solver)
    takes its place; any other method as it is."""
    return METHODS.get("lstsq") if method.name == "grow" and solver != "auto" else method


class FEMMethod(Method):
    name = "fem"
    needs = "needs the fem model and a problem the finite-element path solves"
    description = ("finite elements: mesh, assemble and solve (the fem model's method; linear "
                   "elliptic and parabolic problems and steady flows in 2-D)")

    def unavailable(self, problem: Problem, model: nn.Module) -> str | None:
        from .fem.model import FEM
        from .fem.operator import unsupported

        if not isinstance(model, FEM):
            return f"the model is {type(model).__name__} (use --model fem, without --hard)"
        return unsupported(problem, model.order)

    def build(self, problem: Problem, model: nn.Module, steps: Steps) -> list[Stage]:
        from .fem.model import FEM
        from .fem.operator import SUPPORTED

        why = self.unavailable(problem, model)
        if why is not None:
            what = f"; the finite-element path solves {SUPPORTED}" if isinstance(model, FEM) else ""
            raise GMNMError(f"method 'fem' does not apply: {why}{what}")
        return self.stages(problem, model, steps)

    def stages(self, problem: Problem, model: nn.Module, steps: Steps) -> list[Stage]:
        from .fem.stage import FEMSolve

        return [FEMSolve()]


class CustomMethod(Method):
    name = "custom"
    description = "the explicit list of stages given in a config file's `stages`"

    def stages(self, problem: Problem, model: nn.Module, steps: Steps) -> list[Stage]:
        raise GMNMError("method 'custom' needs a list of stages in the config file")


METHODS: Registry[Method] = Registry("method")
for _method in (AutoMethod(), LeastSquaresMethod(), VarProMethod(), GrowMethod(), GaussNewtonMethod(),
                AdamLBFGSMethod(), FEMMethod(), CustomMethod()):
    METHODS.add(_method.name, _method, _method.description)
