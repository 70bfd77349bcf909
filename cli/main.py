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
        except KeyboardInterrupt as exc:
            raise fail(_with_notes("interrupted", exc), 130) from None
        except Exception as exc:
            if _state["debug"]:
                traceback.print_exc()
            if isinstance(exc, GMNMError):
                raise fail(_with_notes(str(exc), exc)) from None
            raise fail(_with_notes(f"{type(exc).__name__}: {exc} (run with --debug for the "
                                   "traceback)", exc), 1) from None

    return wrapper  # type: ignore[return-value]


def _with_notes(message: str, exc: BaseException) -> str:
    """The message with the notes the library added to the exception (e.g. where the
    last good state of a failed run was saved)."""
    return "; ".join([message, *getattr(exc, "__notes__", [])])


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
    components: Optional[int] = typer.Option(None, help="GMNM: number of Gaussians m. [default: 64 in 1D, 400 in 2D, 1000 in 3D+]"),
    projections: Optional[int] = typer.Option(None, help="GMNM: projections k per Gaussian. [default: input dimension]"),
    width_factor: Optional[float] = typer.Option(None, help="GMNM: initial width / spacing of the means. [default: 4]"),
    width: Optional[int] = typer.Option(None, help="MLP: hidden units per layer. [default: 50]"),
    depth: Optional[int] = typer.Option(None, help="MLP: hidden layers. [default: 3]"),
    activation: Optional[str] = typer.Option(None, help="MLP: activation (tanh, sin, silu, gelu, softplus, relu). [default: tanh]"),
    method: Optional[str] = typer.Option(None, help="Training method: " + ", ".join(METHODS) + ". [default: auto]"),
    adam_steps: Optional[int] = typer.Option(None, help="adam-lbfgs: Adam steps. [default: 1000]"),
    lbfgs_steps: Optional[int] = typer.Option(None, help="adam-lbfgs: L-BFGS iterations. [default: 2000]"),
    varpro_steps: Optional[int] = typer.Option(None, help="varpro: L-BFGS iterations on the features. [default: 100]"),
    gn_steps: Optional[int] = typer.Option(None, help="gauss-newton: iterations per stage. [default: 100]"),
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
    resume: Optional[Path] = typer.Option(None, help="Continue the stopped run in this run directory (with its saved settings; --budget may be raised)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train a surrogate for PROBLEM and write metrics, history, checkpoint and plots.

    Examples: `gmnm-pde solve poisson`, `gmnm-pde solve poisson --model mlp`,
    `gmnm-pde solve my_problems.py:heat_bar --set k=2`, `gmnm-pde solve --resume RUN_DIR`.

    Ctrl-C stops training at the next step and saves what is needed to resume it.
    Exit codes: 0 done, 1 unexpected error, 2 bad input, 3 training diverged,
    130 interrupted.
    """
    from pinn_gmnm.models import MODELS
    from pinn_gmnm.progress import RichProgress
    from pinn_gmnm.run import prepare, run
    from pinn_gmnm.sampling import SAMPLERS

    if resume is not None:
        given = {"PROBLEM": problem, "--model": model, "--components": components,
                 "--projections": projections, "--width-factor": width_factor, "--width": width,
                 "--depth": depth, "--activation": activation, "--method": method,
                 "--adam-steps": adam_steps, "--lbfgs-steps": lbfgs_steps,
                 "--varpro-steps": varpro_steps, "--gn-steps": gn_steps, "--lr": lr,
                 "--points": points, "--boundary-points": boundary_points, "--sampler": sampler,
                 "--dtype": dtype, "--seed": seed, "--device": device, "--config": config,
                 "--set": set_ or None, "--reference": reference, "--hard/--soft": hard,
                 "--resample-every": resample_every, "--refine-every": refine_every,
                 "--balance-every": balance_every}
        extra = [k for k, v in given.items() if v is not None]
        if extra:
            raise GMNMError(
                f"--resume continues a run with its saved settings; {', '.join(extra)} cannot be "
                "changed (only --budget and --quiet go with --resume)"
            )
        _resume(resume, budget, quiet)
        return

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
        "lbfgs_steps": lbfgs_steps, "varpro_steps": varpro_steps, "gn_steps": gn_steps, "lr": lr,
        "interior": points,
        "boundary": boundary_points, "sampler": sampler, "dtype": dtype, "seed": seed,
        "budget": budget, "device": device, "hard": hard, "resample_every": resample_every,
        "refine_every": refine_every, "balance_every": balance_every,
        "reference": None if reference is None else str(reference),
    }
    data = {**base, **{k: v for k, v in overrides.items() if v is not None}}
    if any(v is not None for v in (method, adam_steps, lbfgs_steps, varpro_steps, gn_steps, lr)):
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
    _finish(result, is_main_process())


def is_main_process() -> bool:
    """False on every torchrun rank but rank 0 (which alone prints and writes)."""
    return int(os.environ.get("RANK", "0")) == 0


def _resume(directory: Path, budget: Optional[float], quiet: bool) -> None:
    from pinn_gmnm.config import RunConfig
    from pinn_gmnm.progress import RichProgress
    from pinn_gmnm.run import load_run, prepare, resume

    cfg = RunConfig.from_dict(load_run(directory)["config"])
    if quiet or not is_main_process():
        result = resume(directory, budget=budget)
    else:
        _, _, _, stages = prepare(cfg)
        with RichProgress(stages, f"{cfg.problem} · {cfg.model} (resumed)") as bar:
            result = resume(directory, budget=budget, callbacks=[bar])
    _finish(result, is_main_process())


def _finish(result: Any, show: bool = True) -> None:
    """The summary, then what the run's status means and the exit code it gets (every
    rank of a data-parallel run exits alike; only rank 0, ``show``, prints)."""
    if not show:
        code = {"interrupted": 130, "diverged": 3}.get(result.status)
        if code:
            raise typer.Exit(code)
        return
    _summary(result)
    s, d = result.solution, result.directory
    diverged = [e for e in s.events if e["event"] == "diverged"]
    if result.status == "interrupted":
        where = f"; to continue: gmnm-pde solve --resume {d}" if d is not None else ""
        raise fail(f"interrupted by {result.signal or 'a stop request'} at step "
                   f"{int(s.metrics['steps'])}{where}", 130)
    if result.status == "diverged":
        last = diverged[-1]
        raise fail(
            f"training diverged in stage {last['stage']} at step {last['step']} ({last['reason']}); "
            f"{len(diverged) - 1} roll-back(s) with a lower learning rate did not help. The run "
            f"stopped at the last good state (step {int(s.metrics['steps'])})"
            + (f", saved in {d}" if d is not None else "")
            + "; try a smaller --lr", 3)
    if diverged:
        typer.secho(f"  note           training diverged {len(diverged)} time(s) and recovered: "
                    f"{diverged[-1]['action']} (see events in metrics.json)", fg=typer.colors.YELLOW)
    if result.status == "out-of-budget":
        more = f"gmnm-pde solve --resume {d} --budget SECONDS" if d is not None else "a larger budget"
        typer.echo(f"  budget         spent before training finished; to continue: {more}")


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

from pinn_gmnm.cli import predict as _predict  # noqa: E402  (the predict command)

_predict.register(app, user_errors)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
