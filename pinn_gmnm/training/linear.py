"""Training that exploits a linear output layer: least squares and variable projection.

For a linear PDE with linear conditions, every residual is affine in the weights θ of
the model's last, linear layer (see :class:`~pinn_gmnm.models.head.LinearHead`):
r(θ) = J θ + r₀. The loss Σ_t w_t mean(r_t²) is then ‖J θ + r₀‖² after scaling each
term's rows by √(w_t / n_t), and the best θ for the current features is a linear
least-squares problem — the radial-basis-function collocation (Kansa) idea when the
features are Gaussians.

``J`` is built by evaluating the user's own residual on a *basis field*: a field whose
values have one row per basis function (plus a zero row giving r₀; :mod:`.lsq`). No
residual has to be written twice. How the system is solved — dense, streamed in row
blocks, or sparse — is the stage's ``solver`` (:mod:`.solvers`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..errors import GMNMError
from ..models.contract import linear_head_of
from ..models.head import LinearHead
from ..problem import Problem
from .batch import Collocation, sample_batch
from .equilibrate import apply_term_scales
from .heldout import HeldOut
from .loss import Loss
from .lsq import (Basis, LstsqSolution, basis_square_sums, gathered, solve_lstsq, stacked,
                  term_blocks)
from .solvers import Dense, LinearSolver, check_solver, solver_from, solver_to_data
from .stages import Stage, _check_steps, run_lbfgs
from .streamed import pieces, reduced_lstsq
from .task import Task


def linear_head(model: nn.Module) -> LinearHead:
    """The model's linear output layer, or a clear error when it has none."""
    head = linear_head_of(model)
    if head is None:
        raise GMNMError(
            f"{type(model).__name__} has no linear output layer, so it cannot be trained "
            "by least squares; use the adam/lbfgs stages"
        )
    return head


def zero_loss(task: Task) -> float:
    """The loss of ``task`` with its model's output layer set to zero (u ≡ 0), under the
    loss's current term weights; the model is left as it was."""
    params = linear_head(task.model).head_parameters()
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p in params:
            p.zero_()
        zero = float(task.evaluate_loss()[0])
        for p, v in zip(params, saved):
            p.copy_(v)
    return zero


@torch.no_grad()
def fit_state(model: nn.Module, x: Tensor, state: Callable[[Tensor], Tensor]) -> None:
    """Set ``model``'s output layer to the least-squares fit of ``state`` (points → (n, o)
    or (n,)) at points ``x``, its features kept: a start for Newton's method (a problem's
    ``guess``, or the state a slab of a march starts from)."""
    head = linear_head(model)
    features = head.features(x).value()
    A = torch.cat([features, features.new_ones(len(x), 1)], dim=1)
    values = state(x).reshape(len(x), -1)
    head.set(torch.linalg.lstsq(A.cpu(), values.to(A).cpu(), driver="gelsd").solution)


def check_linear(problem: Problem) -> None:
    if problem.linear is False:
        raise GMNMError(
            f"problem '{problem.name}' is nonlinear, and least squares needs a linear PDE with "
            "linear conditions; use the adam/lbfgs (or gauss-newton) stages instead"
        )


def fit_head(loss: Loss, model: nn.Module, head: LinearHead, rcond: float | None = None,
             solver: LinearSolver = Dense()) -> LstsqSolution:
    """Set the head to the least-squares optimum for the current features; returns the
    solution (the head, flattened output by output, and the system's condition)."""
    with torch.no_grad():
        solution = solver.solve(loss, model, head, rcond)
        head.set(solution.theta.reshape(loss.problem.n_outputs, -1).T)
        return solution


def basis_row_sums(loss: Loss, model: nn.Module, head: LinearHead,
                   solver: LinearSolver = Dense()) -> list[Tensor]:
    """Each term's sum of squared row norms of its unweighted linear system, ∂r_t/∂θ_head
    (this rank's rows, built in the solver's pieces): what
    :func:`~.equilibrate.apply_term_scales` scales by."""
    return solver.row_sums(loss, model, head)


def equilibrate_linear(task: Task, head: LinearHead, kind: str,
                       solver: LinearSolver = Dense()) -> dict[str, Any]:
    """Scale the loss terms by their rows of the linear system (see :mod:`.equilibrate`)."""
    return apply_term_scales(task, basis_row_sums(task.loss, task.model, head, solver), kind)


def equilibrated_fit(task: Task, head: LinearHead, kind: str, rcond: float | None = None,
                     solver: LinearSolver = Dense()) -> tuple[dict[str, Any], LstsqSolution]:
    """:func:`equilibrate_linear`, then :func:`fit_head`: the equilibration's event and the
    solution. A dense solve builds the system's features once for both (they can cost as
    much as the SVD: a clamped plate's fourth derivatives, 11 200 points × 2704 Gaussians,
    8 s of a 29 s solve); the other solvers build their rows piece by piece, twice."""
    if not isinstance(solver, Dense):
        report = equilibrate_linear(task, head, kind, solver)
        return report, fit_head(task.loss, task.model, head, rcond, solver)
    loss = task.loss
    with torch.no_grad():
        rs = loss.residuals(task.model, Basis(head, loss.problem))
        report = apply_term_scales(task, basis_square_sums(rs), kind)
        blocks = term_blocks(loss, task.model, head, residuals=rs)
        del rs  # (freed before the rows are stacked, as term_blocks alone would)
        J, r0 = gathered(loss, blocks)
        del blocks
        solution = solve_lstsq(J, -r0, rcond)
        head.set(solution.theta.reshape(loss.problem.n_outputs, -1).T)
    return report, solution


@dataclass(frozen=True)
class LeastSquares(Stage):
    """Solve the model's linear output layer exactly for the current features
    (linear problems only): one step, no learning rate. With ``equilibrate`` the loss
    terms are first scaled by their rows of the linear system (:mod:`.equilibrate`); the
    scales, the system's condition number and rank go into the run's events.

    ``solver`` says how the system is solved: ``auto`` (dense when it fits in memory,
    else streamed in row blocks; streamed under torchrun), ``dense``, ``streamed``,
    ``sparse``, or a solver object (see :mod:`.solvers`)."""

    rcond: float | None = None
    equilibrate: bool = True
    solver: str | dict[str, Any] | LinearSolver = "auto"
    kind: ClassVar[str] = "lstsq"

    def __post_init__(self) -> None:
        check_solver(self.solver)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "solver": solver_to_data(self.solver)}

    def run(self, task: Task) -> None:
        check_linear(task.loss.problem)
        head = linear_head(task.model)
        check_affine(task.loss, task.model, head)
        solver = solver_from(self.solver).resolve(task.loss, head)
        if self.equilibrate:
            report, solution = equilibrated_fit(task, head, self.kind, self.rcond, solver)
        else:
            report, solution = None, fit_head(task.loss, task.model, head, self.rcond, solver)
        if report is not None:
            report.update(cond=solution.cond, rank=solution.rank, unknowns=len(solution.theta),
                          solver=solver.name)
        total, _ = task.evaluate_loss()
        task.record(self.kind, float(total), force_eval=True)


CHECK_POINTS = 512
"""The points :func:`check_affine` looks at (a first piece of the batch, every term in it)."""


def check_affine(loss: Loss, model: nn.Module, head: LinearHead) -> None:
    """Check, at a random head, that the residuals equal J θ + r₀ on the first
    :data:`CHECK_POINTS` points: otherwise the residual is not affine in u (or does not
    broadcast over a leading dimension)."""
    saved = head.get()
    piece = pieces(loss, CHECK_POINTS)[0]
    with torch.no_grad():  # rows as the loss weighs them, to compare with its residuals
        J, r0 = stacked(term_blocks(loss, model, head, piece, equal_rows=False))
        g = torch.Generator(device="cpu").manual_seed(0)
        theta = torch.randn(J.shape[1], generator=g, dtype=J.dtype).to(J.device)
        theta /= math.sqrt(J.shape[1])
        head.set(theta.reshape(loss.problem.n_outputs, -1).T)
        with torch.enable_grad():  # models without closed-form derivatives need autograd
            actual = loss.weighted(loss.residuals(model, batch=piece)).detach()
        head.set(saved)
    predicted = J @ theta + r0
    tol = 1e3 * torch.finfo(J.dtype).eps ** 0.5 if J.dtype == torch.float32 else 1e-8
    gap = float((predicted - actual).norm() / actual.norm().clamp_min(1e-300))
    if loss.parallel.any(not gap <= tol):
        raise GMNMError(
            f"problem '{loss.problem.name}': the residual does not behave linearly in u "
            f"(relative gap {gap:.1e} from its linear model), so least squares cannot be used; "
            "declare linear=False and use the adam/lbfgs stages, or write the residual with "
            "elementwise operations on (n,) tensors"
        )


def detect_linear(problem: Problem, model: nn.Module) -> bool:
    """Whether ``problem``'s residuals behave affinely in ``model``'s linear output layer,
    checked as :func:`check_affine` does on a small float64 batch (a copy of the model).
    For problems that do not declare ``linear``; False when it cannot be checked (a
    residual that fails is reported by the checks before training, with its line)."""
    try:
        probe = copy.deepcopy(model).to(device="cpu", dtype=torch.float64)
        batch = sample_batch(problem, Collocation(128, 256), seed=12345).to(torch.float64, "cpu")
        loss = Loss(problem, batch)
        loss(probe)
        check_affine(loss, probe, linear_head(probe))
    except Exception:  # noqa: BLE001  not linear, or cannot tell: validation reports errors later
        return False
    return True


@dataclass(frozen=True)
class VarPro(Stage):
    """Variable projection: L-BFGS on the features' parameters (GMNM: means and
    projections) with the linear head re-solved exactly at every evaluation, so the
    optimiser only ever sees the best head for its features (linear problems only).

    Stops early when 10 iterations lower the loss by less than ``min_progress`` (a
    fraction): with broad Gaussians the least-squares solution is already at rounding
    level and further iterations only cost time (in 3D with 1000 Gaussians, seconds
    each). With ``equilibrate`` the loss terms are scaled when the stage starts, as in
    :class:`LeastSquares`, and kept so while it runs: the objective stays one function.
    With ``held_out`` it also stops, undoing the last 10 iterations, when the loss on
    fresh collocation points rises (:class:`~.heldout.HeldOut`): the features have more
    parameters than there are equations, and can fit the points better while fitting
    the solution worse.
    """

    steps: int | None = 100
    history: int = 50
    rcond: float | None = None
    min_progress: float = 0.01
    equilibrate: bool = True
    held_out: bool = True
    kind: ClassVar[str] = "varpro"

    def __post_init__(self) -> None:
        _check_steps("varpro steps", self.steps, open_ended=True)

    def run(self, task: Task) -> None:
        if self.steps == 0:
            return
        check_linear(task.loss.problem)
        head = linear_head(task.model)
        fixed = {id(p) for p in head.head_parameters()}
        params = [p for p in task.params if id(p) not in fixed]
        saved = task.resumed()  # resumed inside the stage: the saved weights hold
        report = (equilibrate_linear(task, head, self.kind)
                  if self.equilibrate and saved is None else None)
        closure, refit = projected(task, head, self.rcond, report)
        guard = HeldOut(task, params) if self.held_out and task.collocation is not None else None

        def after_chunk() -> bool:
            refit()
            if guard is None or not guard.rose(task):
                return False
            refit()  # the head for the features put back
            task.events.append({"event": "held-out stop", "stage": self.kind, "step": task.step})
            return True

        run_lbfgs(task, params, closure, self.steps, self.history, self.kind, after_chunk,
                  evals_per_iter=1.25, min_progress=self.min_progress,
                  initial_loss=float(task.evaluate_loss()[0]), saved=saved)


def projected(task: Task, head: LinearHead, rcond: float | None,
              report: dict[str, Any] | None = None
              ) -> tuple[Callable[[], Tensor], Callable[[], None]]:
    """An L-BFGS closure for the variable-projection loss (the head re-solved by least
    squares at every evaluation), and a function that re-fits the head afterwards (the
    last evaluation may have been a trial point of the line search) and notes the
    system's condition number and rank in ``report``."""
    n_out = task.loss.problem.n_outputs

    parallel = task.loss.parallel

    def closure() -> Tensor:
        for p in task.params:
            p.grad = None
        blocks = term_blocks(task.loss, task.model, head)  # this rank's rows
        J, r0 = stacked(blocks)
        theta = reduced_lstsq(parallel, J.detach(), r0.detach(), rcond)
        # By the variable-projection (envelope) argument, the gradient of the
        # projected loss is that of the full loss with the optimal head held fixed.
        total = (J @ theta + r0).square().sum()
        total.backward()
        parallel.sum_grads(task.params)
        total = total.detach().reshape(1)
        parallel.sum_([total])
        head.set(theta.reshape(n_out, -1).T)
        return total[0]

    def after_chunk() -> None:
        solution = fit_head(task.loss, task.model, head, rcond)
        if report is not None:
            report.update(cond=solution.cond, rank=solution.rank, unknowns=len(solution.theta))

    return closure, after_chunk

