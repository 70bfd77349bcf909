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
from .methods import METHODS, Steps, check_solver_name

_STEPS = Steps()


def _option(default: Any, help: str, *, flag: str | tuple[str, ...] | None = None) -> Any:
    """A RunConfig field that ``gmnm-pde solve`` offers as ``--flag`` (default: the
    field's name with dashes; a tuple adds short forms) with this help; the CLI derives
    the option from it."""
    return field(default=default, metadata={"help": help, "flag": flag})


@dataclass
class RunConfig:
    """One run: problem, model, training and sampling settings.

    This class is the single source of the run settings' defaults: ``gmnm-pde solve``
    derives its options (flags, help, defaults) from the fields declared with a help
    line, and the step counts take theirs from :class:`~pinn_gmnm.methods.Steps`. A step
    count of None (``null`` in a config file) means *until the budget* for the
    open-ended stages (L-BFGS, variable projection, Gauss–Newton).

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
    model: str = _option("gmnm", "Model: see `gmnm-pde list`.", flag=("--model", "-m"))
    model_options: dict[str, Any] = field(default_factory=dict)
    method: str = _option("auto", "Training method (see `gmnm-pde list`).")
    stages: list[dict[str, Any]] | None = None
    adam_steps: int = _option(_STEPS.adam_steps, "adam-lbfgs: Adam steps.")
    lbfgs_steps: int | None = _option(_STEPS.lbfgs_steps, "adam-lbfgs: L-BFGS iterations.")
    varpro_steps: int | None = _option(_STEPS.varpro_steps,
                                       "varpro: L-BFGS iterations on the features.")
    gn_steps: int | None = _option(_STEPS.gn_steps, "gauss-newton: iterations per stage.")
    lr: float = _option(_STEPS.lr, "adam-lbfgs: initial Adam learning rate (decays 100x).")
    solver: str = _option(
        _STEPS.solver, "lstsq, varpro: how least squares solves the output layer: auto (dense "
        "when it fits in half the memory, else streamed), dense, streamed (row blocks: memory "
        "O(P^2)) or sparse (GMNM: truncated Gaussians, LSMR). With method auto a named solver "
        "picks lstsq instead of grow.")
    interior: int = _option(2000, "Interior collocation points (per time slab; a slab of "
                            "the default nonlinear march draws at least 4 rows per Gaussian).",
                            flag="--points")
    boundary: int = _option(400, "Boundary collocation points.", flag="--boundary-points")
    slabs: int | None = _option(
        None, "Time marching: solve a time-dependent problem in N time slabs, one after "
        "another, each by the run's method (default for a GMNM: one space-time block when its "
        "first solve solves it (Newton on a nonlinear problem, least squares and a held-out "
        "check on a linear one), else 8 slabs, each halved while it is left unsolved and "
        "time allows; other models: one block).")
    sampler: str = _option("sobol", "sobol, halton, lhs, uniform or grid.")
    dtype: str = _option("float64", "float64 or float32.")
    seed: int = _option(0, "Random seed (model initialisation and points).")
    budget: float | None = _option(None, "Wall-clock training budget in seconds.")
    device: str = _option("auto", "auto (a GPU when present), cpu, cuda or cuda:N.")
    weights: dict[str, float] = field(default_factory=dict)
    eval_every: int = _option(50, "Steps between error evaluations in the history.")
    reference: str | None = _option(
        None, "Reference solution file (.npz; .csv; text with %/# comments; a mesh with a point "
              "field: .vtu, .vtk, .msh) for metrics and plots.")
    hard: bool = _option(False, "Enforce Dirichlet and initial conditions exactly (box domains).",
                         flag="--hard/--soft")
    resample_every: int = _option(0, "Adam: fresh collocation points every N steps (0: off).")
    refine_every: int = _option(
        0, "Adam: add points where the residual is largest every N steps (0: off).")
    balance_every: int = _option(
        0, "Adam: balance loss weights by gradient norms every N steps (0: off).")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        check_types(self)
        METHODS.entry(self.method)  # an unknown method: the standard error
        if self.dtype not in ("float32", "float64"):
            raise GMNMError(f"unknown dtype '{self.dtype}'; known: float32, float64")
        for name, label in (("interior", "interior points (--points)"),
                            ("boundary", "boundary points (--boundary-points)"),
                            ("eval_every", "eval_every")):
            require_positive(label, getattr(self, name), integer=True)
        for name in ("adam_steps", "lbfgs_steps", "varpro_steps", "gn_steps", "resample_every",
                     "refine_every", "balance_every"):
            v = getattr(self, name)
            if v is None and name in Steps.OPEN_ENDED:
                if self.budget is None:
                    raise GMNMError(f"{name.replace('_', ' ')} is None (until the budget), but "
                                    "no budget is set; give a budget or a step count")
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise GMNMError(f"{name.replace('_', ' ')} must be a whole number >= 0, got {v!r}")
        require_positive("learning rate", self.lr)
        check_solver_name(self.solver)
        if self.slabs is not None:
            require_positive("slabs", self.slabs, integer=True)
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
