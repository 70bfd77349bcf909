"""Placing a GMNM's Gaussians to fit the domain before training."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ..models.gmnm import GMNM
from .stages import Stage
from .task import Task


@dataclass(frozen=True)
class Layout(Stage):
    """Spread a GMNM's centres over the domain — as its collocation points sample it,
    interior and boundary — and a margin around it, culling places of the enlarged
    bounding box farther than the margin from every point, with widths tied to the new
    spacing (:meth:`~pinn_gmnm.models.GMNM.arrange`). On a box nothing is culled and the
    layout is the one the model starts with; on an L-shape or a disk the same number of
    Gaussians ends up closer together, where the solution lives.

    Meant as the first stage, before least squares. Models other than GMNM have no layout:
    for them this stage does nothing. The fraction of the enlarged box kept and the width
    are recorded as a ``layout`` event.
    """

    kind: ClassVar[str] = "layout"

    def run(self, task: Task) -> None:
        model = task.model
        if not isinstance(model, GMNM):
            return
        batch = task.loss.batch
        points = torch.cat([batch.interior, *batch.conditions])
        points = task.loss.parallel.gather_rows(points)  # every rank: the same layout
        report = model.arrange(points, seed=task.seed)
        task.events.append({"event": "layout", "stage": self.kind, "step": task.step,
                            "components": model.layer.components, **report})
