"""Using a result: load a trained run and evaluate it at one's own points.

    solution = load_solution("runs/poisson-gmnm-20261128-185030")
    u = solution(points)              # (n, d) points -> (n, k) values, one column per output

A run directory records what rebuilds its model (the resolved ``config.json``, also kept
in the checkpoint) and the trained weights (``model.pt``). Loading rebuilds the problem and
an untrained model of the same architecture from that config, then loads the weights, on
the CPU whatever device trained them. ``gmnm-pde predict RUN_DIR --points FILE`` is the
same from the command line; :func:`read_points` and :func:`write_predictions` are its
file formats.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ._types import Points
from .artifacts import atomic_write
from .config import RunConfig
from .errors import GMNMError
from .formats import PREDICTION_FORMATS
from .geometry.base import as_points
from .problem import Problem
from .references.base import _read_table

BATCH = 16384
"""Points evaluated at once: bounds the memory of large point files."""



@dataclass(frozen=True)
class LoadedSolution:
    """A trained run, callable at any points: ``solution(x)`` maps (n, d) → (n, k).

    Attributes:
        problem: the problem the run solved (rebuilt from its name and parameters).
        model: the trained model, on the CPU, in the run's dtype, in eval mode.
        config: the run's resolved configuration.
        metrics: what the run measured (``metrics.json``; empty when the run has none).
        directory: the run directory it was loaded from.
    """

    problem: Problem
    model: nn.Module
    config: RunConfig
    metrics: Mapping[str, Any]
    directory: Path

    @property
    def variables(self) -> tuple[str, ...]:
        """The names of the coordinates, in the order points give them (e.g. x, y, t)."""
        return tuple(self.problem.variables)

    @property
    def outputs(self) -> tuple[str, ...]:
        """The names of the outputs, in the order of the value columns (e.g. u, v, p)."""
        return tuple(self.problem.outputs)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def __call__(self, x: Points | np.ndarray) -> Tensor | np.ndarray:
        """The trained model at points ``x`` of shape (n, d) (or (n,) for 1-D problems):
        (n, k) values, one column per output. A tensor gives a tensor in the run's dtype;
        anything else (a numpy array, nested lists) gives a float64 numpy array."""
        values = self._evaluate(as_points(x, self.problem.dim))
        return values if isinstance(x, Tensor) else values.double().numpy()

    def _evaluate(self, x: Points) -> Tensor:
        x = x.to(self.dtype)
        with torch.no_grad():
            parts = [self.model(x[i:i + BATCH]).reshape(-1, len(self.outputs))
                     for i in range(0, len(x), BATCH)]
        return torch.cat(parts) if parts else torch.empty(0, len(self.outputs), dtype=self.dtype)


def load_solution(directory: str | Path) -> LoadedSolution:
    """Load the trained run in ``directory`` (a run directory written by ``gmnm-pde
    solve``, ``compare`` or ``fit``) as a callable solution on the CPU.

    Every model loads (gmnm, mlp, pinn, kan, with or without ``--hard``). The problem is
    rebuilt from its name: a problem from a user's file (``file.py:function``) needs that
    file where the run found it. A run that stopped early (budget, Ctrl-C, divergence)
    loads with the last weights it saved.
    """
    from .run import DTYPES, build, read_run  # run imports plotting: only when loading

    directory = Path(directory)
    payload = read_run(directory)
    config = RunConfig.from_dict(payload["config"])
    # The model is rebuilt without the run's reference file (predictions never need it,
    # and it may have moved) and without disturbing the caller's random state.
    with torch.random.fork_rng(devices=[]):
        problem, model = build(dataclasses.replace(config, reference=None))
    model.to(device="cpu", dtype=DTYPES[config.dtype])
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise GMNMError(f"{directory / 'model.pt'} does not fit the model its config "
                        f"describes ({first}); was the run directory edited by hand?") from None
    model.eval()
    return LoadedSolution(problem, model, config, _metrics(directory), directory)


def _metrics(directory: Path) -> dict[str, Any]:
    path = directory / "metrics.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise GMNMError(f"could not read {path}: {exc}") from None
    return data if isinstance(data, dict) else {}


def read_points(path: str | Path, problem: Problem) -> Points:
    """Points (n, d) from a file in the formats ``--reference`` reads: whitespace-separated
    text with optional ``%`` or ``#`` comment lines, ``.csv`` (optional header row), one
    row of ``d`` coordinates per point; or ``.npz`` with an array ``points`` (n, d) (a
    reference ``.npz`` is read for its points). ``d`` must be the problem's dimension."""
    path = Path(path)
    if not path.is_file():
        raise GMNMError(f"points file not found: {path}")
    names = ", ".join(problem.variables)
    if path.suffix == ".npz":
        x = _npz_points(path)
    else:
        x = _read_table(path)
    if x.ndim == 1 and problem.dim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] != problem.dim:
        found = f"rows of {x.shape[1]} columns" if x.ndim == 2 else f"an array of shape {x.shape}"
        raise GMNMError(f"{path}: {found}, but problem '{problem.name}' is {problem.dim}-D: "
                        f"give one row per point with its coordinates {names}")
    if len(x) == 0:
        raise GMNMError(f"{path}: no points")
    if not np.isfinite(x).all():
        raise GMNMError(f"{path}: coordinates must be finite numbers (found NaN or infinity)")
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))


def _npz_points(path: Path) -> np.ndarray:
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise GMNMError(f"{path}: not a readable .npz file ({type(exc).__name__})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise GMNMError(f"{path}: a single array, not an .npz archive with an array 'points'")
    with z:
        if "points" not in z.files:
            raise GMNMError(f"{path}: a points .npz needs an array 'points' (n, d); it has: "
                            f"{', '.join(sorted(z.files)) or 'nothing'}")
        x = z["points"]
    if not np.issubdtype(x.dtype, np.number):
        raise GMNMError(f"{path}: 'points' holds {x.dtype}, not numbers")
    return x.astype(np.float64)


def write_predictions(path: str | Path | None, solution: LoadedSolution, points: Points,
                      values: Tensor) -> str | None:
    """Write one row per point, its coordinates then every output, to ``path``: comma-
    separated with a header row naming the columns (``.csv``, ``.txt``), or ``.npz`` with
    arrays ``points`` (n, d), ``values`` (n, k) and ``columns`` (the names), which
    ``--reference`` reads back. Without a path, return the CSV text instead."""
    columns = [*solution.variables, *solution.outputs]
    x = points.double().numpy()
    v = values.double().numpy()
    if path is None:
        return _csv(columns, x, v)
    path = check_output(path)
    if path.suffix == ".npz":
        source = np.array(f"predicted by {solution.config.model} run {solution.directory.name}")
        atomic_write(path, lambda f: np.savez(f, points=x, values=v, columns=np.array(columns),
                                              source=source), mode="wb")
    else:
        text = _csv(columns, x, v)
        atomic_write(path, lambda f: f.write(text))
    return None


def check_output(path: str | Path) -> Path:
    """``path`` when its name ends in one of :data:`PREDICTION_FORMATS`, else an error."""
    path = Path(path)
    if path.suffix not in PREDICTION_FORMATS:
        raise GMNMError(f"--out {path}: unknown format '{path.suffix or '(none)'}'; use a name "
                        f"ending in {', '.join(PREDICTION_FORMATS)}")
    return path


def _csv(columns: list[str], x: np.ndarray, v: np.ndarray) -> str:
    """Full float64 precision (17 significant digits), so values read back exactly."""
    buf = io.StringIO()
    np.savetxt(buf, np.hstack([x, v]), fmt="%.17g", delimiter=",", header=",".join(columns),
               comments="")
    return buf.getvalue()
