"""What a comparison is and what it produced, as plain data: the settings
(:class:`Comparison`), one record per run (:class:`RunRecord`) and the whole result
(:class:`ComparisonResult`). :mod:`.compare` runs comparisons and
:mod:`.compare_report` reports them; both read these, neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import RunConfig
from .errors import GMNMError, require_positive
from .methods import Steps
from .models import MODELS
from .problem import Problem

MODEL_ORDER = ("gmnm", "pinn", "mlp", "kan")
"""The default models, in table order."""

NOT_APPLICABLE = "not applicable"
"""The status of a run whose model cannot solve the problem at all (``fem`` on a
time-dependent problem), followed by why."""


@dataclass(frozen=True)
class Comparison:
    """What to compare: ``models`` on ``base.problem``, ``seeds`` runs each (seeds
    base.seed, base.seed + 1, …), sized to ``params`` parameters (None: the default
    GMNM's size). ``base`` carries the shared settings: method, steps, budget, points,
    sampler, dtype, device, problem parameters."""

    base: RunConfig
    models: tuple[str, ...] = MODEL_ORDER
    seeds: int = 3
    params: int | None = None
    jobs: int = 1
    tuned: Path | None = None
    """A folder of ``gmnm-pde tune`` results: each model runs with its tuned settings
    (``tuned-PROBLEM-MODEL.json``) instead of being parameter-matched."""
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Options of the models that have no size to match (``fem``: its element order and
    mesh size), by model name; they run as given."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", tuple(self.models))
        if not self.models:
            raise GMNMError("give at least one model to compare, e.g. --models gmnm,mlp")
        for name in self.models:
            MODELS.entry(name)  # unknown model: the standard error
        if len(set(self.models)) != len(self.models):
            raise GMNMError(f"models are listed twice: {','.join(self.models)}")
        require_positive("seeds", self.seeds, integer=True)
        if self.params is not None:
            require_positive("target parameter count (--params)", self.params, integer=True)
        require_positive("jobs", self.jobs, integer=True)
        object.__setattr__(self, "options", {m: dict(o) for m, o in self.options.items() if o})
        for name in self.options:
            if name not in self.models or MODELS.get(name).size_option is not None:
                raise GMNMError(f"options were given for model '{name}', which is not compared "
                                "or is sized by --params")

    @property
    def budget_text(self) -> str:
        b = self.base
        if b.budget is not None:
            text = f"equal wall-clock budget: {b.budget:g} s of training per run"
            if any(getattr(b, name) is None for name in Steps.OPEN_ENDED):
                text += " (the last stage runs until the budget or its own stopping rule)"
            return text
        return (f"equal steps: Adam {b.adam_steps} + L-BFGS {b.lbfgs_steps}, "
                f"or least squares + variable projection {b.varpro_steps}, per the row's method")


@dataclass
class RunRecord:
    """One finished (or failed) run of a comparison."""

    model: str
    seed: int
    status: str                       # "ok", "diverged", "interrupted" or "failed: …"
    method: str
    training: str                     # the stages, in words
    parameters: int
    metrics: dict[str, float]
    history: list[dict[str, Any]]
    directory: Path | None

    def summary(self) -> dict[str, Any]:
        return {"model": self.model, "seed": self.seed, "status": self.status,
                "method": self.method, "training": self.training,
                "parameters": self.parameters, **self.metrics,
                "directory": None if self.directory is None else str(self.directory)}


@dataclass
class ComparisonResult:
    comparison: Comparison
    problem: Problem
    target: int
    records: list[RunRecord]
    directory: Path | None
    fields: dict[str, np.ndarray] = field(default_factory=dict)  # model → slice prediction
    interrupted: str | None = None    # the signal that stopped the comparison early
