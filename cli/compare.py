"""``gmnm-pde compare PROBLEM`` and ``gmnm-pde fit FUNCTION``: several models, several
seeds, equal budgets and sizes; a table in the terminal and a comparison directory."""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from pinn_gmnm.cli.options import (config_parameter, model_parameter, unmatched_options,
                                   with_parameters)
from pinn_gmnm.config import RunConfig
from pinn_gmnm.errors import GMNMError

Models = Annotated[str, typer.Option("--models", help="Comma-separated models: gmnm, pinn, mlp, kan, fem.")]
Seeds = Annotated[int, typer.Option(help="Seeds per model (seed, seed + 1, …).")]
Params = Annotated[Optional[int], typer.Option(
    "--params", help="Target parameter count for every model (±10 %). \\[default: the default GMNM's]")]
Seed = Annotated[int, typer.Option(help="First seed.")]
Out = Annotated[Path, typer.Option(help="Folder for comparison directories.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
Into = Annotated[Optional[Path], typer.Option(
    help="Write into this comparison directory (made if absent) instead of a new one under "
         "--out, so that several commands, on several hosts, can share it.")]
Only = Annotated[list[str], typer.Option(
    "--only", metavar="MODEL:SEED", help="Run just these runs (repeatable or comma-separated, "
    "e.g. gmnm:0,pinn:1) into --into DIR; then `gmnm-pde compare --collect DIR` reports.")]
Jobs = Annotated[int, typer.Option(help="Runs at once, each in a worker process pinned to its share of the cores (equal-steps results equal --jobs 1's to rounding; under --budget each run gets fewer cores).")]


SHARED = {
    "method": "Method for gmnm, mlp and kan (see `gmnm-pde list`); pinn always uses its classic "
              "recipe; with auto, mlp follows GMNM's method.",
    "budget": "Equal wall-clock training budget per run, in seconds; the last stage (L-BFGS, "
              "variable projection, Gauss-Newton) then runs until it is spent unless its steps "
              "are given. Without it: equal steps.",
    "adam_steps": None,
    "lbfgs_steps": "L-BFGS iterations (with --budget: until it is spent).",
    "varpro_steps": "Variable-projection iterations (with --budget: until it is spent).",
    "lr": "adam-lbfgs: initial Adam learning rate (decays 100x; pinn keeps 1e-3).",
    "interior": "Interior (training) points.",
    "sampler": None, "dtype": None, "device": None, "eval_every": None,
}
"""The run settings every run of a comparison shares, with the help that differs from
``solve``'s (None: the same); the options are derived from RunConfig."""


def shared_parameters(*extra: str) -> list:
    """The options for the settings in SHARED (and ``extra``), derived from RunConfig."""
    import dataclasses

    fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    return [config_parameter(fields[name], SHARED.get(name)) for name in (*SHARED, *extra)]


def _config(problem: str, **given: Any) -> RunConfig:
    from pinn_gmnm.cli.main import parse_sets
    from pinn_gmnm.methods import AdamLBFGSMethod, Steps
    from pinn_gmnm.sampling import SAMPLERS

    sets = given.pop("sets")
    if given.get("sampler") is not None:
        SAMPLERS.entry(given["sampler"])
    data = {k: v for k, v in given.items() if v is not None}
    if data.get("method") is None and set(data) & set(AdamLBFGSMethod.settings):
        data["method"] = "adam-lbfgs"
    if data.get("budget") is not None:
        # Equal wall clock means every run may use all of it: the open-ended last stage
        # runs until the budget (or its own stopping rule) unless its steps are given.
        for name in Steps.OPEN_ENDED:
            data.setdefault(name, None)
    return RunConfig(problem=problem, params=parse_sets(sets), **data)


def _run(problem: str, models: str, seeds: int, params: Optional[int], quiet: bool, out: Path,
         jobs: int = 1, into: Optional[Path] = None, only: list[str] = [],  # noqa: B006
         tuned: Optional[Path] = None, **settings: Any):
    from pinn_gmnm.artifacts import check_out_folder
    from pinn_gmnm.cli.main import is_main_process
    from pinn_gmnm.compare import Comparison, run_comparison
    from pinn_gmnm.progress import ComparisonProgress
    from pinn_gmnm.sweep import parse_only

    pairs = parse_only(only) or None
    if pairs and into is None:
        raise GMNMError("--only needs --into DIR: the comparison directory every run of the sweep "
                        "writes into")
    check_out_folder(out if into is None else into, "--out" if into is None else "--into")
    names = tuple(m.strip() for m in models.split(",") if m.strip())
    options = _unmatched(names, settings)
    comparison = Comparison(_config(problem, **settings), names, seeds, params, jobs, tuned,
                            options)
    runs = len(pairs or ()) or len(names) * seeds
    show = is_main_process()  # under torchrun every rank trains, rank 0 alone reports
    with ComparisonProgress(runs, f"compare {problem}") if show and not quiet else nullcontext() as bar:
        result = run_comparison(comparison, out=out, into=into, only=pairs, observer=bar)
    if show and pairs:
        typer.echo(f"{len(result.records)} run(s) written to {result.directory}; report the "
                   f"finished runs with `gmnm-pde compare --collect {result.directory}`")
    elif show:
        _print_table(result)
    if result.interrupted:
        where = f"; the runs done so far are in {result.directory}" if result.directory else ""
        if show:
            typer.secho(f"error: interrupted by {result.interrupted}{where} (a comparison "
                        "starts afresh when run again)", err=True, fg=typer.colors.RED)
        raise typer.Exit(130)
    return result


def _unmatched(names: tuple[str, ...], settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The options of the compared models that are not sized by --params (fem), taken
    out of ``settings``; an option given for a model not compared is an error."""
    out: dict[str, dict[str, Any]] = {}
    for model, option in unmatched_options():
        value = settings.pop(option, None)
        if value is None:
            continue
        if model not in names:
            raise GMNMError(f"--{option.replace('_', '-')} is an option of model '{model}', which "
                            f"is not compared (--models {','.join(names)})")
        out.setdefault(model, {})[option] = value
    return out


def _print_table(result: Any) -> None:
    from pinn_gmnm.compare_report import COLUMNS, model_stats, winners

    stats = model_stats(result.records, result.comparison.models)
    best = winners(stats)
    table = Table(title=f"{result.problem.name} · {result.comparison.seeds} seed(s) · "
                        f"{result.comparison.budget_text}")
    for title in ("model", "params", "method", *(t for _, t, _ in COLUMNS), "runs ok"):
        table.add_column(title)
    for name, s in stats.items():
        cells = []
        for key, _, fmt in COLUMNS:
            text = fmt(s[key]["mean"], s[key]["std"]) if s["ok"] and math.isfinite(s[key]["mean"]) else "n/a"
            cells.append(f"[bold green]{text}[/]" if best.get(key) == name else text)
        status = f"{s['ok']}/{s['runs']}" + (f" ({s['diverged']} diverged)" if s["diverged"] else "") \
            + (f" ({s['failed']} failed)" if s["failed"] else "") \
            + (" (not applicable)" if s["not_applicable"] else "") \
            + (f" ({s['missing']} missing)" if s["missing"] else "")
        table.add_row(name, str(s["parameters"]), s["method"], *cells, status)
    console = Console()
    console.print(table)
    if result.directory is not None:
        console.print(f"comparison written to {result.directory}")


def compare(
    problem: Annotated[Optional[str], typer.Argument(
        help="Problem name (see `gmnm-pde list`) or path/to/file.py:function.", show_default=False)] = None,
    models: Models = "gmnm,pinn,mlp,kan", seeds: Seeds = 3, params: Params = None,
    seed: Seed = 0,
    set_: Annotated[list[str], typer.Option("--set", help="Problem parameter, name=value (repeatable).")] = [],  # noqa: B006
    out: Out = Path("runs"), quiet: Quiet = False, jobs: Jobs = 1, into: Into = None,
    only: Only = [],  # noqa: B006
    collect: Annotated[Optional[Path], typer.Option(
        metavar="DIR", help="Report the finished runs of the comparison directory DIR (missing "
        "ones are listed as missing); takes no PROBLEM or other option.")] = None,
    tuned: Annotated[Optional[Path], typer.Option(
        help="Folder of `gmnm-pde tune` results: every model runs with its tuned settings "
             "(sizes included) instead of being parameter-matched.")] = None,
    **settings: Any,
) -> None:
    """Compare models on PROBLEM: same size, same budget, several seeds; print a table
    and write summary.md, summary.json, convergence.png, fields.png and every run.

    Examples: `gmnm-pde compare poisson --seeds 3 --budget 60`,
    `gmnm-pde compare poisson --models gmnm,kan --method adam-lbfgs`; a sweep on a cluster:
    `gmnm-pde compare poisson --into sweep --only gmnm:0` per run, then
    `gmnm-pde compare --collect sweep`.
    """
    if collect is not None:
        if problem is not None:
            raise GMNMError(f"--collect {collect} reads the settings from {collect}/plan.json; "
                            f"give no PROBLEM ('{problem}')")
        from pinn_gmnm.sweep import collect as collect_runs

        _print_table(collect_runs(collect))
        return
    if problem is None:
        raise GMNMError("give a PROBLEM (see `gmnm-pde list`), or --collect DIR")
    _run(problem, models, seeds, params, quiet, out, jobs, into, only, tuned, seed=seed, sets=set_,
         **settings)


def fit(
    functions: Annotated[list[str], typer.Argument(
        help="Fitting target(s) (see the 'fit' group of `gmnm-pde list`), `all`, or path/to/file.py:function.")],
    models: Models = "gmnm,pinn,mlp,kan", seeds: Seeds = 3, params: Params = None,
    seed: Seed = 0, out: Out = Path("runs"), quiet: Quiet = False, jobs: Jobs = 1,
    into: Into = None, only: Only = [],  # noqa: B006
    **settings: Any,
) -> None:
    """Fit FUNCTION(s) from samples with every model and compare them (the paper's
    function-approximation experiment): the same table and files as `compare`; errors are
    measured on a test grid disjoint from the training points. Several targets (or `all`)
    also write overview.md, one row per target.

    Examples: `gmnm-pde fit bessel`, `gmnm-pde fit all --seeds 3 --budget 30`; a sweep
    of one target: `gmnm-pde fit bessel --into sweep --only gmnm:0` per run, then
    `gmnm-pde compare --collect sweep`.
    """
    from pinn_gmnm.artifacts import check_out_folder, new_run_dir
    from pinn_gmnm.fitting import check_fit_target, fit_targets

    check_out_folder(out)
    names = fit_targets() if functions == ["all"] else functions
    for name in names:
        check_fit_target(name)
    if len(names) > 1 and (into is not None or only):
        raise GMNMError("--into and --only take one fitting target (a comparison directory holds "
                        f"one comparison), got {len(names)}; run one sweep per target")
    if len(names) > 1:
        out = new_run_dir(out, "fit-catalogue")
    results = [_run(name, models, seeds, params, quiet, out, jobs, into, only, seed=seed, sets=[],
                    **settings) for name in names]
    if len(names) > 1:
        _write_overview(out, results)
        typer.echo(f"overview written to {out / 'overview.md'}")


def _write_overview(out: Path, results: list) -> None:
    """One row per target, one column per model: test relative L2 (mean ± std)."""
    from pinn_gmnm.artifacts import atomic_write
    from pinn_gmnm.compare_report import COLUMNS, model_stats, winners

    models = results[0].comparison.models
    fmt = COLUMNS[0][2]
    lines = [f"# Function fitting: test relative L2 error ({time.strftime('%Y-%m-%d')})", "",
             results[0].comparison.budget_text + "; mean ± sample std over seeds; **bold**: best.",
             "", "| target | parameters | " + " | ".join(models) + " |", "|---" * (len(models) + 2) + "|"]
    for r in results:
        stats = model_stats(r.records, models)
        best = winners(stats)["rel_l2"]
        cells = []
        for m in models:
            s = stats[m]
            text = fmt(s["rel_l2"]["mean"], s["rel_l2"]["std"]) if s["ok"] else "diverged"
            cells.append(f"**{text}**" if m == best else text)
        link = f"[{r.problem.name}]({r.directory.relative_to(out)}/summary.md)"
        lines.append(f"| {link} | {r.target} | " + " | ".join(cells) + " |")
    atomic_write(out / "overview.md", lambda f: f.write("\n".join(lines) + "\n"))


def compare_parameters() -> list:
    """The derived options of `compare`: the shared run settings, and the options of the
    models it cannot size by --params (fem)."""
    return [*shared_parameters("boundary"),
            *(model_parameter(option) for _, option in unmatched_options())]


def register(app: typer.Typer, wrap: Any) -> None:
    """Add `compare` and `fit` to the CLI, each wrapped by ``wrap`` (the error handler)."""
    app.command("compare")(wrap(with_parameters(compare, compare_parameters())))
    app.command("fit")(wrap(with_parameters(fit, shared_parameters())))
