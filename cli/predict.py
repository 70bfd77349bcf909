"""``gmnm-pde predict RUN_DIR --points FILE``: a trained run evaluated at the user's points."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pinn_gmnm.formats import PREDICTION_FORMATS


def predict(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `gmnm-pde solve` (or a run of `compare`/`fit`).")],
    points: Annotated[Path, typer.Option(
        "--points", help="Points: text with %/# comment lines, .csv (optional header), one row of "
        "coordinates per point; or .npz with an array 'points' (n, d).")],
    out: Annotated[Optional[Path], typer.Option(
        help="Write here (" + ", ".join(PREDICTION_FORMATS) + "). [default: CSV on standard output]")] = None,
) -> None:
    """Evaluate the trained model of RUN_DIR at the points in FILE, on the CPU.

    Writes one row per point: its coordinates, then every output (e.g. x,y,u or
    x,y,t,u,v,p), as CSV with a header row, or as .npz arrays points, values and columns
    (which --reference reads back). In Python: `pinn_gmnm.load_solution(RUN_DIR)`.

    Example: `gmnm-pde predict runs/poisson-gmnm-20261128-185030 --points xy.txt --out u.csv`.
    """
    from pinn_gmnm.prediction import check_output, load_solution, read_points, write_predictions

    if out is not None:
        check_output(out)  # before the work, not after it
    solution = load_solution(run_dir)
    x = read_points(points, solution.problem)
    values = solution(x)
    text = write_predictions(out, solution, x, values)
    outside = int((~solution.problem.geometry.inside(x)).sum())
    if outside:
        typer.secho(f"note: {outside} of {len(x)} points lie outside the domain of "
                    f"'{solution.problem.name}'; the values there are extrapolated",
                    err=True, fg=typer.colors.YELLOW)
    if text is not None:
        typer.echo(text, nl=False)
    else:
        typer.echo(f"{len(x)} points × {len(solution.outputs)} output(s) "
                   f"({', '.join(solution.outputs)}) written to {out}", err=True)


def register(app: typer.Typer, wrap: Any) -> None:
    """Add `predict` to the CLI, wrapped by ``wrap`` (the error handler)."""
    app.command("predict")(wrap(predict))
