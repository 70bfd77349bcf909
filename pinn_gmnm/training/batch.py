"""Collocation points: how many, drawn how, and the batch a loss is evaluated on."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .._types import Points
from ..config import RunConfig
from ..distributed import Serial
from ..errors import GMNMError, require_positive
from ..problem import Problem
from ..sampling import Sampler, Sobol


@dataclass(frozen=True)
class Collocation:
    """``interior`` PDE points and ``boundary`` points shared by the boundary conditions
    (each condition keeps those on its piece), drawn with ``sampler``."""

    interior: int = RunConfig.interior  # the defaults of a run (2000, 400)
    boundary: int = RunConfig.boundary
    sampler: Sampler = field(default_factory=Sobol)

    def __post_init__(self) -> None:
        require_positive("interior points", self.interior, integer=True)
        require_positive("boundary points", self.boundary, integer=True)


@dataclass(frozen=True)
class Batch:
    """The points of one loss evaluation: interior points and each condition's points."""

    interior: Points
    conditions: tuple[Points, ...]

    @property
    def size(self) -> int:
        """Every point: the interior's and each condition's."""
        return len(self.interior) + sum(len(x) for x in self.conditions)

    def to(self, dtype: torch.dtype, device: torch.device | str) -> Batch:
        return Batch(self.interior.to(device=device, dtype=dtype),
                     tuple(c.to(device=device, dtype=dtype) for c in self.conditions))

    def shard(self, parallel: Serial) -> Batch:
        """This rank's share of every set of points (all of them in one process)."""
        return Batch(parallel.shard(self.interior), tuple(parallel.shard(c) for c in self.conditions))

    def extended(self, interior: Points, conditions: tuple[Points, ...]) -> Batch:
        """This batch with more points: ``interior``, then each condition's."""
        return Batch(torch.cat([self.interior, interior]),
                     tuple(torch.cat([a, b]) for a, b in zip(self.conditions, conditions)))


def sample_batch(problem: Problem, collocation: Collocation, seed: int) -> Batch:
    """Draw a batch for ``problem``; a condition that gets no points is an error."""
    g = problem.geometry
    interior = g.sample_interior(collocation.interior, collocation.sampler, seed)
    boundary = (g.sample_boundary(collocation.boundary, collocation.sampler, seed + 1)
                if problem.conditions else interior[:0])
    points = []
    for i, c in enumerate(problem.conditions):
        x = c.sample(g, boundary, variables=problem.variables, n=collocation.boundary,
                     sampler=collocation.sampler, seed=seed + 2 + i)
        if len(x) == 0:
            raise GMNMError(
                f"{problem.name}: condition '{c.label}' selects none of its candidate points "
                f"({len(boundary)} boundary points drawn); check its 'on' predicate (or raise "
                "the boundary point count)"
            )
        points.append(x)
    return Batch(interior, tuple(points))
