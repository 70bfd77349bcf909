"""A rich progress bar for training: stage, steps, loss, current error, time."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:  # annotations only: the CLI imports this module before it needs torch
    from .training.stages import Stage
    from .training.task import Task


def planned_total(stages: Sequence[Stage]) -> int | None:
    """The steps a bar counts for ``stages``; None (an open total) when a stage runs
    until the budget (``steps=None``)."""
    if any(s.steps_planned is None for s in stages):
        return None
    return sum(_counted(s) for s in stages)


def _counted(stage: Stage) -> int:
    """The steps a bar counts for one stage: at least 1 (a least-squares solve); an
    open-ended stage counts 1 too, its total being open anyway."""
    return max(1, stage.steps_planned or 0)


class RichProgress:
    """Shows a run's progress; use as a context manager around :func:`solve`.

    The bar counts planned steps; a stage that converges early jumps to its end. A stage
    that runs until the budget (``steps=None``) makes the total
    open (``n/?``).
    """

    def __init__(self, stages: Sequence[Stage], label: str = "", console: Console | None = None,
                 transient: bool = False) -> None:
        self.total = planned_total(stages)
        self.label = label
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("rel L2 {task.fields[err]}"),
            TimeElapsedColumn(), console=console or Console(stderr=True), transient=transient,
        )
        self._offset = 0
        self._stage_start = 0

    def __enter__(self) -> RichProgress:
        self.progress.start()
        self.bar = self.progress.add_task(self.label, total=self.total, loss="-", err="-")
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def on_stage_start(self, stage: Stage, task: Task) -> None:
        self._stage_start = task.step
        # The stages before this one are done (also when a run is resumed or rolled back).
        self._offset = sum(_counted(s) for s in task.stages[:task.stage_index])
        self.progress.update(self.bar, description=f"{self.label} {stage.kind}".strip())

    def on_record(self, row: dict, task: Task) -> None:
        err = task.last_error
        self.progress.update(
            self.bar, completed=self._offset + task.step - self._stage_start,
            loss=f"{float(row['loss']):.2e}", err="-" if math.isnan(err) else f"{err:.2e}",
        )

    def on_stage_end(self, stage: Stage, task: Task) -> None:
        self._offset += _counted(stage)
        self.progress.update(self.bar, completed=self._offset)


class ComparisonProgress(RichProgress):
    """One bar across the runs of a comparison, one for the current run's steps."""

    def __init__(self, runs: int, label: str) -> None:
        super().__init__([], label)
        self.runs = runs

    def __enter__(self) -> ComparisonProgress:
        self.progress.start()
        self.overall = self.progress.add_task(self.label, total=self.runs, loss="", err="")
        self.bar = self.progress.add_task("", total=1, loss="-", err="-")
        return self

    def on_run_start(self, index: int, total: int, config: Any, stages: Sequence[Stage]) -> list:
        self._offset = self._stage_start = 0
        self.total = planned_total(stages)
        self.label = f"  {config.model} seed {config.seed}"
        # A fresh bar per run: rich's reset keeps the old total when given None (open).
        self.progress.remove_task(self.bar)
        self.bar = self.progress.add_task(self.label, total=self.total, loss="-", err="-")
        return [self]

    def on_run_end(self, index: int, record: Any) -> None:
        self.progress.advance(self.overall)
