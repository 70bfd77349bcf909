"""How the least-squares stages solve for a linear head: dense, streamed or sparse.

==========  ==========================================  ==============================
solver      memory                                      when
==========  ==========================================  ==============================
dense       the N × P matrix and its SVD factor         it fits (``auto``'s rule below)
streamed    O(P² + rows · P), R factor of row blocks    it does not, or under torchrun
            (:mod:`.streamed`); per rank under torchrun
sparse      the nonzeros of J (truncated Gaussians)     chosen by name: GMNM models with
            and the P × P Cholesky factor of JᵀJ,       narrow Gaussians, many of them
            LSMR (:mod:`.sparse`)
==========  ==========================================  ==============================

``auto`` (the default) takes ``dense`` in one process when the dense solve's matrices,
4 · 8 · N · P bytes (the system in float64, its column-scaled copy and the SVD factor U,
with the run-dtype original), fit in half the memory available (GPU: free memory, CPU:
MemAvailable); otherwise ``streamed``, whose answer equals the dense one to rounding
(tested: 1e-9 relative on the solution's residual). Under ``torchrun`` it always takes
``streamed``, which reduces each rank's rows to an R factor instead of gathering rows.

Config files name a solver (``{"type": "lstsq", "solver": "streamed"}``) or give it with
options (``"solver": {"name": "streamed", "rows": 4096}``); they become objects here, in
:func:`solver_from`.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..errors import GMNMError, require_positive, unknown
from ..models.head import LinearHead
from .batch import Batch
from .loss import Loss
from .lsq import (Basis, LstsqSolution, basis_square_sums, linear_system, solve_lstsq,
                  unknowns)


class LinearSolver(ABC):
    """Solves min ‖J θ + r₀‖² for a model's linear head on a loss's points."""

    name: ClassVar[str]

    @abstractmethod
    def solve(self, loss: Loss, model: nn.Module, head: LinearHead, rcond: float | None
              ) -> LstsqSolution:
        """The regularised least-squares solution (see :func:`~.lsq.filtered_solve`)."""

    def pieces(self, loss: Loss, head: LinearHead) -> list[Batch | None]:
        """The pieces of the batch the solver builds its rows in (None: all at once), for
        the checks and the equilibration that look at the system before it is solved."""
        return [None]

    def resolve(self, loss: Loss, head: LinearHead) -> LinearSolver:
        """The solver that will run (``auto`` decides here)."""
        return self

    def row_sums(self, loss: Loss, model: nn.Module, head: LinearHead) -> list[Tensor]:
        """Each term's sum of squared row norms of its unweighted system (this rank's
        rows), built piece by piece: what equilibration scales by."""
        sums: list[Tensor] = []
        with torch.no_grad():
            for piece in self.pieces(loss, head):
                rs = loss.residuals(model, Basis(head, loss.problem), batch=piece)
                part = basis_square_sums(rs)
                sums = part if not sums else [a + b for a, b in zip(sums, part)]
        return sums


@dataclass(frozen=True)
class Dense(LinearSolver):
    """The whole system at once (gathered from every rank), SVD in float64."""

    name: ClassVar[str] = "dense"

    def solve(self, loss: Loss, model: nn.Module, head: LinearHead, rcond: float | None
              ) -> LstsqSolution:
        J, r0 = linear_system(loss, model, head)
        return solve_lstsq(J, -r0, rcond)


@dataclass(frozen=True)
class Streamed(LinearSolver):
    """Row blocks of ``rows`` points folded into an R factor (:mod:`.streamed`); None:
    max(2048, P) points, so a block costs about as much memory as R itself."""

    rows: int | None = None
    name: ClassVar[str] = "streamed"

    def __post_init__(self) -> None:
        if self.rows is not None:
            require_positive("streamed solver rows", self.rows, integer=True)

    def block_rows(self, loss: Loss, head: LinearHead) -> int:
        return self.rows if self.rows is not None else max(2048, unknowns(loss, head))

    def pieces(self, loss: Loss, head: LinearHead) -> list[Batch | None]:
        from .streamed import pieces

        return list(pieces(loss, self.block_rows(loss, head)))

    def solve(self, loss: Loss, model: nn.Module, head: LinearHead, rcond: float | None
              ) -> LstsqSolution:
        from .streamed import streamed_solve

        return streamed_solve(loss, model, head, self.block_rows(loss, head), rcond)


@dataclass(frozen=True)
class Auto(LinearSolver):
    """``dense`` when it fits in ``memory`` bytes (None: half of what the device has
    available), else ``streamed``; ``streamed`` under torchrun (see the module's rule)."""

    memory: int | None = None
    name: ClassVar[str] = "auto"

    def dense_bytes(self, loss: Loss, head: LinearHead) -> int:
        """4 · 8 · N · P: the dense solve's float64 matrices (see the module)."""
        b = loss.batch
        equations = len(loss.names) - len(loss.problem.conditions)
        rows = len(b.interior) * equations + sum(len(x) for x in b.conditions)
        return 32 * rows * unknowns(loss, head)

    def resolve(self, loss: Loss, head: LinearHead) -> LinearSolver:
        if loss.parallel.world > 1:
            return Streamed()
        limit = self.memory
        if limit is None:
            from ..memory import available_memory

            have = available_memory(loss.batch.interior.device)
            limit = None if have is None else have[0] // 2
        if limit is None or self.dense_bytes(loss, head) <= limit:
            return Dense()
        return Streamed()

    def pieces(self, loss: Loss, head: LinearHead) -> list[Batch | None]:
        return self.resolve(loss, head).pieces(loss, head)

    def solve(self, loss: Loss, model: nn.Module, head: LinearHead, rcond: float | None
              ) -> LstsqSolution:
        return self.resolve(loss, head).solve(loss, model, head, rcond)


def _sparse(**options: object) -> LinearSolver:
    from .sparse import Sparse

    return Sparse(**options)  # type: ignore[arg-type]


SOLVERS: dict[str, Callable[..., LinearSolver]] = {
    "auto": Auto, "dense": Dense, "streamed": Streamed, "sparse": _sparse}


def solver_from(spec: str | dict[str, Any] | LinearSolver) -> LinearSolver:
    """A solver object from its name, from ``{"name": ..., option: value, …}`` (what
    :func:`solver_to_data` writes into a run's config), or the object itself."""
    if isinstance(spec, LinearSolver):
        return spec
    options: dict[str, Any] = {}
    if isinstance(spec, dict):
        options = dict(spec)
        spec = options.pop("name", None)
    if not isinstance(spec, str) or spec not in SOLVERS:
        raise unknown("least-squares solver", str(spec), SOLVERS)
    try:
        return SOLVERS[spec](**options)
    except TypeError:
        raise GMNMError(f"unknown option for the least-squares solver '{spec}': "
                        f"{', '.join(sorted(options))}") from None


def solver_to_data(spec: str | dict[str, Any] | LinearSolver) -> str | dict[str, Any]:
    """A solver as plain data: its name, or its name and options."""
    if isinstance(spec, LinearSolver):
        options = dataclasses.asdict(spec)  # type: ignore[call-overload]
        return {"name": spec.name, **options} if options else spec.name
    return spec


def check_solver(spec: object) -> None:
    if not isinstance(spec, (str, dict, LinearSolver)):
        raise GMNMError(f"solver must be a name ({', '.join(SOLVERS)}) or a solver object, "
                        f"got {spec!r}")
    solver_from(spec)  # type: ignore[arg-type]
