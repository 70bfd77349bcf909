"""Models: the GMNM surrogate and the baselines, and a registry to build them by name.

Each registered model is a :class:`ModelSpec`: its class (imported when first built),
its options with their defaults and help, and which option scales it for
parameter-matched comparisons. The command line derives its model options from these
specs, so the registry imports no torch; the model classes are loaded on first use.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import GMNMError
from ..registry import Registry

if TYPE_CHECKING:
    from torch import nn

    from .base import Bounds

__all__ = [
    "GMNM", "GMNMLayer", "GMNMNet", "KAN", "KANLayer", "MLP", "MODELS", "ModelOption", "ModelSpec",
    "Normalize", "PINN", "SearchParam", "Surrogate", "build_model", "count_parameters", "model_options",
]


@dataclass(frozen=True)
class ModelOption:
    """One keyword option of a model: its default (None: chosen by the model, as
    ``help`` says), type and a help line."""

    name: str
    default: Any
    type: type
    help: str


@dataclass(frozen=True)
class SearchParam:
    """One hyper-parameter ``gmnm-pde tune`` searches: a model option, or the run
    setting ``lr``. Numbers range over [low, high] (``log``: on a log scale; ``type``
    int or float); otherwise one of ``choices``."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    type: type = float
    choices: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if not self.choices and (self.low is None or self.high is None or self.low >= self.high):
            raise GMNMError(f"search parameter '{self.name}' needs low < high or choices")


_LR = SearchParam("lr", 1e-4, 1e-1, log=True)
"""The Adam learning rate, searched for every model that follows the run's."""


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: ``target`` (a class, or ``module:Class`` relative to this
    package, imported on first use) is called as
    ``Class(in_features, out_features, bounds=..., **options)``.

    ``size_option`` scales the model for parameter-matched comparisons; ``fine_size_option``
    fills the gaps when the size option alone jumps past the target (small KANs)."""

    target: str | type
    options: tuple[ModelOption, ...]
    size_option: str | None = None
    fine_size_option: str | None = None
    search: tuple[SearchParam, ...] = ()
    """What ``gmnm-pde tune`` searches for this model (one source: tests check that each
    name is one of its options or a run setting)."""
    fits_collocation: bool = False
    """Whether the constructor takes ``equations`` (the number of collocation equations
    the model will be trained on), ``conditions`` (whether the problem has boundary
    or initial conditions) and ``isotropic`` (whether its axes share a unit) to lay itself
    out (GMNM: its default size, margin and proportions)."""

    def load(self) -> type:
        if not isinstance(self.target, str):
            return self.target
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module, __name__), name)

    @property
    def defaults(self) -> dict[str, Any]:
        return {o.name: o.default for o in self.options}


_HIDDEN_WIDTH = ModelOption("width", 50, int, "hidden units per layer")
_HIDDEN_DEPTH = ModelOption("depth", 3, int, "hidden layers")

MODELS: Registry[ModelSpec] = Registry("model")
MODELS.add("gmnm", ModelSpec(".gmnm:GMNM", (
    ModelOption("components", None, int,
                "number of Gaussians m (default: sized to the collocation points; with the "
                "default points 64 in 1D, 1024 in 2D, 1000 in 3D, 625 in 4D)"),
    ModelOption("projections", None, int, "projections k per Gaussian (default: input dimension)"),
    ModelOption("width_factor", 4.0, float, "initial width / spacing of the means"),
    ModelOption("parametrisation", "plain", str,
                "projections W_i learned entry by entry (plain) or as log-scales times unit "
                "directions (scaled)"),
    ModelOption("isotropic", None, bool,
                "lay the Gaussians out round in the problem's own units, not in coordinates "
                "scaled to [-1, 1] on every axis (default: yes; with a time variable, round "
                "in space, as many along time as along a mean axis of space, and a march's "
                "slabs lay themselves out)"),
), size_option="components", search=(
    _LR, SearchParam("components", 16, 1024, log=True, type=int),
    SearchParam("width_factor", 0.5, 8.0, log=True),
    SearchParam("parametrisation", choices=("plain", "scaled")),
), fits_collocation=True), "Gaussian mixture module: Σ π_i exp(−½‖W_i(x−μ_i)‖²) + b")
MODELS.add("gmnm-net", ModelSpec(".gmnm_net:GMNMNet", (
    ModelOption("width", 16, int, "hidden units per layer"),
    ModelOption("depth", 2, int, "hidden layers"),
    ModelOption("components", 16, int, "number of Gaussians m (GMNM-NET: per hidden GMNM layer)"),
    ModelOption("projections", 2, int, "projections k per Gaussian"),
    ModelOption("width_factor", 1.0, float, "initial width / spacing of the means"),
), size_option="width", search=(
    _LR, SearchParam("width", 4, 64, log=True, type=int), SearchParam("depth", 1, 4, type=int),
    SearchParam("components", 4, 64, log=True, type=int),
    SearchParam("projections", 1, 4, type=int),
)), "network with GMNM layers as the nonlinearity between linear maps")
MODELS.add("mlp", ModelSpec(".mlp:MLP", (
    _HIDDEN_WIDTH, _HIDDEN_DEPTH,
    ModelOption("activation", "tanh", str, "activation: tanh, sin, silu, gelu, softplus or relu"),
), size_option="width", search=(
    _LR, SearchParam("width", 8, 128, log=True, type=int), SearchParam("depth", 1, 6, type=int),
    SearchParam("activation", choices=("tanh", "sin", "silu")),
)), "tanh multilayer perceptron, trained with the same settings as GMNM")
MODELS.add("pinn", ModelSpec(".pinn:PINN", (_HIDDEN_WIDTH, _HIDDEN_DEPTH), size_option="width",
                             search=(SearchParam("width", 8, 128, log=True, type=int),
                                     SearchParam("depth", 1, 6, type=int))),
           "classic PINN (DeepXDE-style): tanh MLP, always Adam (lr 1e-3) then L-BFGS")
MODELS.add("kan", ModelSpec(".kan:KAN", (
    ModelOption("width", 15, int, "hidden units per layer"),
    ModelOption("depth", 2, int, "hidden layers"),
    ModelOption("grid", 5, int, "spline grid intervals"),
    ModelOption("order", 3, int, "spline order"),
    ModelOption("grid_updates", True, bool, "move the knots to the data during the first Adam steps"),
), size_option="width", fine_size_option="grid", search=(
    _LR, SearchParam("width", 4, 32, log=True, type=int), SearchParam("depth", 1, 3, type=int),
    SearchParam("grid", 3, 20, type=int),
)),
    "B-spline Kolmogorov–Arnold network (cubic splines, pykan-style grid updates)")

MODELS.add("fem", ModelSpec("..fem.model:FEM", (
    ModelOption("fem_order", 2, int, "Lagrange element order, 1 or 2 (a flow's velocity: 2)"),
    ModelOption("fem_size", 0.05, float, "largest triangle side of the gmsh mesh"),
), search=(SearchParam("fem_order", choices=(1, 2)),
           SearchParam("fem_size", 0.01, 0.2, log=True))), "finite elements (scikit-fem on a gmsh mesh; the fem extra): 2-D linear elliptic "
    "problems, one sparse solve, parabolic ones (Crank-Nicolson) and steady flows "
    "(Taylor-Hood, Newton)")


def model_options(name: str) -> dict[str, Any]:
    """The options model ``name`` accepts, with their defaults."""
    return MODELS.get(name).defaults


def build_model(name: str, in_features: int, out_features: int, *, bounds: Bounds,
                equations: int | None = None, conditions: bool | None = None,
                isotropic: bool | None = None, time_axis: bool | None = None,
                **options: Any) -> nn.Module:
    """Build model ``name`` for inputs in the box ``bounds``; unknown options are errors.
    ``equations`` (the number of collocation equations the model will be trained on),
    ``conditions`` (whether the problem has boundary or initial conditions),
    ``isotropic`` (whether its layout is round in the problem's units) and ``time_axis``
    (whether the last axis is time, which shares no unit with space) go to models that lay
    themselves out by them (``ModelSpec.fits_collocation``) when given."""
    spec = MODELS.get(name)
    for key in options:
        if key not in spec.defaults:
            raise GMNMError(
                f"option '{key}' does not apply to model '{name}'; its options: "
                f"{', '.join(spec.defaults)}"
            )
    given = {k: v for k, v in options.items() if v is not None}
    if spec.fits_collocation:
        given.update({k: v for k, v in (("equations", equations), ("conditions", conditions),
                                        ("isotropic", isotropic), ("time_axis", time_axis))
                      if v is not None})
    return spec.load()(in_features, out_features, bounds=bounds, **{**spec.defaults, **given})


_LAZY = {"GMNM": ".gmnm", "GMNMLayer": ".gmnm", "GMNMNet": ".gmnm_net", "KAN": ".kan", "KANLayer": ".kan",
         "MLP": ".mlp", "PINN": ".pinn", "Normalize": ".base", "count_parameters": ".base",
         "Surrogate": ".contract"}


def __getattr__(name: str) -> Any:
    """The model classes, imported (with torch) on first use."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
