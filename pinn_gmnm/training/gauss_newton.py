"""Gauss–Newton with Levenberg–Marquardt damping, for any problem and any model of up to
a few thousand parameters.

The loss is L(θ) = ‖r(θ)‖², r the stacked, weighted residual vector (see
:mod:`.jacobian`). Each iteration linearises r ≈ r + J δ and takes the damped step

    δ = argmin ‖r + J δ‖² + λ ρ ‖D δ‖²,   D_j = max(‖J_:j‖, rms_j ‖J_:j‖)

(Marquardt's scaling with a floor, ρ a curvature scale: see :class:`DampedSolver`).
The step is accepted when the loss falls; the gain ratio
ρ_gain = (L(θ) − L(θ+δ)) / (L(θ) − ‖r + Jδ‖²) adapts λ, after Nielsen: λ ← λ·max(1/100,
1 − (2ρ_gain − 1)³) after a success (a faster decrease than his 1/3: our Jacobians are
ill-conditioned more than they are nonlinear), λ ← λ·ν and ν ← 2ν after a failure.
For a linear problem, with tiny damping a step solves the linearised problem exactly;
for nonlinear ones convergence near the solution is close to quadratic, where
first-order methods crawl.

Cost per iteration: one Jacobian (about a backward pass per residual quantity, see
:mod:`.jacobian`), one QR (P ≤ N) or Gram matrix (P > N) factorisation of the N × P
Jacobian, and a small solve per trial damping — fine for P up to a few thousand in
float64, out of reach beyond.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..distributed import Serial
from ..errors import GMNMError, require_positive
from ..models.contract import linear_head_of
from .equilibrate import apply_term_scales, jacobian_row_sums
from .heldout import HeldOut
from .jacobian import residual_jacobian, residual_vector
from .linear import linear_head, zero_loss
from .stages import Stage, _check_steps, step_limit
from .streamed import across_ranks, fold
from .task import Task, assign_vector, parameter_vector


SHORT = 1e-8
"""Newton's method that stops on its own with its loss above this × the loss of u ≡ 0 has
not solved the problem (see :func:`check_solved`). Measured (default GMNM):
converged runs stay below it (Bratu's u'' + e^u = 0, −Δu + u³ = f and
−∇·((1 + u²)∇u) = f, errors 8e-12 to 6e-10); ε²u'' = u³ − u with u(±1) = ±1, ε = 0.02,
stopped at 1e-3 of u ≡ 0's loss on a state oscillating about 0 (error 1.0) and, started
near the layer (``Problem(guess=...)``), at 4e-4 with the layer unresolved (2.6e-2)."""


def short_of_solution(task: Task, loss: float) -> float | None:
    """The loss of u ≡ 0 under the task's weights when ``loss`` is above ``SHORT`` times
    it (Newton short of a solution); None otherwise."""
    zero = zero_loss(task)
    return zero if zero > 0 and loss > SHORT * zero else None


def check_solved(task: Task, loss: float, stage: str) -> None:
    """Record a ``short of a solution`` event when Newton's iterations, stopped (no step
    lowered the loss, or too little), left ``loss`` short of a solution
    (:func:`short_of_solution`): a local minimum of the least-squares loss, or a solution
    the model does not resolve. PDE problems not declared linear only (a fit's data cannot
    be met exactly), and not a march's slab (the march judges its slabs, see
    :data:`~.march.SOLVED`)."""
    from ..fitting import is_fit_problem

    problem = task.loss.problem
    if linear_head_of(task.model) is None or problem.linear is True or \
            is_fit_problem(problem) or getattr(task, "run_task", None) is not None:
        return
    zero = short_of_solution(task, loss)
    if zero is not None:
        task.events.append({"event": "short of a solution", "stage": stage, "step": task.step,
                            "loss": loss, "zero_loss": zero})


class DampedSolver:
    """Levenberg–Marquardt steps for one linearisation r + J δ, for any damping λ:
    δ minimises ‖r + J δ‖² + λ ρ ‖D δ‖², ρ the mean eigenvalue of (JD⁻¹)ᵀ(JD⁻¹).

    Columns are scaled by D_j = max(‖J_:j‖, rms_j ‖J_:j‖): Marquardt's scaling for
    parameters the residual is sensitive to, plain Levenberg damping for the others, so a
    parameter with almost no effect yet (a Gaussian's centre while its weight is near
    zero) cannot take a huge step.

    With no more parameters than residuals (P ≤ N), J D⁻¹ = Q R once, and each λ solves
    the small stacked problem [R; √(λρ) I] by QR: no squared Gram matrix, so the tiny
    damping that ill-conditioned Jacobians (broad Gaussians) need stays accurate. Both
    factorisations take the right-hand side as one more column and keep only the
    triangular factor (Qᵀr is its last column): Q is never formed. With
    more parameters than residuals the step goes through the N × N system
    (J̃J̃ᵀ + λρ I) z = r, δ = −D⁻¹J̃ᵀz, by Cholesky, and λ is kept ≥ 1e-12 there.
    """

    GRAM_FLOOR = 1e-12

    def __init__(self, J: Tensor, r: Tensor) -> None:
        self.scale = self._scale(J.norm(dim=0))
        self.J, self.r = J / self.scale, r
        N, P = J.shape
        self.tall = P <= N
        if self.tall:
            # R and c = Qᵀr from one triangular factor of [J | r], Q never formed
            # (forming it costs about as much again as the factorisation)
            Rr = torch.linalg.qr(torch.cat([self.J, r[:, None]], dim=1), mode="r").R
            self._factor(Rr, float(r.square().sum() - Rr[:P, P].square().sum()))
        else:
            self.G = self.J @ self.J.T
            self.ref = float(self.G.diagonal().mean())

    @staticmethod
    def _scale(norms: Tensor) -> Tensor:
        floor = max(float(norms.square().mean().sqrt()), torch.finfo(norms.dtype).tiny)
        return norms.clamp_min(floor)

    @classmethod
    def reduced(cls, J: Tensor, r: Tensor, parallel: Serial) -> DampedSolver:
        """The solver for every rank's rows (r, J this rank's), the same on every rank.
        With no more parameters than rows overall, no rank gathers another's rows: the
        column norms are summed across ranks, each rank reduces its [J D⁻¹ | r] to an R
        factor, and the ranks' R factors are reduced by one more QR (TSQR, as the
        streamed least-squares solver does); [R, c; 0, ρ] is then the R factor of the
        whole [J D⁻¹ | r], which is all a step needs (c = Qᵀr, ρ² what no step removes).
        With more parameters than rows the (few) rows are gathered."""
        P = J.shape[1]
        if parallel.world == 1 or parallel.total(len(r)) < P:
            return cls(parallel.gather_rows(J), parallel.gather_rows(r[:, None])[:, 0])
        squares = J.square().sum(dim=0)
        parallel.sum_([squares])
        solver = cls.__new__(cls)
        solver.scale = cls._scale(squares.sqrt())
        R = across_ranks(parallel, fold(None, torch.cat([J / solver.scale, r[:, None]], dim=1)))
        R = R.to(J.dtype)
        solver._factor(R, float(R[P:, P].square().sum()))
        return solver

    def _factor(self, Rr: Tensor, rest: float) -> None:
        """Take the R factor [R, c; 0, ·] of [J D⁻¹ | r] (P ≤ N) and ‖r‖² − ‖c‖²."""
        P = Rr.shape[1] - 1
        self.tall = True
        self.R, self.c, self.rest = Rr[:P, :P], Rr[:P, P], rest
        self.ref = float(self.R.square().sum()) / P

    def step(self, lam: float) -> tuple[Tensor, float]:
        """δ for damping ``lam`` and the loss ‖r + J δ‖² the linear model predicts."""
        if self.tall:
            P = self.R.shape[1]
            damped = torch.cat([self.R, math.sqrt(lam * self.ref) * torch.eye(
                P, dtype=self.R.dtype, device=self.R.device)])
            rhs = torch.cat([self.c, self.c.new_zeros(P)])
            Rr = torch.linalg.qr(torch.cat([damped, rhs[:, None]], dim=1), mode="r").R
            d = -torch.linalg.solve_triangular(Rr[:P, :P], Rr[:P, P:], upper=True)[:, 0]
            predicted = self.rest + float((self.R @ d + self.c).square().sum())
        else:
            N = self.G.shape[0]
            lam = max(lam, self.GRAM_FLOOR)
            eye = torch.eye(N, dtype=self.G.dtype, device=self.G.device)
            L, info = torch.linalg.cholesky_ex(self.G + lam * self.ref * eye)
            if info:
                raise torch.linalg.LinAlgError("damped Gram matrix is not positive definite")
            d = -self.J.T @ torch.cholesky_solve(self.r[:, None], L)[:, 0]
            predicted = float((self.r + self.J @ d).square().sum())
        return d / self.scale, max(predicted, 0.0)


@dataclass(frozen=True)
class GaussNewton(Stage):
    """Levenberg–Marquardt iterations for up to ``steps`` (None: until the budget or the
    stopping rule), on all trained parameters or,
    with ``head_only``, on the model's linear output layer alone (GMNM: π and b).

    Head-only, the features stay fixed and the iteration is Newton's method on the
    collocation equations — for a nonlinear PDE the counterpart of the least-squares
    solve, fast (P = m + 1) and accurate; all parameters, it also moves the features.

    ``damping`` is the initial λ (relative, see :class:`DampedSolver`); after a step
    with gain ratio ρ it is multiplied by max(``decrease``, 1 − (2ρ − 1)³) and never goes
    below ``min_damping``. Stops when the loss falls below ``tol`` times its starting
    value, when ``patience`` iterations in a row lower it by less than the fraction
    ``min_progress``, when no damping up to 1e8 lowers it, or when the budget is spent —
    or would be by the next iteration, if it takes as long as the last one (a step on a
    large model takes tens of seconds; the run then ends within its budget).
    ``max_parameters`` guards against Jacobians (N × P floats) and factorisations that
    would not fit or take too long: past it the stage is an error, or with ``if_fits``
    skipped (a ``skipped`` event; the gauss-newton method's last phase, after a
    refinement that may have grown the model).

    With ``equilibrate`` the loss terms are scaled when the stage starts by their rows of
    the Jacobian with respect to the linear output layer (all trained parameters for a
    model without one), as the least-squares stages do (:mod:`.equilibrate`); for a
    nonlinear problem that Jacobian depends on the current solution, so each stage takes
    it afresh.

    With ``held_out`` (a count; None: off) the loss is also taken on fresh collocation
    points after every accepted step (:class:`~.heldout.HeldOut`), and the stage stops
    when ``held_out`` steps in a row have not lowered it below its best; whatever stops
    the stage, the parameters it ends with are those of the best held-out loss. Newton
    on a GMNM's output layer can drive the loss on the training points down while the
    solution gets worse between them: ``taylor-green`` (1000 Gaussians, 2000 points in
    space-time) went from 0.14 to 0.75 in the pressure as its loss fell from 5e-10 to
    2e-10. The best held-out loss and its parameters are part of the stage's safe points
    (a resumed stage continues exactly).

    Resumable (see :class:`~.stages.Stage`): each iteration ends at a safe point holding
    the iteration count, λ, ν and the stopping rule's counters. Steps are only accepted
    when they lower the loss, so it cannot diverge.
    """

    steps: int | None = 100
    head_only: bool = False
    damping: float = 1e-3
    decrease: float = 0.01
    min_damping: float = 1e-24
    min_progress: float = 1e-3
    patience: int = 5
    tol: float = 1e-30
    max_parameters: int = 8000
    equilibrate: bool = True
    held_out: int | None = 3
    if_fits: bool = False
    kind: ClassVar[str] = "gauss-newton"

    MAX_DAMPING: ClassVar[float] = 1e8

    def __post_init__(self) -> None:
        _check_steps("gauss-newton steps", self.steps, open_ended=True)
        for name in ("damping", "min_damping", "tol"):
            require_positive(name, getattr(self, name))
        require_positive("patience", self.patience, integer=True)
        require_positive("max_parameters", self.max_parameters, integer=True)
        for name in ("decrease", "min_progress"):
            if not 0 <= getattr(self, name) < 1:
                raise GMNMError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")

    def run(self, task: Task) -> None:
        if self.steps == 0:
            return
        P = sum(p.numel() for p in self.trained(task))
        if self.if_fits and P > self.max_parameters:  # (a stage before grew the model)
            task.events.append({"event": "skipped", "stage": self.kind, "step": task.step,
                                "reason": f"{P} parameters, more than {self.max_parameters}"})
            return
        self.iterate(task, task.resumed())

    def trained(self, task: Task) -> Sequence[Tensor]:
        """The parameters the stage trains: the output layer's with ``head_only``, else
        the task's."""
        return linear_head(task.model).head_parameters() if self.head_only else task.params

    def iterate(self, task: Task, state: dict[str, Any] | None,
                carry: dict[str, Any] | None = None) -> None:
        """The iterations, from the start (``state`` None) or from the safe point
        ``state``; ``carry`` (plain data) goes into every safe point besides the
        iteration's own, for a stage built on this one (:class:`~.compact.Compact`)."""
        params = self.trained(task)
        P = sum(p.numel() for p in params)
        if P > self.max_parameters:
            raise GMNMError(
                f"gauss-newton: the model has {P} trained parameters, more than max_parameters="
                f"{self.max_parameters}; use a smaller model, raise max_parameters, or use the "
                "adam/lbfgs stages"
            )
        parallel = task.loss.parallel
        lam, nu, start, slow, first = self.damping, 2.0, math.inf, 0, 0
        if state is not None:  # continue inside this stage
            if state.get("finished"):  # stopped at the safe point of its last iteration
                return
            lam, nu, start, slow, first = (state[k] for k in ("lam", "nu", "start", "slow", "step"))
        elif self.equilibrate:  # (a resumed stage keeps the weights it saved)
            head = linear_head_of(task.model)
            scaled = params if head is None else head.head_parameters()
            apply_term_scales(task, jacobian_row_sums(task, scaled), self.kind)
        limit = step_limit(self.steps)
        took = None  # seconds the last iteration took
        held = (HeldOut(task, params)
                if self.held_out is not None and task.collocation is not None else None)
        worse = 0
        if state is not None and held is not None and "held_best" in state:
            worse, held.best, held.kept = state["worse"], state["held_best"], state["held_kept"]
        for i in itertools.count(first):
            if i >= limit:
                break
            if took is not None and not task.step_fits(took):
                task.events.append({"event": "budget stop", "stage": self.kind, "step": task.step,
                                    "reason": f"the next step (about {took:.1f} s) would "
                                              "overrun the budget"})
                break
            began = task.clock.elapsed()
            r, J = residual_jacobian(task.loss, task.model, params)  # this rank's rows
            total = r.square().sum().reshape(1)
            parallel.sum_([total])
            loss = float(total)
            start = loss if start == math.inf else start
            if not math.isfinite(loss) or loss <= self.tol * start:
                break
            theta = parameter_vector(params)
            # under torchrun every rank holds the same reduced system: identical steps
            solver = DampedSolver.reduced(J, r, parallel)
            del r, J
            new_loss = math.inf
            while lam < self.MAX_DAMPING:
                try:
                    step, predicted = solver.step(lam)
                except torch.linalg.LinAlgError:
                    lam, nu = lam * nu, 2 * nu
                    continue
                assign_vector(params, theta + step)
                with torch.no_grad():
                    new = residual_vector(task.loss, task.model).square().sum().reshape(1)
                parallel.sum_([new])
                new_loss = float(new)
                if new_loss < loss:  # False for NaN
                    gain = min(1.0, (loss - new_loss) / max(loss - predicted, 1e-300))
                    lam = max(lam * max(self.decrease, 1 - (2 * gain - 1) ** 3), self.min_damping)
                    nu = 2.0
                    break
                assign_vector(params, theta)
                lam, nu = lam * nu, 2 * nu
            accepted = new_loss < loss
            slow = slow + 1 if not new_loss < (1 - self.min_progress) * loss else 0
            if accepted and held is not None:
                worse = 0 if held.improved(task) else worse + 1
            stalled = held is not None and worse >= self.held_out
            finished = not accepted or slow >= self.patience or stalled or i == limit - 1
            done = finished or task.out_of_time()
            if done and held is not None and worse:  # end on the best held-out iterate
                held.restore()
                task.events.append({"event": "held-out stop" if stalled else "held-out best",
                                    "stage": self.kind, "step": task.step + 1,
                                    "held_out": held.best, "steps_back": worse})
            total, _ = task.evaluate_loss()
            task.record(self.kind, float(total), force_eval=done)
            held_state = ({} if held is None else
                          {"worse": 0 if done else worse, "held_best": held.best,
                           "held_kept": held.kept.clone()})
            task.safe_point({**(carry or {}), "step": i + 1, "lam": lam, "nu": nu, "start": start, "slow": slow,
                             "finished": finished, **held_state})
            if done:
                if finished and i < limit - 1:  # it stopped on its own: did it solve?
                    check_solved(task, float(total), self.kind)
                break
            took = task.clock.elapsed() - began
