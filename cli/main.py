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

from pinn_gmnm.cli.options import config_fields, model_option_names, solve_parameters, with_parameters
from pinn_gmnm.cli.reporting import OneLineGroup
from pinn_gmnm.config import RunConfig
from pinn_gmnm.errors import GMNMError

app = typer.Typer(
    name="gmnm-pde",
    help="Physics-informed PDE solving with Gaussian mixture modules (GMNM), "
    "with fair comparisons against MLP, PINN and KAN baselines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=OneLineGroup,  # one-line parse errors and warnings
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
    from pinn_gmnm.methods import METHODS
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
    for e in METHODS:
        typer.echo(f"    {e.name:<16} {e.summary}")


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
    typer.echo(f"variables:   {', '.join(p.variables)}    outputs: {', '.join(p.outputs)}"
               + "".join(f"    {g}: ({', '.join(ms)})" for g, ms in p.groups.items()))
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


RESUME_OPTIONS = ("resume", "budget", "quiet", "accept_changed_problem")
"""What may be given with --resume: a stopped run continues with its saved settings."""


def _given(ctx: typer.Context) -> dict[str, str]:
    """The parameters the user gave on the command line (not left at their defaults):
    parameter name → how it is written (``--points``, ``--hard/--soft``, ``PROBLEM``)."""
    def given(name: str) -> bool:
        source = ctx.get_parameter_source(name)  # Click's ParameterSource, by name
        return source is not None and source.name != "DEFAULT"

    return {p.name: "/".join(p.opts + p.secondary_opts) if p.opts[0].startswith("-")
            else p.name.upper()
            for p in ctx.command.params if given(p.name)}


def solve(
    ctx: typer.Context,
    problem: Optional[str] = typer.Argument(
        None, help="Problem name (see `gmnm-pde list`) or path/to/file.py:function."),
    set_: list[str] = typer.Option([], "--set", help="Problem parameter, name=value (repeatable)."),
    out: Path = typer.Option(Path("runs"), help="Folder for run directories."),
    config: Optional[Path] = typer.Option(None, help="Run settings from a JSON or TOML file (options given here override it)."),
    resume: Optional[Path] = typer.Option(None, help="Continue the stopped run in this run directory (with its saved settings; --budget may be raised)."),
    accept_changed_problem: bool = typer.Option(False, "--accept-changed-problem", help="With --config or --resume: use the problem file even though it changed since the run."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    **options: Any,
) -> None:
    """Train a surrogate for PROBLEM and write metrics, history, checkpoint and plots.

    Examples: `gmnm-pde solve poisson`, `gmnm-pde solve poisson --model mlp`,
    `gmnm-pde solve my_problems.py:heat_bar --set k=2`, `gmnm-pde solve --resume RUN_DIR`.

    Ctrl-C stops training at the next step and saves what is needed to resume it.
    Exit codes: 0 done, 1 unexpected error, 2 bad input, 3 training diverged,
    4 a metric is not finite, 130 interrupted.
    """
    from pinn_gmnm.artifacts import check_out_folder
    from pinn_gmnm.methods import AdamLBFGSMethod, Steps
    from pinn_gmnm.models import MODELS
    from pinn_gmnm.progress import RichProgress
    from pinn_gmnm.run import prepare, run
    from pinn_gmnm.sampling import SAMPLERS

    if resume is not None:
        extra = [shown for name, shown in _given(ctx).items() if name not in RESUME_OPTIONS]
        if extra:
            raise GMNMError(
                f"--resume continues a run with its saved settings; {', '.join(extra)} cannot be "
                "changed (only --budget, --quiet and --accept-changed-problem go with --resume)"
            )
        _resume(resume, options["budget"], quiet, accept_changed_problem)
        return

    base = RunConfig.load(config).to_dict() if config is not None else RunConfig().to_dict()
    if problem is None and config is None:
        raise GMNMError("give a PROBLEM (see `gmnm-pde list`) or --config FILE")
    model = options["model"]
    if model is not None:
        MODELS.entry(model)  # unknown model: a clear error now
        if model != base["model"]:
            base["model_options"] = {}
    if options["sampler"] is not None:
        SAMPLERS.entry(options["sampler"])
    settings = {f.name: options[f.name] for f in config_fields()}
    if settings["reference"] is not None:
        settings["reference"] = str(settings["reference"])
    data = {**base, "problem": problem or base["problem"],
            **{k: v for k, v in settings.items() if v is not None}}
    steps_given = {k for k in (*Steps.OPEN_ENDED, "adam_steps", "lr") if settings[k] is not None}
    if settings["method"] is not None or steps_given:
        data["stages"] = None  # the stages follow the method and step options given here
        if settings["method"] is None and steps_given & set(AdamLBFGSMethod.settings):
            data["method"] = "adam-lbfgs"
    if problem is not None and config is not None and problem != base["problem"]:
        data["params"] = {}
    if accept_changed_problem or data["problem"] != base["problem"]:
        data["problem_sha256"] = None  # no check of the problem file against the config's
    data["params"] = {**data["params"], **parse_sets(set_)}
    data["model_options"] = {**data["model_options"], **_model_options(
        data["model"], {name: options[name] for name in model_option_names()})}
    cfg = RunConfig.from_dict(data)

    check_out_folder(out)
    _, _, _, stages = prepare(cfg)  # fail fast on bad problems, models and stages
    label = f"{cfg.problem} · {cfg.model}"
    if quiet or not is_main_process():
        result = run(cfg, out=out)
    else:
        with RichProgress(stages, label) as bar:
            result = run(cfg, out=out, callbacks=[bar])
    _finish(result, is_main_process())


app.command()(user_errors(with_parameters(solve, solve_parameters())))


def is_main_process() -> bool:
    """False on every torchrun rank but rank 0 (which alone prints and writes)."""
    return int(os.environ.get("RANK", "0")) == 0


def _resume(directory: Path, budget: Optional[float], quiet: bool, accept_changed_problem: bool
            ) -> None:
    from pinn_gmnm.progress import RichProgress
    from pinn_gmnm.run import load_run, prepare, resume, saved_config

    options = {"budget": budget, "accept_changed_problem": accept_changed_problem}
    if quiet or not is_main_process():
        result = resume(directory, **options)
    else:
        cfg = saved_config(load_run(directory), **options)
        _, _, _, stages = prepare(cfg)
        with RichProgress(stages, f"{cfg.problem} · {cfg.model} (resumed)") as bar:
            result = resume(directory, callbacks=[bar], **options)
    _finish(result, is_main_process())


def _finish(result: Any, show: bool = True) -> None:
    """The summary, then what the run's status means and the exit code it gets (every
    rank of a data-parallel run exits alike; only rank 0, ``show``, prints)."""
    not_finite = [e for e in result.solution.events if e["event"] == "not finite"]
    if not show:
        code = {"interrupted": 130, "diverged": 3}.get(result.status) or (4 if not_finite else 0)
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
    short = [e for e in s.events if e["event"] == "short of a solution"]
    if short and short[-1]["step"] == int(s.metrics["steps"]):
        typer.secho(
            f"  note           Newton's method stopped short of a solution, its loss at "
            f"{short[-1]['loss'] / short[-1]['zero_loss']:.1e} of u ≡ 0's: a solution these "
            "Gaussians do not resolve (a singularity, a layer: --components), or a local "
            "minimum (a nonlinear problem may have several solutions, and Newton finds one "
            "near where it starts: give the problem a guess=, see docs/writing-problems.md)",
            fg=typer.colors.YELLOW)
    if result.status == "out-of-budget":
        more = f"gmnm-pde solve --resume {d} --budget SECONDS" if d is not None else "a larger budget"
        typer.echo(f"  budget         spent before training finished; to continue: {more}")
    if not_finite:
        raise fail(f"a metric is not finite ({', '.join(e['metric'] for e in not_finite)}; see "
                   "above" + (f" and the events in {d / 'metrics.json'}" if d is not None else "")
                   + ")", 4)


def _fmt(result: Any, key: str) -> str:
    """A metric for the summary, or why it has no value."""
    from pinn_gmnm.evaluation import not_finite

    event = next((e for e in result.solution.events
                  if e["event"] == "not finite" and e["metric"] == key), None)
    if event is not None:
        return not_finite(event)
    v = result.solution.metrics[key]
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
    typer.echo(f"  relative L2    {_fmt(result, 'rel_l2')}{against}")
    typer.echo(f"  max |error|    {_fmt(result, 'max_abs')}{against}")
    typer.echo(f"  residual RMS   {_fmt(result, 'residual_rms')}")
    fields = [*s.problem.outputs, *s.problem.groups]
    if len(s.problem.outputs) > 1 and any(f"{k}_{f}" in m for f in fields
                                          for k in ("rel_l2", "rms")):
        typer.echo("  each field     " + " · ".join(
            f"{f} {m[f'rel_l2_{f}']:.3e}" if f"rel_l2_{f}" in m else
            f"{f} {m[f'rms_{f}']:.3e} RMS (its solution is 0)" for f in fields)
            + f" (relative L2){against}")
    for k in s.problem.unknowns:
        true = "" if k.true is None else (
            f" (true {k.true:g}, relative error {m[f'unknown_{k.name}_error']:.2e})")
        typer.echo(f"  unknown {k.name:<6} {m[f'unknown_{k.name}']:.6g}{true}")
    if any(e["event"] == "resumed" for e in s.events):  # wall time is this session's alone
        typer.echo(f"  time           {result.wall_time:.2f} s this session (training "
                   f"{s.train_time:.2f} s in all sessions, {int(m['steps'])} steps)")
    else:
        typer.echo(f"  time           {result.wall_time:.2f} s (training {s.train_time:.2f} s, "
                   f"{int(m['steps'])} steps)")
    if result.directory is not None:
        typer.echo(f"  artifacts      {result.directory}")


from pinn_gmnm.cli import compare as _compare  # noqa: E402  (the compare and fit commands)

_compare.register(app, user_errors)

from pinn_gmnm.cli import predict as _predict  # noqa: E402  (the predict command)

_predict.register(app, user_errors)

from pinn_gmnm.cli import tune as _tune  # noqa: E402  (the tune command)

_tune.register(app, user_errors)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
