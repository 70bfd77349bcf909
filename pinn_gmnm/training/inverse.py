"""Training the unknown coefficients of an inverse problem by variable projection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..errors import GMNMError
from .linear import check_linear, linear_head, projected
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
        closure, after_chunk = projected(task, head, self.rcond)
        run_lbfgs(task, params, closure, self.steps, self.history, self.kind, after_chunk,
                  evals_per_iter=2.0, saved=task.resumed())
