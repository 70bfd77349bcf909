"""``gmnm-pde``: list problems, solve them with GMNM or a baseline, write plots and tables."""

from __future__ import annotations

import functools
import math
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional, TypeVar

import typer

from pinn_gmnm.config import METHODS, RunConfig
from pinn_gmnm.errors import GMNMError

app = typer.Typer(
    name="gmnm-pde",
    help="Physics-informed PDE solving with Gaussian mixture modules (GMNM), "
    "with fair comparisons against MLP, PINN and KAN baselines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])
_state = {"debug": False}


def fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def user_errors(fn: F) -> F:
    """Turn library errors into one-line messages and a non-zero exit (tracebacks only
    with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except Exception as exc:
            if _state["debug"]:
                traceback.print_exc()
            if isinstance(exc, GMNMError):
                raise fail(str(exc)) from None
            raise fail(f"{type(exc).__name__}: {exc} (run with --debug for the traceback)", 1) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def main_options(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    _state["debug"] = debug


@app.command("list")
@user_errors
def list_command() -> None:
    """List the problems, models and training methods on offer."""
    from pinn_gmnm.models import MODELS
    from pinn_gmnm.problem import PROBLEMS

    typer.secho("Problems", bold=True)
    group = None
    for e in PROBLEMS:
        if e.group != group:
            group = e.group
            typer.echo(f"  [{group or 'other'}]")
        typer.echo(f"    {e.name:<16} {e.summary}")
    typer.secho("Models", bold=True)
    for e in MODELS:
        typer.echo(f"    {e.name:<16} {e.summary}")
    typer.secho("Methods (--method)", bold=True)
    for name, text in METHODS.items():
        typer.echo(f"    {name:<16} {text}")


@app.command()
@user_errors
def show(problem: str = typer.Argument(..., help="Problem name or path/to/file.py:function.")) -> None:
    """Print a problem's mathematics, parameters and defaults."""
    from pinn_gmnm.problem import get_problem, problem_parameters

    p = get_problem(problem)
    typer.secho(p.name, bold=True)
    typer.echo(p.description or "(no description)")
    typer.echo("")
    typer.echo(f"domain:      {p.geometry!r}")
    typer.echo(f"variables:   {', '.join(p.variables)}    outputs: {', '.join(p.outputs)}")
    conditions = [c.label if c.label == c.kind else f"{c.label} ({c.kind})" for c in p.conditions]
    typer.echo(f"conditions:  {', '.join(conditions) or 'none'}")
    solution = "exact" if p.exact is not None else (
        "numerical reference (computed on first use, cached)" if p.reference is not None else "none")
    typer.echo(f"solution:    {solution}    linear: {p.linear}")
    if p.unknowns:
        typer.echo("unknowns:    " + ", ".join(
            f"{k.name} (initial {float(k):g}" + (f", true {k.true:g})" if k.true is not None else ")")
            for k in p.unknowns))
    params = problem_parameters(problem)
    typer.echo("parameters:  " + (", ".join(f"{k}={v!r}" for k, v in params.items()) or "none"))


def parse_sets(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise GMNMError(f"--set expects name=value, got '{item}'")
        out[key.strip()] = value.strip()
    return out


def _model_options(model: str, given: dict[str, Any]) -> dict[str, Any]:
    """The model options the user gave, checked against what the model accepts."""
    from pinn_gmnm.models import model_options

    allowed = model_options(model)
    opts = {k: v for k, v in given.items() if v is not None}
    for key in opts:
        if key not in allowed:
            flag = "--" + key.replace("_", "-")
            raise GMNMError(
                f"{flag} does not apply to model '{model}'; its options: "
                + ", ".join("--" + k.replace("_", "-") for k in allowed)
            )
    return opts


@app.command()
@user_errors
def solve(
    problem: Optional[str] = typer.Argument(
        None, help="Problem name (see `gmnm-pde list`) or path/to/file.py:function."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="gmnm or mlp. [default: gmnm]"),
    components: Optional[int] = typer.Option(None, help="GMNM: number of Gaussians m. [default: 400]"),
    projections: Optional[int] = typer.Option(None, help="GMNM: projections k per Gaussian. [default: input dimension]"),
    width_factor: Optional[float] = typer.Option(None, help="GMNM: initial width / spacing of the means. [default: 4]"),
    width: Optional[int] = typer.Option(None, help="MLP: hidden units per layer. [default: 50]"),
    depth: Optional[int] = typer.Option(None, help="MLP: hidden layers. [default: 3]"),
    activation: Optional[str] = typer.Option(None, help="MLP: activation (tanh, sin, silu, gelu, softplus, relu). [default: tanh]"),
    method: Optional[str] = typer.Option(None, help="Training method: " + ", ".join(METHODS) + ". [default: auto]"),
    adam_steps: Optional[int] = typer.Option(None, help="adam-lbfgs: Adam steps. [default: 1000]"),
    lbfgs_steps: Optional[int] = typer.Option(None, help="adam-lbfgs: L-BFGS iterations. [default: 2000]"),
    varpro_steps: Optional[int] = typer.Option(None, help="varpro: L-BFGS iterations on the features. [default: 100]"),
    lr: Optional[float] = typer.Option(None, help="adam-lbfgs: initial Adam learning rate (decays 100x). [default: 0.01]"),
    points: Optional[int] = typer.Option(None, "--points", help="Interior collocation points. [default: 2000]"),
    boundary_points: Optional[int] = typer.Option(None, help="Boundary collocation points. [default: 400]"),
    sampler: Optional[str] = typer.Option(None, help="sobol, halton, lhs, uniform or grid. [default: sobol]"),
    dtype: Optional[str] = typer.Option(None, help="float64 or float32. [default: float64]"),
    seed: Optional[int] = typer.Option(None, help="Random seed (model initialisation and points). [default: 0]"),
    budget: Optional[float] = typer.Option(None, help="Wall-clock training budget in seconds."),
    device: Optional[str] = typer.Option(None, help="auto (a GPU when present), cpu, cuda or cuda:N. [default: auto]"),
    set_: list[str] = typer.Option([], "--set", help="Problem parameter, name=value (repeatable)."),
    reference: Optional[Path] = typer.Option(None, help="Reference solution file (.npz; .csv; text with %/# comments) for metrics and plots."),
    hard: Optional[bool] = typer.Option(None, "--hard/--soft", help="Enforce Dirichlet and initial conditions exactly (box domains). [default: soft]"),
    resample_every: Optional[int] = typer.Option(None, help="Adam: fresh collocation points every N steps. [default: off]"),
    refine_every: Optional[int] = typer.Option(None, help="Adam: add points where the residual is largest every N steps. [default: off]"),
    balance_every: Optional[int] = typer.Option(None, help="Adam: balance loss weights by gradient norms every N steps. [default: off]"),
    out: Path = typer.Option(Path("runs"), help="Folder for run directories."),
    config: Optional[Path] = typer.Option(None, help="Run settings from a JSON or TOML file (options given here override it)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train a surrogate for PROBLEM and write metrics, history, checkpoint and plots.

    Examples: `gmnm-pde solve poisson`, `gmnm-pde solve poisson --model mlp`,
    `gmnm-pde solve my_problems.py:heat_bar --set k=2`.
    """
    from pinn_gmnm.models import MODELS
    from pinn_gmnm.progress import RichProgress
    from pinn_gmnm.run import prepare, run
    from pinn_gmnm.sampling import SAMPLERS

    base = RunConfig.load(config).to_dict() if config is not None else RunConfig().to_dict()
    if problem is None and config is None:
        raise GMNMError("give a PROBLEM (see `gmnm-pde list`) or --config FILE")
    if model is not None:
        MODELS.entry(model)  # unknown model: a clear error now
        if model != base["model"]:
            base["model_options"] = {}
    if sampler is not None:
        SAMPLERS.entry(sampler)
    overrides = {
        "problem": problem, "model": model, "method": method, "adam_steps": adam_steps,
        "lbfgs_steps": lbfgs_steps, "varpro_steps": varpro_steps, "lr": lr, "interior": points,
        "boundary": boundary_points, "sampler": sampler, "dtype": dtype, "seed": seed,
        "budget": budget, "device": device, "hard": hard, "resample_every": resample_every,
        "refine_every": refine_every, "balance_every": balance_every,
        "reference": None if reference is None else str(reference),
    }
    data = {**base, **{k: v for k, v in overrides.items() if v is not None}}
    if any(v is not None for v in (method, adam_steps, lbfgs_steps, varpro_steps, lr)):
        data["stages"] = None  # the stages follow the method and step options given here
        if method is None and any(v is not None for v in (adam_steps, lbfgs_steps, lr)):
            data["method"] = "adam-lbfgs"
    if problem is not None and config is not None and problem != base["problem"]:
        data["params"] = {}
    data["params"] = {**data["params"], **parse_sets(set_)}
    data["model_options"] = {**data["model_options"], **_model_options(data["model"], {
        "components": components, "projections": projections, "width_factor": width_factor,
        "width": width, "depth": depth, "activation": activation})}
    cfg = RunConfig.from_dict(data)

    _, _, _, stages = prepare(cfg)  # fail fast on bad problems, models and stages
    label = f"{cfg.problem} · {cfg.model}"
    if quiet or not is_main_process():
        result = run(cfg, out=out)
    else:
        with RichProgress(stages, label) as bar:
            result = run(cfg, out=out, callbacks=[bar])
    if is_main_process():
        _summary(result)


def is_main_process() -> bool:
    """False on every torchrun rank but rank 0 (which alone prints and writes)."""
    return int(os.environ.get("RANK", "0")) == 0


def _fmt(v: float) -> str:
    return "n/a (no exact or reference solution)" if v is None or math.isnan(v) else f"{v:.3e}"


def _summary(result: Any) -> None:
    s, m = result.solution, result.solution.metrics
    c = result.config
    device = next(s.model.parameters()).device
    typer.secho(f"{s.problem.name} · {c.model} · {s.parameters} parameters · {result.method} · "
                f"{c.dtype} · {device}", bold=True)
    against = ""
    if s.problem.exact is None and s.problem.reference is not None:
        against = " (vs reference)"
    typer.echo(f"  relative L2    {_fmt(m['rel_l2'])}{against}")
    typer.echo(f"  max |error|    {_fmt(m['max_abs'])}{against}")
    typer.echo(f"  residual RMS   {_fmt(m['residual_rms'])}")
    for k in s.problem.unknowns:
        true = "" if k.true is None else (
            f" (true {k.true:g}, relative error {m[f'unknown_{k.name}_error']:.2e})")
        typer.echo(f"  unknown {k.name:<6} {m[f'unknown_{k.name}']:.6g}{true}")
    typer.echo(f"  time           {result.wall_time:.2f} s (training {s.train_time:.2f} s, {int(m['steps'])} steps)")
    if result.directory is not None:
        typer.echo(f"  artifacts      {result.directory}")


from pinn_gmnm.cli import compare as _compare  # noqa: E402  (the compare and fit commands)

_compare.register(app, user_errors)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
