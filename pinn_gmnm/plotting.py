"""Figures of a run: the solution next to the exact one (or the reference solution) with
the error, snapshots over time for time-dependent problems, training curves and learned
coefficients. Uses matplotlib's object API (no global pyplot state, no display needed);
matplotlib is imported when the first figure is drawn, not with this module."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .evaluation import PREDICT_CHUNK
from .fitting import is_fit_problem
from .problem import Problem

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.image import AxesImage


def new_figure(width: float, height: float) -> Figure:
    """An empty figure of ``width`` × ``height`` inches with constrained layout, drawn by
    the Agg backend; the first call imports matplotlib."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig: Figure, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from .artifacts import atomic_write

    FigureCanvasAgg(fig)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110), "wb")


@torch.no_grad()
def _predict(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    p = next(model.parameters())
    out = torch.cat([model(x[i:i + PREDICT_CHUNK].to(p)) for i in range(0, len(x), PREDICT_CHUNK)])
    return out.reshape(len(x), -1).double().cpu().numpy()


def slice_grid(problem: Problem, k: int = 201) -> tuple[torch.Tensor, np.ndarray, np.ndarray, str]:
    """A k × k grid over the first two axes of the bounding box (other axes at the
    box centre): points, the two axis vectors, and a note on the slice."""
    lo, hi = problem.geometry.bbox
    d = problem.dim
    a = np.linspace(lo[0], hi[0], k)
    b = np.linspace(lo[1], hi[1], k)
    A, B = np.meshgrid(a, b, indexing="xy")
    x = np.tile([(l + h) / 2 for l, h in zip(lo, hi)], (k * k, 1))
    x[:, 0], x[:, 1] = A.ravel(), B.ravel()
    v = problem.variables
    note = "" if d == 2 else " (slice " + ", ".join(
        f"{v[i]} = {x[0, i]:.3g}" for i in range(2, d)) + ")"
    return torch.from_numpy(x), a, b, note


def map_aspect(problem: Problem) -> float | None:
    """Height over width of the heat maps of ``problem``'s first two axes when both are
    lengths (a domain in space: drawn to scale, so that a circle looks round), None when
    one is time (an x–t map) or the problem is a fit (inputs of any units): then the
    maps fill their panels."""
    if len(problem.spatial) < 2 or is_fit_problem(problem):
        return None
    lo, hi = problem.geometry.bbox
    return (hi[1] - lo[1]) / (hi[0] - lo[0])


MIN_MAP = 0.8
"""Inches: the lowest a row of maps drawn to scale is made (a very long domain's image is
lower than that in its panel)."""


def map_height(aspect: float | None, height: float, width: float) -> float:
    """Inches of a row of heat maps whose panels are ``width`` wide: ``height`` when the
    maps fill their panels, else their images' height to scale (an inch of the width
    goes to the colour bar; within reason for very long or tall domains) and an inch for
    titles and labels."""
    if aspect is None:
        return height
    image = width - 1.0
    return min(max(image * aspect, MIN_MAP), 3 * image) + 1.0


def map_colorbar(fig: Figure, im: AxesImage, ax: Axes, aspect: float | None,
                 width: float) -> None:
    """The colour bar of one heat map in a panel ``width`` wide: beside its axes, and as
    high as the image itself where a map drawn to scale is lower than its panel (a very
    long domain, see :func:`map_height`), where a bar beside the axes would span the
    panel. (Only there: constrained layout leaves no room for the labels of such a bar,
    and they fit only beside a long map.)"""
    if aspect is not None and (width - 1.0) * aspect < MIN_MAP:
        fig.colorbar(im, cax=ax.inset_axes((1.03, 0.0, 0.04, 1.0)))
    else:
        fig.colorbar(im, ax=ax)


def plot_solution(problem: Problem, model: torch.nn.Module, path: Path,
                  title: str = "") -> None:
    """Prediction, exact (or reference) solution and absolute error: heat maps in 2D and
    above (a slice through the box centre; an x–t map for problems in one space
    dimension and time), line plots in 1D."""
    has_exact = problem.exact is not None or problem.reference is not None
    known = "exact" if problem.exact is not None else "reference"
    k_out = problem.n_outputs
    if problem.dim == 1:
        lo, hi = problem.geometry.bbox
        x = torch.linspace(lo[0], hi[0], 1001, dtype=torch.float64)[:, None]
        pred = _predict(model, x)
        fig = new_figure(10, 3.6 * k_out)
        for c, name in enumerate(problem.outputs):
            ax = fig.add_subplot(k_out, 2, 2 * c + 1)
            ax.plot(x[:, 0], pred[:, c], label="prediction", lw=2)
            if has_exact:
                ex = problem.solution_values(x).numpy()
                ax.plot(x[:, 0], ex[:, c], "--", label=known, lw=1.5)
                ax2 = fig.add_subplot(k_out, 2, 2 * c + 2)
                ax2.semilogy(x[:, 0], np.abs(pred[:, c] - ex[:, c]) + 1e-300)
                ax2.set(xlabel=problem.variables[0], title=f"|error| of {name}")
            ax.set(xlabel=problem.variables[0], title=name)
            ax.legend()
        fig.suptitle(title, wrap=True)
        _save(fig, path)
        return

    x, a, b, note = slice_grid(problem)
    inside = problem.geometry.inside(x).numpy()
    pred = _predict(model, x)
    ex = problem.solution_values(x).numpy() if has_exact else None
    cols = 3 if has_exact else 1
    aspect = map_aspect(problem)
    panel = 4.8  # inches a map's panel is wide
    fig = new_figure(panel * cols, map_height(aspect, 3.9, panel) * k_out)
    shape = (len(b), len(a))
    extent = (a[0], a[-1], b[0], b[-1])
    for c, name in enumerate(problem.outputs):
        def show(j: int, values: np.ndarray, label: str, **kw: Any) -> None:
            ax = fig.add_subplot(k_out, cols, c * cols + j + 1)
            img = np.where(inside, values, np.nan).reshape(shape)
            im = ax.imshow(img, origin="lower", extent=extent,
                           aspect="auto" if aspect is None else "equal", **kw)
            map_colorbar(fig, im, ax, aspect, panel)
            ax.set(xlabel=problem.variables[0], ylabel=problem.variables[1], title=label + note)

        if ex is None:
            show(0, pred[:, c], f"{name} (prediction)", cmap="viridis")
            continue
        vmin = float(np.nanmin(np.where(inside, ex[:, c], np.nan)))
        vmax = float(np.nanmax(np.where(inside, ex[:, c], np.nan)))
        show(0, pred[:, c], f"{name} prediction", cmap="viridis", vmin=vmin, vmax=vmax)
        show(1, ex[:, c], f"{name} {known}", cmap="viridis", vmin=vmin, vmax=vmax)
        err = np.abs(pred[:, c] - ex[:, c])
        top = float(np.nanmax(np.where(inside, err, np.nan)))
        if top > 0 and math.isfinite(top):
            show(2, np.maximum(err, top * 1e-6), f"|error| of {name}", cmap="magma",
                 norm="log", vmin=top * 1e-6, vmax=top)
        else:
            show(2, err, f"|error| of {name}", cmap="magma")
    fig.suptitle(title, wrap=True)
    _save(fig, path)


def plot_training(history: Sequence[dict[str, Any]], path: Path, title: str = "") -> None:
    """Loss against step, and relative L2 error against step and training time."""
    steps = np.array([float(r["step"]) for r in history])
    times = np.array([float(r["time"]) for r in history])
    loss = np.array([float(r["loss"]) for r in history])
    err = np.array([float(r.get("rel_l2", math.nan)) for r in history])
    fig = new_figure(13, 3.8)
    ax1, ax2, ax3 = (fig.add_subplot(1, 3, i) for i in (1, 2, 3))
    stages = [str(r["stage"]) for r in history]
    for stage in dict.fromkeys(stages):
        sel = np.array([s == stage for s in stages])
        ax1.semilogy(steps[sel], loss[sel], "o-", ms=2, label=stage)
    ax1.set(xlabel="step", ylabel="loss", title="loss")
    ax1.legend()
    ok = np.isfinite(err)
    if ok.any():
        ax2.semilogy(steps[ok], err[ok], "o-", ms=3)
        ax3.semilogy(times[ok], err[ok], "o-", ms=3)
    ax2.set(xlabel="step", ylabel="relative L2 error", title="error vs step")
    ax3.set(xlabel="training time [s]", ylabel="relative L2 error", title="error vs time")
    for ax in (ax1, ax2, ax3):
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(title, wrap=True)
    _save(fig, path)


def snapshot_times(problem: Problem, count: int = 4) -> np.ndarray:
    """``count`` equally spaced times from the start to the end of the time interval."""
    lo, hi = problem.geometry.bbox
    return np.linspace(lo[-1], hi[-1], count)


def plot_snapshots(problem: Problem, model: torch.nn.Module, path: Path, title: str = "",
                   times: Sequence[float] | None = None) -> None:
    """The solution at a few times (time-dependent problems): u(x, t_i) as lines, with
    the exact or reference solution dashed, in one space dimension; heat maps of the
    prediction (and of the error, when the solution is known) over the first two space
    axes otherwise."""
    times = snapshot_times(problem) if times is None else np.asarray(times, dtype=float)
    lo, hi = problem.geometry.bbox
    space_dim = problem.dim - 1
    k_out = problem.n_outputs
    known = "exact" if problem.exact is not None else "reference"
    if space_dim == 1:
        xs = np.linspace(lo[0], hi[0], 501)
        fig = new_figure(6.5 * k_out, 4.2)
        axes = [fig.add_subplot(1, k_out, c + 1) for c in range(k_out)]
        colors = [f"C{i}" for i in range(len(times))]
        for t, color in zip(times, colors):
            x = torch.from_numpy(np.column_stack([xs, np.full_like(xs, t)]))
            pred = _predict(model, x)
            ref = problem.solution_values(x)
            for c, ax in enumerate(axes):
                ax.plot(xs, pred[:, c], color=color, lw=2, label=f"t = {t:.3g}")
                if ref is not None:
                    ax.plot(xs, ref.numpy()[:, c], "--", color="k", lw=1, alpha=0.7)
        for c, ax in enumerate(axes):
            ax.set(xlabel=problem.variables[0], title=problem.outputs[c]
                   + ("" if problem.exact is None and problem.reference is None
                      else f" (dashed: {known})"))
            ax.legend()
            ax.grid(True, alpha=0.3)
    else:
        x2, a, b, _ = slice_grid(problem, 121)  # time is set below, per snapshot
        inside = problem.geometry.space.inside(x2[:, :space_dim]).numpy() \
            if hasattr(problem.geometry, "space") else np.ones(len(x2), dtype=bool)
        rows = 2 if (problem.exact is not None or problem.reference is not None) else 1
        aspect = map_aspect(problem)
        panel = 3.6  # inches a map's panel is wide
        fig = new_figure(panel * len(times), map_height(aspect, 3.2, panel) * rows * k_out)
        extent = (a[0], a[-1], b[0], b[-1])
        for j, t in enumerate(times):
            x = x2.clone()
            x[:, -1] = t
            pred = _predict(model, x)
            ref = problem.solution_values(x)
            for c in range(k_out):
                panels = [(pred[:, c], f"{problem.outputs[c]}, t = {t:.3g}", "viridis")]
                if ref is not None:
                    panels.append((np.abs(pred[:, c] - ref.numpy()[:, c]), "|error|", "magma"))
                for r, (values, label, cmap) in enumerate(panels):
                    ax = fig.add_subplot(rows * k_out, len(times), (c * rows + r) * len(times) + j + 1)
                    img = np.where(inside, values, np.nan).reshape(len(b), len(a))
                    im = ax.imshow(img, origin="lower", extent=extent, cmap=cmap,
                                   aspect="auto" if aspect is None else "equal")
                    map_colorbar(fig, im, ax, aspect, panel)
                    ax.set(xlabel=problem.variables[0], ylabel=problem.variables[1], title=label)
    fig.suptitle(title, wrap=True)
    _save(fig, path)


def plot_unknowns(history: Sequence[dict[str, Any]], path: Path, true: dict[str, float | None],
                  title: str = "") -> None:
    """Each learned coefficient of an inverse problem against the step, with its true
    value (when known) as a dashed line."""
    fig = new_figure(5.5 * len(true), 3.8)
    steps = np.array([float(r["step"]) for r in history])
    for i, (name, value) in enumerate(true.items()):
        ax = fig.add_subplot(1, len(true), i + 1)
        ax.plot(steps, [float(r[f"unknown_{name}"]) for r in history], "o-", ms=3, label="learned")
        if value is not None:
            ax.axhline(value, ls="--", color="k", lw=1, label=f"true {value:g}")
        ax.set(xlabel="step", ylabel=name, title=f"unknown {name}")
        ax.legend()
        ax.grid(True, alpha=0.3)
    fig.suptitle(title, wrap=True)
    _save(fig, path)
