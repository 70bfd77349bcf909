"""Training the unknown coefficients of an inverse problem by variable projection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from ..errors import GMNMError
from .linear import check_linear, fit_head, linear_head, linear_system, lstsq
from .stages import Stage, _check_steps, run_lbfgs
from .task import Task


@dataclass(frozen=True)
class Coefficients(Stage):
    """L-BFGS on the problem's unknown coefficients alone, with the model's linear head
    re-solved by least squares at every evaluation and the features held fixed.

    For a problem that is linear in u once its coefficients are fixed (``−a Δu = f``
    with data), the loss is then a function of the few coefficients only, and L-BFGS
    finds its minimum in a handful of iterations; training the features at the same
    time (:class:`~pinn_gmnm.training.VarPro`) can follow. By the variable-projection
    argument the gradient is that of the full loss with the optimal head held fixed.
    """

    steps: int = 50
    history: int = 10
    rcond: float | None = None
    kind: ClassVar[str] = "coefficients"

    def __post_init__(self) -> None:
        _check_steps("coefficients steps", self.steps)

    def run(self, task: Task) -> None:
        problem = task.loss.problem
        if not problem.unknowns:
            raise GMNMError(f"problem '{problem.name}' has no unknown coefficients to learn")
        if self.steps == 0:
            return
        check_linear(problem)
        head = linear_head(task.model)
        params = [p for k in problem.unknowns for p in k.parameters()]
        n_out = problem.n_outputs

        def closure() -> Tensor:
            for p in task.params:
                p.grad = None
            J, r0 = linear_system(task.loss, task.model, head)
            theta = lstsq(J.detach(), -r0.detach(), self.rcond)
            total = (J @ theta + r0).square().sum()
            total.backward()
            head.set(theta.reshape(n_out, -1).T)
            return total.detach()

        def after_chunk() -> None:
            fit_head(task.loss, task.model, head, self.rcond)

        run_lbfgs(task, params, closure, self.steps, self.history, self.kind, after_chunk,
                  evals_per_iter=2.0)
