"""Profiles: one output of a solution along a straight segment, the model beside the exact
or reference solution and, when a problem declares them, published values.

A problem lists its profiles in ``Problem.profiles``; a finished run writes them to its
directory as ``profiles.csv`` (one row per point) and ``profiles.png`` (one panel per
profile). The lid-driven cavity declares its centrelines with the values of Ghia, Ghia &
Shin (1982)::

    Profile("u", start=(0.5, 0.0), end=(0.5, 1.0), along="y",
            published=GHIA_U, source="Ghia et al. 1982")
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .errors import GMNMError, require_positive

if TYPE_CHECKING:
    from .problem import Problem


@dataclass(frozen=True)
class Profile:
    """Output ``output`` at ``points`` evenly spaced points from ``start`` to ``end``
    (both in the domain), plotted against the coordinate ``along``. ``published`` holds
    (coordinate, value) pairs to show beside it, from ``source``."""

    output: str
    start: Sequence[float]
    end: Sequence[float]
    along: str
    points: int = 129
    published: Sequence[tuple[float, float]] = ()
    source: str = ""

    def __post_init__(self) -> None:
        require_positive("profile points", self.points, integer=True)
        if len(self.start) != len(self.end):
            raise GMNMError(f"profile of {self.output}: start {tuple(self.start)} and end "
                            f"{tuple(self.end)} have different dimensions")
        if self.published and not self.source:
            raise GMNMError(f"profile of {self.output}: published values need a source")

    def check(self, outputs: Sequence[str], variables: Sequence[str]) -> None:
        """Fail unless the output and the coordinate are the problem's and the segment
        has its dimension (called when the problem is built)."""
        if self.output not in outputs:
            raise GMNMError(f"profile: unknown output '{self.output}'; outputs: "
                            f"{', '.join(outputs)}")
        if self.along not in variables:
            raise GMNMError(f"profile: unknown variable '{self.along}'; variables: "
                            f"{', '.join(variables)}")
        if len(self.start) != len(variables):
            raise GMNMError(f"profile of {self.output}: start and end need {len(variables)} "
                            f"coordinates, got {len(self.start)}")

    def label(self, variables: Sequence[str]) -> str:
        """``u along x = 0.5``: the output and the coordinates the segment holds fixed."""
        fixed = [f"{v} = {a:g}" for v, a, b in zip(variables, self.start, self.end) if a == b]
        return f"{self.output} along {', '.join(fixed) or self.along}"

    def sample(self, variables: Sequence[str]) -> torch.Tensor:
        """The points (n, d), float64: the evenly spaced ones and those of the published
        values (placed on the segment by their coordinate), in order along it."""
        a, b = (torch.tensor(p, dtype=torch.float64) for p in (self.start, self.end))
        t = torch.linspace(0.0, 1.0, self.points, dtype=torch.float64)
        axis = list(variables).index(self.along)
        span = float(b[axis] - a[axis])
        if self.published and span != 0:
            extra = torch.tensor([(c - float(a[axis])) / span for c, _ in self.published],
                                 dtype=torch.float64)
            t = torch.unique(torch.cat([t, extra.clamp(0.0, 1.0)]))
        return a + t[:, None] * (b - a)


def profile_table(problem: Problem, model: torch.nn.Module) -> list[dict[str, object]]:
    """One row per point of every profile: profile label, the coordinates, the model's
    value, the exact or reference value (NaN when unknown) and the published one (NaN
    where there is none)."""
    from .plotting import _predict

    rows: list[dict[str, object]] = []
    for profile in problem.profiles:
        x = profile.sample(problem.variables)
        c = problem.outputs.index(profile.output)
        model_values = _predict(model, x)[:, c]
        known = problem.solution_values(x)
        solution = (np.full(len(x), np.nan) if known is None
                    else known[:, c].detach().cpu().numpy())
        axis = problem.variables.index(profile.along)
        published = dict(profile.published)
        for i, point in enumerate(x.tolist()):
            at = point[axis]
            rows.append({"profile": profile.label(problem.variables),
                         **dict(zip(problem.variables, point)),
                         "model": float(model_values[i]), "solution": float(solution[i]),
                         "published": next((v for k, v in published.items()
                                            if abs(k - at) < 1e-12), float("nan"))})
    return rows


def write_profiles(problem: Problem, model: torch.nn.Module, directory: Path,
                   title: str = "") -> None:
    """``profiles.csv`` and ``profiles.png`` in ``directory`` for the problem's profiles
    (nothing when it declares none)."""
    from .artifacts import atomic_write
    from .plotting import _save, new_figure

    if not problem.profiles:
        return
    rows = profile_table(problem, model)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(directory / "profiles.csv", lambda f: f.write(text.getvalue()))
    known = "exact" if problem.exact is not None else "reference"
    profiles = problem.profiles
    fig = new_figure(5.2 * len(profiles), 4.2)
    for i, profile in enumerate(profiles):
        label = profile.label(problem.variables)
        ax = fig.add_subplot(1, len(profiles), i + 1)
        mine = [r for r in rows if r["profile"] == label]
        s = [r[profile.along] for r in mine]
        ax.plot(s, [r["solution"] for r in mine], "k-", lw=2.5, alpha=0.35, label=known)
        ax.plot(s, [r["model"] for r in mine], "C0-", lw=1.2, label="model")
        if profile.published:
            ax.plot(*zip(*profile.published), "C3o", ms=4, mfc="none", label=profile.source)
        ax.set_xlabel(profile.along)
        ax.set_ylabel(profile.output)
        ax.set_title(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, wrap=True)
    _save(fig, directory / "profiles.png")
