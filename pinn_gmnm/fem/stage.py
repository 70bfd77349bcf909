"""The finite-element model's one training stage: assemble and solve."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..errors import GMNMError
from ..training.stages import Stage
from ..training.task import Task


@dataclass(frozen=True)
class FEMSolve(Stage):
    """Mesh the problem's domain, assemble the weak form of its PDE and conditions, and
    solve the sparse system once (:func:`~.elliptic.solve_elliptic`), or by Newton's
    method for a flow (:func:`~.navier_stokes.solve_flow`); the model then
    holds the nodal values. The loss recorded afterwards is the run's loss at the
    collocation points, as for any model."""

    kind: ClassVar[str] = "fem"

    def run(self, task: Task) -> None:
        from .elliptic import solve_elliptic
        from .model import FEM
        from .navier_stokes import solve_flow

        model = task.model
        if not isinstance(model, FEM):
            raise GMNMError(f"the fem stage solves for the fem model, not {type(model).__name__} "
                            "(use --model fem; it takes no --hard)")
        if task.resumed() is None or not model.solved:
            problem = task.loss.problem
            solve = solve_flow if problem.n_outputs > 1 else solve_elliptic
            fem = solve(problem, order=model.order, size=model.size)
            model.set_solution(fem.nodes, fem.cells, fem.values, fem.times, fem.orders)
        total, _ = task.evaluate_loss()
        task.record(self.kind, float(total), force_eval=True)
        task.safe_point({"solved": True})
