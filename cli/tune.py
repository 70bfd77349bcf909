"""``gmnm-pde tune PROBLEM --model M``: equal tuning effort for every model (Optuna TPE,
fixed seed, one resumable study per model in the output folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pinn_gmnm.cli.compare import _config, shared_parameters
from pinn_gmnm.cli.options import with_parameters


def tune(
    problem: Annotated[str, typer.Argument(help="Problem name (see `gmnm-pde list`) or path/to/file.py:function.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model to tune (see `gmnm-pde list`).")],
    trials: Annotated[int, typer.Option(help="Trials in all; a resumed study runs only the missing ones.")] = 20,
    search: Annotated[Optional[str], typer.Option(
        help="Comma-separated parameters to search. \\[default: all the model declares]")] = None,
    seeds: Annotated[int, typer.Option(help="Seeds the best settings are rerun with.")] = 3,
    seed: Annotated[int, typer.Option(help="First seed (every trial runs with it).")] = 0,
    set_: Annotated[list[str], typer.Option("--set", help="Problem parameter, name=value (repeatable).")] = [],  # noqa: B006
    out: Annotated[Path, typer.Option(help="Comparison folder: holds tune.sqlite and tuned-*.json.")] = Path("runs/tune"),
    **settings: Any,
) -> None:
    """Search MODEL's learning rate, size and other declared hyper-parameters on PROBLEM
    with Optuna (TPE, fixed seed), every trial under the same steps or --budget, then
    rerun the best settings over seeds. Running the same command again resumes the study.

    Examples: `gmnm-pde tune poisson --model gmnm --trials 30 --budget 60`,
    `gmnm-pde tune poisson --model mlp --search lr,width --trials 10 --adam-steps 500`.
    """
    from pinn_gmnm.artifacts import check_out_folder
    from pinn_gmnm.models import MODELS
    from pinn_gmnm.tune import require_optuna, search_space
    from pinn_gmnm.tune import tune as run_tune

    MODELS.entry(model)  # unknown model: the standard one-line error
    names = None if search is None else [s.strip() for s in search.split(",") if s.strip()]
    search_space(model, names)  # unknown parameter: a one-line error before any training
    require_optuna()
    check_out_folder(out)
    base = _config(problem, model=model, seed=seed, sets=set_, **settings)

    def progress(number: int, value: float) -> None:
        typer.echo(f"  trial {number:>3}  relative L2 {value:.3e}")

    result = run_tune(base, trials=trials, out=out, search=names, seeds=seeds, on_trial=progress)
    typer.echo(f"best of {result.trials} trials: relative L2 {result.best_value:.3e} with "
               + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in result.best.items()))
    for s, v in result.seeds.items():
        typer.echo(f"  seed {s}: relative L2 {v:.3e}")
    typer.echo(f"written to {result.path}")


def register(app: typer.Typer, wrap: Any) -> None:
    """Add `tune` to the CLI, wrapped by ``wrap`` (the error handler)."""
    app.command("tune")(wrap(with_parameters(tune, shared_parameters("boundary"))))
