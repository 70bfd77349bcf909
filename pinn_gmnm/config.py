"""Run configuration: everything needed to rerun a run exactly, as plain data.

A :class:`RunConfig` is what ``gmnm-pde solve`` builds from its options and writes to
``config.json`` in the run directory; ``gmnm-pde solve --config run/config.json`` runs it
again. Strings (problem, model, sampler, stage types) become objects in :mod:`.run`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import GMNMError, did_you_mean, require_positive

METHODS = {
    "auto": "varpro for linear problems with a linear-head model, else gauss-newton for models of up to "
            "8000 parameters, else adam-lbfgs",
    "lstsq": "solve the linear output layer by least squares once (linear problems)",
    "varpro": "least squares, then L-BFGS on the features with the output layer re-solved at every step",
    "gauss-newton": "Levenberg-Marquardt on the linear output layer (Newton's method on the collocation "
                    "equations), then on all parameters; any problem, models of up to 8000 parameters",
    "adam-lbfgs": "Adam with an exponentially decaying learning rate, then L-BFGS (the classic PINN recipe)",
    "custom": "the explicit list of stages given in a config file's `stages`",
}


UNTIL_BUDGET = 1_000_000_000
"""A step count that stands for "until the budget runs out": what ``compare`` and ``fit``
give the open-ended stages (L-BFGS, variable projection, Gauss–Newton) when a wall-clock
budget is set and their steps are not, so every run may use all of its budget and stops
sooner only by its own stopping rule (convergence, stalled progress)."""


@dataclass
class RunConfig:
    """One run: problem, model, training and sampling settings.

    ``stages`` is the explicit list of training stages (``[{"type": "adam", ...}, ...]``);
    when None it is derived from ``method`` and the step options when the run starts, and
    the run directory's config records the list that was used.

    ``problem_sha256`` is the SHA-256 of the problem's file when the problem is
    ``path/to/file.py:function`` (a run records it, with the path made absolute); a run
    repeated or continued from this config refuses a file whose content changed since.

    ``reference`` is a file with a reference solution that replaces the problem's own
    for metrics and plots; ``hard`` makes Dirichlet and initial conditions hold exactly
    (boxes); ``resample_every``, ``refine_every`` and ``balance_every`` (0: off) turn on
    resampling, residual-based refinement and gradient-norm loss balancing during Adam.
    """

    problem: str = "poisson"
    problem_sha256: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    model: str = "gmnm"
    model_options: dict[str, Any] = field(default_factory=dict)
    method: str = "auto"
    stages: list[dict[str, Any]] | None = None
    adam_steps: int = 1000
    lbfgs_steps: int = 2000
    varpro_steps: int = 100
    gn_steps: int = 100
    lr: float = 1e-2
    interior: int = 2000
    boundary: int = 400
    sampler: str = "sobol"
    dtype: str = "float64"
    seed: int = 0
    budget: float | None = None
    device: str = "auto"
    weights: dict[str, float] = field(default_factory=dict)
    eval_every: int = 50
    reference: str | None = None
    hard: bool = False
    resample_every: int = 0
    refine_every: int = 0
    balance_every: int = 0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        check_types(self)
        if self.method not in METHODS:
            raise GMNMError(
                f"unknown method '{self.method}'; known: {', '.join(METHODS)}"
                f"{did_you_mean(self.method, METHODS)}"
            )
        if self.dtype not in ("float32", "float64"):
            raise GMNMError(f"unknown dtype '{self.dtype}'; known: float32, float64")
        for name, label in (("interior", "interior points (--points)"),
                            ("boundary", "boundary points (--boundary-points)"),
                            ("eval_every", "eval_every")):
            require_positive(label, getattr(self, name), integer=True)
        for name in ("adam_steps", "lbfgs_steps", "varpro_steps", "gn_steps", "resample_every",
                     "refine_every", "balance_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise GMNMError(f"{name.replace('_', ' ')} must be a whole number >= 0, got {v!r}")
        require_positive("learning rate", self.lr)
        if self.budget is not None:
            require_positive("budget (seconds)", self.budget)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2**32:
            raise GMNMError(f"seed must be a whole number from 0 to 2**32 - 1, got {self.seed!r}")
        for term, w in self.weights.items():
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 <= w < math.inf:
                raise GMNMError(f"loss weight '{term}' must be a finite number >= 0, got {w!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        names = [f.name for f in dataclasses.fields(cls)]
        for key in data:
            if key not in names:
                raise GMNMError(
                    f"unknown config key '{key}'; known: {', '.join(names)}{did_you_mean(key, names)}"
                )
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        """Read a config from a ``.json`` or ``.toml`` file."""
        path = Path(path)
        if not path.is_file():
            raise GMNMError(f"config file not found: {path}")
        text = path.read_text()
        try:
            data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
            raise GMNMError(f"could not read config {path}: {exc}") from None
        if not isinstance(data, dict):
            raise GMNMError(f"config {path} must hold a table of settings")
        data.pop("version", None)
        return cls.from_dict(data)


def check_types(config: RunConfig) -> None:
    """Every field of ``config`` holds a value of its annotated type (a JSON or TOML file
    can hold anything), or a GMNMError naming the key, the value and the type expected."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value, hint = getattr(config, f.name), hints[f.name]
        if not _conforms(value, hint):
            quotes = (" (write it without quotes)" if isinstance(value, str)
                      and _conforms(_number(value), hint) else "")
            raise GMNMError(
                f"config key '{f.name}' must be {_type_name(hint)}, got {json.dumps(value, default=repr)} "
                f"({type(value).__name__}){quotes}"
            )


def _conforms(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of type ``hint`` (a class, ``X | None``, ``dict[K, V]``,
    ``list[T]`` or ``Any``); booleans are not numbers and whole numbers are floats."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in args)
    if origin is dict:
        return isinstance(value, dict) and all(
            _conforms(k, args[0]) and _conforms(v, args[1]) for k, v in value.items())
    if origin is list:
        return isinstance(value, list) and all(_conforms(v, args[0]) for v in value)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    """``float``, ``dict[str, float]``, ``float or null`` (null: JSON's None)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in args)
    if args:
        return f"{typing.get_origin(hint).__name__}[{', '.join(_type_name(a) for a in args)}]"
    return "Any" if hint is Any else hint.__name__


def _number(text: str) -> float | None:
    """``text`` as a number (an int when whole), or None when it is not one."""
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value
