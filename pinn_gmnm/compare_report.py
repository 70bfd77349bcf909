"""A comparison's report: statistics over seeds, ``summary.md``, ``summary.json``,
``convergence.png`` and ``fields.png``.

Each model's row gives mean ± sample standard deviation over its seeds that finished
with finite errors; seeds that diverged, failed or are missing (a sweep collected before
every run finished) are counted in the row, never dropped.
The best model per column is marked (only models with every seed finite compete).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .artifacts import atomic_write, write_json
from .fitting import is_fit_problem
from .plotting import _save, map_aspect, map_height, new_figure, slice_grid
from .run import environment
from .comparison import NOT_APPLICABLE, ComparisonResult, RunRecord
from .models import MODELS

# (key, column title, formatter of mean and std)
COLUMNS: list[tuple[str, str, Callable[[float, float], str]]] = [
    ("rel_l2", "relative L2", lambda m, s: f"{m:.2e} ± {s:.1e}"),
    ("max_abs", "max abs error", lambda m, s: f"{m:.2e} ± {s:.1e}"),
    ("train_time", "training time [s]", lambda m, s: f"{m:.2f} ± {s:.2f}"),
    ("time_per_step", "time/step [ms]", lambda m, s: f"{1e3 * m:.2f} ± {1e3 * s:.2f}"),
]
STAT_KEYS = ("rel_l2", "max_abs", "residual_rms", "train_time", "wall_time", "time_per_step",
             "steps")


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def model_stats(records: list[RunRecord], models: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Per model: run counts, size, training and mean/std of every metric over the
    seeds that finished with finite errors."""
    out = {}
    for name in models:
        runs = [r for r in records if r.model == name]
        ok = [r for r in runs if r.status == "ok"]
        stats: dict[str, Any] = {
            "runs": len(runs), "ok": len(ok),
            "diverged": sum(r.status == "diverged" for r in runs),
            "failed": sum(r.status.startswith("failed") for r in runs),
            "missing": sum(r.status == "missing" for r in runs),
            "not_applicable": sum(r.status.startswith(NOT_APPLICABLE) for r in runs),
            "parameters": max((r.parameters for r in runs), default=0),
            "method": ", ".join(dict.fromkeys(r.method for r in runs if r.method)),
            "training": " | ".join(dict.fromkeys(r.training for r in runs if r.training)),
        }
        for key in STAT_KEYS:
            mean, std = _mean_std([float(r.metrics.get(key, math.nan)) for r in ok])
            stats[key] = {"mean": mean, "std": std}
        out[name] = stats
    return out


def winners(stats: dict[str, dict[str, Any]]) -> dict[str, str | None]:
    """The model with the lowest mean per column, among those with every seed finite."""
    out: dict[str, str | None] = {}
    for key, _, _ in COLUMNS:
        cands = [(s[key]["mean"], name) for name, s in stats.items()
                 if s["ok"] == s["runs"] and math.isfinite(s[key]["mean"])]
        out[key] = min(cands)[1] if cands else None
    return out


def _cell(s: dict[str, Any], key: str, fmt: Callable[[float, float], str], best: bool) -> str:
    if s["ok"] == 0:
        if s["not_applicable"] == s["runs"]:
            return NOT_APPLICABLE
        return "diverged" if s["diverged"] else "missing" if s["missing"] == s["runs"] else "failed"
    text = fmt(s[key]["mean"], s[key]["std"])
    if not math.isfinite(s[key]["mean"]):
        text = "n/a"
    text = f"**{text}**" if best else text
    bad = s["runs"] - s["ok"]
    return text + (f" ({bad}/{s['runs']} {_not_ok(s)})" if bad else "")


def _not_ok(s: dict[str, Any]) -> str:
    """'diverged or failed', '1 missing', …: why a row's seeds did not all finish."""
    if not s["missing"]:
        return "diverged or failed"
    if s["missing"] == s["runs"] - s["ok"]:
        return "missing"
    return f"diverged, failed or missing ({s['missing']} missing)"


def render_markdown(result: ComparisonResult, stats: dict[str, dict[str, Any]],
                    best: dict[str, str | None]) -> str:
    c, p = result.comparison, result.problem
    b = c.base
    seeds = ", ".join(str(b.seed + i) for i in range(c.seeds))
    env = environment()
    lines = [f"# {p.name}: {' vs '.join(c.models)}", ""]
    if p.description:
        lines += [p.description.strip().splitlines()[0], ""]
    lines += [
        f"- {c.seeds} seed(s) ({seeds}); {c.budget_text}",
        f"- parameters matched to {result.target} (±10 %); {b.dtype} on {b.device}",
    ]
    fixed = [m for m in c.models if MODELS.get(m).size_option is None]
    if fixed:
        given = "; ".join(f"{m} with {c.options.get(m) or 'its defaults'}" for m in fixed)
        lines.append(f"- not parameter-matched (their size is their own option): {given}")
    if is_fit_problem(p):
        lines.append(f"- supervised fit: training set {b.interior} points ({b.sampler}); errors on "
                     "the fixed test grid (about 20 000 points, disjoint from the training set)")
    else:
        lines.append(f"- collocation: {b.interior} interior + {b.boundary} boundary points "
                     f"({b.sampler}); errors on the fixed evaluation grid")
    lines += [f"- {time.strftime('%Y-%m-%d')}, torch {env['torch']}, {env['threads']} threads, "
              f"{env['machine']}", "",
              "Values are mean ± sample standard deviation over seeds; **bold** marks the best "
              "per column among models whose seeds all finished.", "",
              "| model | parameters | method | " + " | ".join(t for _, t, _ in COLUMNS) + " | steps |",
              "|---" * (len(COLUMNS) + 4) + "|"]
    for name, s in stats.items():
        cells = [_cell(s, key, fmt, best.get(key) == name) for key, _, fmt in COLUMNS]
        steps = s["steps"]["mean"]
        lines.append(f"| {name} | {s['parameters']} | {s['method']} | " + " | ".join(cells)
                     + f" | {'n/a' if not math.isfinite(steps) else f'{steps:.0f}'} |")
    lines += ["", "Best per column: " + "; ".join(
        f"{title}: {best[key] or 'none'}" for key, title, _ in COLUMNS), "",
        "## Training per model", ""]
    lines += [f"- **{name}**: {s['training']}" for name, s in stats.items()]
    lines += ["", "## Runs", "", "| model | seed | status | relative L2 | max abs error | "
              "training time [s] | steps | directory |", "|---" * 8 + "|"]
    for r in result.records:
        m = r.metrics
        where = "" if r.directory is None or result.directory is None else \
            str(r.directory.relative_to(result.directory))
        lines.append(f"| {r.model} | {r.seed} | {r.status} | {m['rel_l2']:.3e} | "
                     f"{m['max_abs']:.3e} | {m['train_time']:.2f} | {int(m['steps'])} | {where} |")
    return "\n".join(lines) + "\n"


def write_report(result: ComparisonResult) -> dict[str, Any]:
    """Write summary.md, summary.json, convergence.png and fields.png; returns the stats."""
    assert result.directory is not None
    c = result.comparison
    stats = model_stats(result.records, c.models)
    best = winners(stats)
    d = result.directory
    atomic_write(d / "summary.md", lambda f: f.write(render_markdown(result, stats, best)))
    write_json(d / "summary.json", {
        "problem": result.problem.name, "problem_params": dict(result.problem.params),
        "fit": is_fit_problem(result.problem), "models": list(c.models), "seeds": c.seeds,
        "target_parameters": result.target, "budget": c.budget_text,
        "settings": c.base.to_dict(), "stats": stats, "winners": best,
        "runs": [r.summary() for r in result.records], "environment": environment(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    })
    plot_convergence(result, d / "convergence.png")
    plot_fields(result, d / "fields.png")
    return stats


def _curves(records: list[RunRecord], xkey: str, ykey: str) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for r in records:
        rows = [(float(h[xkey]), float(h[ykey])) for h in r.history
                if math.isfinite(float(h.get(ykey, math.nan))) and float(h[xkey]) > 0]
        if rows:
            x, y = np.array(rows).T
            out.append((x, y))
    return out


def _band(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, ...] | None:
    """Median, min and max over seeds of "the latest value at or before x" on a shared
    log-spaced x grid (a finished run keeps its final value)."""
    if not curves:
        return None
    start = max(x[0] for x, _ in curves)
    stop = max(x[-1] for x, _ in curves)
    grid = np.geomspace(start, max(stop, start * (1 + 1e-9)), 200)
    vals = np.array([y[np.searchsorted(x, grid, side="right") - 1] for x, y in curves])
    return grid, np.median(vals, axis=0), vals.min(axis=0), vals.max(axis=0)


def plot_convergence(result: ComparisonResult, path) -> None:
    """Error (or loss, without an exact solution) against training time and step: the
    median over seeds as a line, the min–max range over seeds as a band."""
    ykey = "rel_l2" if result.problem.exact is not None else "loss"
    ylabel = ("relative L2 error" + (" (test)" if is_fit_problem(result.problem) else "")
              if ykey == "rel_l2" else "training loss")
    fig = new_figure(12, 4.2)
    axes = [fig.add_subplot(1, 2, i) for i in (1, 2)]
    for ax, xkey, xlabel in zip(axes, ("time", "step"), ("training time [s]", "step")):
        for i, name in enumerate(result.comparison.models):
            band = _band(_curves([r for r in result.records if r.model == name], xkey, ykey))
            if band is None:
                continue
            x, med, lo, hi = band
            color = f"C{i}"
            ax.plot(x, med, color=color, lw=2, label=name,  # a one-step run is a point
                    marker="o" if len(x) == 1 else None)
            ax.fill_between(x, lo, hi, color=color, alpha=0.2, lw=0)
        ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel=ylabel,
               title=f"{ylabel} vs {xlabel.split(' [')[0]}")
        ax.grid(True, which="both", alpha=0.3)
        if ax.lines:
            ax.legend()
    fig.suptitle(f"{result.problem.name}: median over seeds, band = min–max", wrap=True)
    _save(fig, path)


def plot_fields(result: ComparisonResult, path) -> None:
    """Each model's prediction (first seed) and its absolute error on the same colour
    scales: a 2D slice through the box centre, or lines in 1D."""
    problem, models = result.problem, [m for m in result.comparison.models if m in result.fields]
    if problem.dim == 1:
        _fields_1d(result, models, path)
        return
    x, a, b, note = slice_grid(problem)
    inside = problem.geometry.inside(x).numpy()
    exact = problem.exact_values(x)
    exact = None if exact is None else exact[:, 0].numpy()
    shape, extent = (len(b), len(a)), (a[0], a[-1], b[0], b[-1])
    ref = exact if exact is not None else np.concatenate([result.fields[m] for m in models] or [np.zeros(1)])
    vmin, vmax = float(np.nanmin(ref)), float(np.nanmax(ref))
    errors = {m: np.abs(result.fields[m] - exact) for m in models} if exact is not None else {}
    finite = [e[inside & np.isfinite(e)] for e in errors.values()]
    top = max((float(e.max()) for e in finite if e.size), default=0.0)
    rows, cols = (2 if errors else 1), len(models) + (1 if exact is not None else 0)
    aspect = map_aspect(problem)
    fig = new_figure(3.6 * max(cols, 1), map_height(aspect, 3.3, 3.6) * rows)

    rows_axes: list[list[Any]] = [[], []]

    def show(row: int, col: int, values: np.ndarray, title: str, **kw: Any):
        ax = fig.add_subplot(rows, cols, row * cols + col + 1)
        rows_axes[row].append(ax)
        img = np.where(inside, values, np.nan).reshape(shape)
        im = ax.imshow(img, origin="lower", extent=extent,
                       aspect="auto" if aspect is None else "equal", **kw)
        ax.set(title=title, xlabel=problem.variables[0], ylabel=problem.variables[1])
        return im

    offset = 0
    if exact is not None:
        im = show(0, 0, exact, "exact" + note, cmap="viridis", vmin=vmin, vmax=vmax)
        offset = 1
    for j, m in enumerate(models):
        im = show(0, j + offset, result.fields[m], f"{m} prediction", cmap="viridis",
                  vmin=vmin, vmax=vmax)
    if models:
        fig.colorbar(im, ax=rows_axes[0], shrink=0.9)
    if errors and top > 0 and math.isfinite(top):
        from matplotlib.colors import LogNorm

        norm = LogNorm(vmin=top * 1e-8, vmax=top)
        for j, m in enumerate(models):
            im = show(1, j + offset, np.maximum(errors[m], top * 1e-8), f"{m} |error|",
                      cmap="magma", norm=norm)
        fig.colorbar(im, ax=rows_axes[1], shrink=0.9)
    fig.suptitle(f"{problem.name}: prediction and |error| per model (seed {result.comparison.base.seed}), "
                 "shared colour scales", wrap=True)
    _save(fig, path)


def _fields_1d(result: ComparisonResult, models: list[str], path) -> None:
    import torch

    problem = result.problem
    lo, hi = problem.geometry.bbox
    x = torch.linspace(lo[0], hi[0], 1001, dtype=torch.float64)[:, None]
    exact = problem.exact_values(x)
    fig = new_figure(12, 4)
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    if exact is not None:
        ax1.plot(x[:, 0], exact[:, 0], "k--", lw=1.5, label="exact")
    for i, m in enumerate(models):
        ax1.plot(x[:, 0], result.fields[m], color=f"C{i}", lw=1.2, label=m)
        if exact is not None:
            ax2.semilogy(x[:, 0], np.abs(result.fields[m] - exact[:, 0].numpy()) + 1e-300,
                         color=f"C{i}", lw=1, label=m)
    ax1.set(xlabel=problem.variables[0], title="prediction")
    ax2.set(xlabel=problem.variables[0], title="|error|")
    for ax in (ax1, ax2):
        if ax.lines:
            ax.legend()
    fig.suptitle(f"{problem.name}: prediction and |error| per model (seed {result.comparison.base.seed})",
                 wrap=True)
    _save(fig, path)
