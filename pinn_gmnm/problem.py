"""Problems: a PDE on a domain, its conditions and, when known, its solution.

A problem is declarative data; it knows nothing about networks or training. Built-in
problems live in the catalogue (``pinn_gmnm.problems``); users add their own with
:func:`register` or by pointing the CLI at ``path/to/file.py:function``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from ._types import Points
from .conditions import Condition
from .derivatives import Field
from .errors import GMNMError, unknown, user_location
from .geometry import Geometry
from .profiles import Profile
from .references import Reference
from .registry import Registry, first_line
from .unknowns import Unknown

Residual = Callable[[Field, Points], "Tensor | Sequence[Tensor]"]
"""``residual(u, x)``: the PDE's residual at interior points, shape (n,), or one such
tensor per equation for systems."""


def default_variables(dim: int, time: bool = False) -> tuple[str, ...]:
    """x; x, y; x, y, z; then x1 … xd for higher dimensions; with ``time``, the last of
    the ``dim`` coordinates is t."""
    if time:
        return default_variables(dim - 1) + ("t",)
    if dim <= 3:
        return ("x", "y", "z")[:dim]
    return tuple(f"x{i + 1}" for i in range(dim))


@dataclass(frozen=True)
class Problem:
    """A PDE problem.

    Attributes:
        geometry: the domain.
        residual: ``residual(u, x) -> (n,)`` (or a sequence of those for systems), zero
            where the PDE holds. ``u`` is a :class:`~pinn_gmnm.derivatives.Field`,
            ``x`` the interior points (n, d).
        conditions: boundary and other conditions.
        exact: the solution ``exact(x) -> (n,)`` or ``(n, k)``, when known.
        reference: a numerical solution (a :class:`~pinn_gmnm.references.Reference`, or
            a function of no arguments returning one, called once, when first needed) used for
            metrics and plots when there is no exact solution.
        unknowns: scalar coefficients learned with u (inverse problems), see
            :class:`~pinn_gmnm.unknowns.Unknown`.
        profiles: outputs along segments (:class:`~pinn_gmnm.profiles.Profile`) that a
            finished run writes to ``profiles.csv`` and ``profiles.png``, e.g. a flow's
            centreline velocities beside published values.
        variables: names of the coordinates (default x, y, z, or x1 … xd; on a
            space-time domain the last one is t).
        outputs: names of the unknown fields (default ``("u",)``).
        groups: named groups of outputs that form one quantity, e.g.
            ``{"velocity": ("u", "v")}``: the evaluation reports the relative L2 error of
            each group as a vector field (``rel_l2_velocity``), beside each output's.
        params: the named parameters the problem was built with (for configs and ``show``).
        name, description: set by the registry from the factory's name and docstring.
        linear: whether the residual and conditions are affine in the solution
            (``None`` when not declared).
        guess: where training starts, for a steady problem: a state ``guess(x) -> (n,)``
            or ``(n, k)``, or a number. The model's output layer starts as its
            least-squares fit at the interior points (the model's own start otherwise,
            u ≈ 0). A nonlinear problem may have several solutions, and Newton's method
            converges to one near its start: ε²u'' = u³ − u with u(±1) = ±1 has the
            layer tanh(x/(√2 ε)) and states that oscillate about u = 0 and nearly solve
            it; with ε = 0.05 Newton ends on those from 0 and from u = x (error 1.1 and
            1.0), and on the layer from ``guess=lambda x: torch.tanh(x[:, 0] / 0.1)``
            (7.8e-3: shifts of the layer nearly solve it too, so its place is loosely fixed).
    """

    geometry: Geometry
    residual: Residual
    conditions: Sequence[Condition] = ()
    exact: Callable[[Points], Tensor] | None = None
    variables: Sequence[str] | None = None
    outputs: Sequence[str] = ("u",)
    params: Mapping[str, object] = field(default_factory=dict)
    name: str = "custom"
    description: str = ""
    linear: bool | None = None
    reference: Reference | Callable[[], Reference] | None = None
    unknowns: Sequence[Unknown] = ()
    profiles: Sequence[Profile] = ()
    groups: Mapping[str, Sequence[str]] = field(default_factory=dict)
    guess: Callable[[Points], Tensor] | float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.geometry, Geometry):
            raise GMNMError(f"geometry must be a Geometry, got {type(self.geometry).__name__}")
        if not callable(self.residual):
            raise GMNMError("residual must be a function residual(u, x)")
        timed = self.geometry.time_dependent
        variables = tuple(self.variables or default_variables(self.geometry.dim, timed))
        if len(variables) != self.geometry.dim or len(set(variables)) != len(variables):
            raise GMNMError(
                f"variables {variables} do not name the {self.geometry.dim} coordinates "
                f"of {self.geometry!r} once each"
            )
        if timed and variables[-1] != "t":
            raise GMNMError(f"on a space-time domain the last variable is time, 't'; got {variables}")
        if self.guess is not None:
            if timed:
                raise GMNMError("guess is for steady problems: an evolution problem starts "
                                "from its initial conditions")
            if not callable(self.guess) and not isinstance(self.guess, (int, float)):
                raise GMNMError(f"guess must be a function guess(x) or a number, got {self.guess!r}")
        object.__setattr__(self, "unknowns", tuple(self.unknowns))
        names = [k.name for k in self.unknowns if isinstance(k, Unknown)]
        if len(names) != len(self.unknowns) or len(set(names)) != len(names):
            raise GMNMError(f"unknowns must be Unknown objects with distinct names, got {self.unknowns!r}")
        if self.reference is not None and not callable(self.reference):
            raise GMNMError("reference must be a Reference or a function returning one")
        if callable(self.reference) and not isinstance(self.reference, (Reference, _Once)):
            object.__setattr__(self, "reference", _Once(self.reference))
        object.__setattr__(self, "variables", variables)
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "conditions", tuple(self.conditions))
        object.__setattr__(self, "profiles", tuple(self.profiles))
        if not self.outputs:
            raise GMNMError("a problem needs at least one output")
        object.__setattr__(self, "groups", _checked_groups(self.groups, self.outputs))
        for profile in self.profiles:
            if not isinstance(profile, Profile):
                raise GMNMError(f"profiles must be Profile objects, got {profile!r}")
            profile.check(self.outputs, variables)
        for c in self.conditions:
            if not isinstance(c, Condition):
                raise GMNMError(f"conditions must be Condition objects, got {c!r}")
            if c.output is not None and c.output not in self.outputs:
                raise GMNMError(
                    f"{c.label}: unknown output '{c.output}'; outputs: {', '.join(self.outputs)}"
                )

    @property
    def dim(self) -> int:
        return self.geometry.dim

    @property
    def n_outputs(self) -> int:
        return len(self.outputs)

    @property
    def spatial(self) -> tuple[str, ...]:
        """The variables a Laplacian or gradient runs over (all but a time variable)."""
        return tuple(v for v in self.variables if v != "t")

    def field(self, model: torch.nn.Module, x: Points, *, closed_form: bool = True) -> Field:
        """The model's :class:`Field` at points ``x`` for this problem's variables."""
        return Field.of(model, x, self.variables, self.outputs, self.spatial,
                        closed_form=closed_form)

    def exact_values(self, x: Points) -> Tensor | None:
        """The exact solution at ``x`` as shape (n, k), or None when unknown.

        Checked like the residual: an exact solution that raises, or gives values of
        another shape than (n,) or (n, k) (k outputs) or another dtype than the points',
        is a GMNMError saying so (and where, in the user's code)."""
        if self.exact is None:
            return None
        try:
            v = self.exact(x)
        except Exception as exc:
            raise GMNMError(f"{self.name}: the exact solution raised {type(exc).__name__}: "
                            f"{exc}{user_location(exc)}") from exc
        if isinstance(v, Tensor) and v.dtype != x.dtype:
            raise GMNMError(f"{self.name}: exact solution has dtype {v.dtype}, expected {x.dtype} "
                            "(the points' dtype): compute it from x")
        v = torch.as_tensor(v, dtype=x.dtype, device=x.device)
        n, k = len(x), self.n_outputs
        allowed = [(n,), (n, 1)] if k == 1 else [(n, k)]
        if tuple(v.shape) not in allowed:
            raise GMNMError(
                f"{self.name}: exact solution has shape {tuple(v.shape)} for {n} points; expected "
                f"{' or '.join(map(str, allowed))}: one value per point and output "
                f"({', '.join(self.outputs)})"
            )
        return v.reshape(n, k)

    def reference_solution(self) -> Reference | None:
        """The numerical reference solution, or None. A reference function is called on
        the first request and its result kept: metrics and every plot ask for it, and
        each call would load it from the cache again (or solve again, without one)."""
        ref = self.reference
        if ref is None:
            return None
        if isinstance(ref, _Once):
            ref = ref(self.name)
        if ref.dim != self.dim or ref.n_outputs != self.n_outputs:
            raise GMNMError(
                f"{self.name}: the reference solution is {ref.dim}-D with {ref.n_outputs} value(s) "
                f"per point; the problem is {self.dim}-D with {self.n_outputs} output(s)")
        return ref

    def solution_values(self, x: Points) -> Tensor | None:
        """The solution at ``x`` as (n, k): exact when known, else the reference
        interpolated (NaN where it has no data), else None."""
        if self.exact is not None:
            return self.exact_values(x)
        ref = self.reference_solution()
        return None if ref is None else ref(x)

    def residuals(self, u: Field, x: Points, rows: int | None = None) -> list[Tensor]:
        """The residual as a list of (n,) tensors, one per equation, with shape checks.

        On a basis field (``rows`` = B, see :class:`~pinn_gmnm.derivatives.Field`) each
        tensor has shape (B, n) instead.
        """
        r = self.residual(u, x)
        parts = list(r) if isinstance(r, (list, tuple)) else [r]
        expected = (len(x),) if rows is None else (rows, len(x))
        out = []
        for i, p in enumerate(parts):
            if not isinstance(p, Tensor):
                raise GMNMError(f"{self.name}: residual must return tensors, got {type(p).__name__}")
            if rows is None and p.ndim == 2 and p.shape[1] == 1:
                p = p[:, 0]
            if p.shape != expected:
                which = f" (equation {i + 1})" if len(parts) > 1 else ""
                hint = ("one value per interior point" if rows is None else
                        "written with elementwise operations on (n,) tensors, a residual "
                        "evaluated on a basis field keeps its leading dimension")
                raise GMNMError(
                    f"{self.name}: residual{which} has shape {tuple(p.shape)}, expected "
                    f"{expected}: {hint}"
                )
            if p.dtype != x.dtype:
                raise GMNMError(
                    f"{self.name}: residual has dtype {p.dtype}, expected {x.dtype} (the points' dtype)"
                )
            out.append(p)
        return out


ProblemFactory = Callable[..., Problem]


def _checked_groups(groups: Mapping[str, Sequence[str]], outputs: tuple[str, ...]
                    ) -> dict[str, tuple[str, ...]]:
    """``groups`` with tuples of members, after checking each names two or more distinct
    outputs and no group is named like an output (their metrics would share a key)."""
    if not isinstance(groups, Mapping):
        raise GMNMError(f"groups must map a name to outputs, e.g. {{'velocity': ('u', 'v')}}; "
                        f"got {groups!r}")
    checked = {}
    for name, members in groups.items():
        members = (members,) if isinstance(members, str) else tuple(members)
        if not isinstance(name, str) or not name.isidentifier():
            raise GMNMError(f"group name {name!r} must be a word (it becomes the metric "
                            f"rel_l2_<name>)")
        if name in outputs:
            raise GMNMError(f"group '{name}' is named like an output; outputs: {', '.join(outputs)}")
        unknown = [m for m in members if m not in outputs]
        if unknown:
            raise GMNMError(f"group '{name}': unknown output(s) {', '.join(map(repr, unknown))}; "
                            f"outputs: {', '.join(outputs)}")
        if len(set(members)) != len(members) or len(members) < 2:
            raise GMNMError(f"group '{name}' must name two or more distinct outputs, got {members}")
        checked[name] = members
    return checked


class _Once:
    """A reference function called once, on first request, its result kept (the problem
    itself stays as it was built)."""

    def __init__(self, make: Callable[[], Reference]) -> None:
        self.make = make
        self.value: Reference | None = None

    def __call__(self, problem: str) -> Reference:
        if self.value is None:
            ref = self.make()
            if not isinstance(ref, Reference):
                raise GMNMError(f"{problem}: the reference function returned "
                                f"{type(ref).__name__}, not a Reference")
            self.value = ref
        return self.value


def _load_catalogue() -> None:
    import pinn_gmnm.problems  # noqa: F401  (registers the built-in problems)


PROBLEMS: Registry[ProblemFactory] = Registry("problem", _load_catalogue)


def register(name: str, *, group: str = "", replace: bool = False
             ) -> Callable[[ProblemFactory], ProblemFactory]:
    """Register a problem factory under ``name``.

    The factory's keyword arguments (with defaults) are the problem's parameters, set
    from the CLI with ``--set name=value``; its docstring's first line is the summary
    shown by ``gmnm-pde list``, and the whole docstring is the problem's description.
    """

    def decorate(factory: ProblemFactory) -> ProblemFactory:
        parameters(factory)  # fail now on factories whose parameters lack defaults
        PROBLEMS.add(name, factory, first_line(factory.__doc__), group=group, replace=replace)
        return factory

    return decorate


def parameters(factory: ProblemFactory) -> dict[str, object]:
    """The factory's parameters and their defaults."""
    out = {}
    for p in inspect.signature(factory).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is p.empty:
            raise GMNMError(
                f"problem factory {factory.__name__}: parameter '{p.name}' needs a default value"
            )
        out[p.name] = p.default
    return out


def _coerce(name: str, value: object, default: object) -> object:
    """Convert a ``--set`` string to the type of the parameter's default."""
    if not isinstance(value, str) or isinstance(default, str) or default is None:
        return value
    try:
        if isinstance(default, bool):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        return type(default)(value)
    except ValueError:
        raise GMNMError(
            f"parameter {name}={value!r} is not a valid {type(default).__name__}"
        ) from None


def build(factory: ProblemFactory, name: str, params: Mapping[str, object] | None = None) -> Problem:
    """Call a problem factory with checked parameters and label the result."""
    defaults = parameters(factory)
    params = dict(params or {})
    for key in params:
        if key not in defaults:
            raise unknown(f"parameter of problem '{name}'", key, defaults) if defaults else GMNMError(
                f"problem '{name}' has no parameters to set (got '{key}')"
            )
    resolved = {k: _coerce(k, params.get(k, v), v) for k, v in defaults.items()}
    try:
        problem = factory(**resolved)
    except Exception as exc:  # the user's factory: say where, not our stack
        what = f"{exc}" if isinstance(exc, GMNMError) else f"{type(exc).__name__}: {exc}"
        raise GMNMError(f"building problem '{name}' failed: {what}{user_location(exc)}") from exc
    if not isinstance(problem, Problem):
        raise GMNMError(f"problem factory for '{name}' returned {type(problem).__name__}, not a Problem")
    return dataclasses.replace(
        problem,
        name=name,
        params=resolved,
        description=problem.description or inspect.cleandoc(factory.__doc__ or ""),
    )


def problem_file(spec: str) -> Path | None:
    """The file of a ``path/to/file.py:function`` spec; None for a registered name."""
    path, colon, _ = spec.rpartition(":")
    return Path(path) if colon and path.endswith(".py") else None


def portable_spec(spec: str) -> tuple[str, str | None]:
    """What a run records to find its problem again from any folder: the spec with the
    file's path made absolute, and the SHA-256 of the file's content (None for a
    registered problem, or a file that is not there)."""
    path = problem_file(spec)
    if path is None or not path.is_file():
        return spec, None
    return f"{path.resolve()}:{spec.rpartition(':')[2]}", hashlib.sha256(path.read_bytes()).hexdigest()


def check_unchanged(spec: str, sha256: str | None) -> None:
    """A GMNMError when the problem file of ``spec`` no longer has the content whose
    SHA-256 a run recorded (None: nothing recorded, nothing to check)."""
    path = problem_file(spec)
    if sha256 is None or path is None or not path.is_file():
        return
    now = portable_spec(spec)[1]
    if now != sha256:
        raise GMNMError(
            f"problem file {path} has changed since the run (SHA-256 {sha256[:12]}… recorded, "
            f"{now[:12]}… now), so the run cannot be repeated or continued as it was; add "
            "--accept-changed-problem to use the file as it is now"
        )


def get_problem(name: str, **params: object) -> Problem:
    """A problem by name: a registered one, or ``path/to/file.py:function`` from a user file."""
    if problem_file(name) is not None:
        return build(load_factory(name), name, params)
    if name.endswith(".py"):
        raise GMNMError(f"'{name}' is a file: add the function that builds the problem, "
                        f"e.g. {name}:my_problem")
    return build(PROBLEMS.get(name), name, params)


def problem_parameters(name: str) -> dict[str, object]:
    """The parameters (and defaults) of the problem called ``name``."""
    if problem_file(name) is not None:
        return parameters(load_factory(name))
    return parameters(PROBLEMS.get(name))


TARGET_FACTORY = "_gmnm_fit_problem"
"""The attribute :func:`~pinn_gmnm.fitting.register_target` sets on a target function: the
factory of its fitting problem (so that ``file.py:function`` names the target's problem)."""


def load_factory(spec: str) -> ProblemFactory:
    """Import ``function`` from ``path/to/file.py:function`` and return it as a factory.

    The attribute may be a function returning a :class:`Problem`, a Problem itself, a
    function the file registered with :func:`~pinn_gmnm.fitting.register_target` (its
    fitting problem), or the name of a problem or target the file registered.
    """
    path_text, _, attr = spec.rpartition(":")
    path = Path(path_text)
    if not path.is_file():
        where = "" if path.is_absolute() else f" (looked in {Path.cwd()})"
        raise GMNMError(f"problem file not found: {path}{where}")
    # One import per file content in a process: the CLI asks for a file's parameters and
    # then its problem, and a second import would run the file's @register again.
    digest = hashlib.sha256(str(path.resolve()).encode() + b"\0" + path.read_bytes()).hexdigest()
    module_name = f"_gmnm_user_{digest[:24]}"
    module = sys.modules.get(module_name)
    if module is None:
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        assert loader_spec is not None and loader_spec.loader is not None
        module = importlib.util.module_from_spec(loader_spec)
        before = set(PROBLEMS.names())
        try:
            sys.modules[module_name] = module
            loader_spec.loader.exec_module(module)
            module.__dict__["_gmnm_registered"] = set(PROBLEMS.names()) - before
        except Exception as exc:  # report the user's file and line, not our stack
            sys.modules.pop(module_name, None)
            line = _user_line(exc, path)
            raise GMNMError(
                f"could not import {path}{line}: {type(exc).__name__}: {exc}"
            ) from exc
    registered = module.__dict__.get("_gmnm_registered", set())
    if not hasattr(module, attr):
        if attr in registered:  # a name the file registered (@register, @register_target)
            return PROBLEMS.get(attr)
        names = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        raise unknown(f"function in {path}", attr, [*names, *sorted(registered)])
    obj = getattr(module, attr)
    if isinstance(obj, Problem):
        return lambda: obj
    target = getattr(obj, TARGET_FACTORY, None)
    if target is not None:  # a fitting target f(x): its problem
        return target
    if not callable(obj):
        raise GMNMError(f"{spec} is neither a Problem nor a function returning one")
    return obj


def _user_line(exc: BaseException, path: Path) -> str:
    """`` line N`` for the deepest frame of the traceback that is in the user's file."""
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f" line {exc.lineno}"
    tb, line = exc.__traceback__, ""
    target = str(path.resolve())
    while tb is not None:
        if str(Path(tb.tb_frame.f_code.co_filename).resolve()) == target:
            line = f" line {tb.tb_lineno}"
        tb = tb.tb_next
    return line
