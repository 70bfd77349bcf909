"""Adaptive growth: narrower Gaussians where the residual is largest (greedy adaptive RBF).

One fixed width cannot serve a solution with a front of width 1e-2 and smooth parts: broad
Gaussians smear the front, narrow ones everywhere cost more unknowns than there are
equations. :class:`Grow` starts from the model's least-squares solution and repeats

1. find the training points where the weighted residual |r_i| is largest (for a fit: the
   training error u(x_i) − f(x_i)); keep the largest peaks no closer than the new width
   to each other;
2. add a Gaussian at each, isotropic, half as wide as the narrowest Gaussian already
   covering that point (within one standard deviation): each round refines by a factor
   of two where it is needed, a multiscale mixture;
3. re-solve the output layer by least squares, and remove Gaussians whose share of the
   fit |θ_i| ‖J_i‖ is negligible (below ``prune`` × the fitted function's size ‖J θ‖);
4. check the loss on held-out collocation points (another seed, as
   :class:`~.heldout.HeldOut` draws them): after ``patience`` rounds without a new best,
   go back to the best mixture and stop;

until the unknowns reach the equations (``oversampling``: never more unknowns than
equations / ``oversampling``), ``rounds`` rounds, or the budget. The loss terms are
equilibrated once, at the start, and kept: every round solves the same objective.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ..errors import GMNMError, require_positive
from ..models.gmnm import GMNM
from .heldout import HeldOut
from .linear import (check_affine, check_linear, equilibrate_linear, fit_head, linear_head,
                     linear_system)
from .stages import Stage, _check_steps, step_limit
from .task import Task


def residual_points(task: Task) -> tuple[Tensor, Tensor]:
    """Every training point with the magnitude of its weighted residual (the residual
    scaled as in the loss, √(w_t / n_t) |r_t,i|): points (N, d), magnitudes (N,)."""
    loss = task.loss
    with torch.no_grad():
        rs = loss.residuals(task.model)
    n_pde = len(rs) - len(loss.problem.conditions)
    xs = [loss.batch.interior] * n_pde + list(loss.batch.conditions)
    mags = [r.abs() * math.sqrt(w / c) for r, w, c in zip(rs, loss.weights, loss.counts)]
    return torch.cat(xs), torch.cat(mags)


def peaks(x: Tensor, score: Tensor, count: int, radius: Tensor) -> Tensor:
    """Indices of up to ``count`` points of largest ``score``, greedily, each farther than
    its own ``radius`` (max-norm) from every point picked before it."""
    order = torch.argsort(score, descending=True)
    picked: list[int] = []
    for i in order.tolist():
        if len(picked) >= count:
            break
        if picked:
            dist = (x[picked] - x[i]).abs().amax(dim=1)
            if bool((dist <= radius[i]).any()):
                continue
        picked.append(i)
    return torch.tensor(picked, dtype=torch.long)


def child_widths(model: GMNM, x: Tensor) -> Tensor:
    """For points ``x`` (normalised), half the width σ of the narrowest Gaussian whose
    one-σ ellipsoid holds the point (of the narrowest overall where none does), and at
    most the spacing of the initial layout (its widths are ``width_factor`` × that
    spacing, broad for conditioning: refinement starts at the spacing itself)."""
    layer = model.layer
    with torch.no_grad():
        q = layer.mahalanobis(x.to(layer.means))  # (n, m)
        sigma = (layer.in_features / layer.precision().diagonal(dim1=1, dim2=2).sum(1)).sqrt()
        covering = torch.where(q <= 1.0, sigma[None, :], torch.full_like(q, math.inf))
        narrowest = covering.amin(dim=1)
        narrowest = torch.where(torch.isfinite(narrowest), narrowest, sigma.min())
    return torch.minimum(0.5 * narrowest, sigma.max() / model.width_factor)


@dataclass(frozen=True)
class Grow(Stage):
    """Grow a GMNM where the residual is largest, re-solving by least squares (see the
    module docstring). ``steps``: rounds (None: until the budget, the equations or the
    held-out check stop it); ``fraction``: Gaussians added per round, as a fraction of the
    current count; ``oversampling``: equations per unknown kept at least; ``prune``:
    relative share below which a Gaussian is removed; ``patience``: rounds the held-out
    loss may fail to improve before the stage stops and goes back to the best mixture. Linear problems and GMNM models only.
    Every round is recorded (``grow``) with a ``grew`` event: Gaussians added, removed,
    their width, and the held-out loss."""

    steps: int | None = None
    fraction: float = 0.1
    oversampling: float = 1.0
    prune: float = 1e-10
    patience: int = 2
    rcond: float | None = None
    equilibrate: bool = True
    kind: ClassVar[str] = "grow"

    def __post_init__(self) -> None:
        _check_steps("grow steps", self.steps, open_ended=True)
        require_positive("grow fraction", self.fraction)
        require_positive("grow oversampling", self.oversampling)
        if not 0 <= self.prune < 1:
            raise GMNMError(f"grow prune must be in [0, 1), got {self.prune!r}")

    def run(self, task: Task) -> None:
        if self.steps == 0:
            return
        model = task.model
        if not isinstance(model, GMNM):
            raise GMNMError(f"stage 'grow' grows a GMNM, not a {type(model).__name__}; "
                            "use lstsq or varpro for this model")
        check_linear(task.loss.problem)
        saved = task.resumed()
        done = 0 if saved is None else int(saved["round"])
        if saved is None:
            head = linear_head(model)
            check_affine(task.loss, model, head)
            if self.equilibrate:
                equilibrate_linear(task, head, self.kind)
            fit_head(task.loss, model, head, self.rcond)
        equations = len(linear_system(task.loss, model, linear_head(model))[1])
        limit = math.floor(equations / self.oversampling) // task.loss.problem.n_outputs - 1
        held_out = HeldOut(task, task.params) if task.collocation is not None else None
        best = held_out.value(task) if held_out is not None else math.nan
        idle = 0 if saved is None else int(saved["idle"])
        kept = None if saved is None else saved["kept"]
        while done < step_limit(self.steps) and not task.out_of_time():
            room = limit - model.layer.components
            count = min(room, max(1, math.ceil(self.fraction * model.layer.components)))
            if count <= 0:
                task.events.append({"event": "grow stop", "stage": self.kind, "step": task.step,
                                    "reason": "unknowns reached the equations"})
                break
            if idle == 0:
                kept = copy.deepcopy(model.state_dict())
            event = self.grow_once(task, count)
            now = held_out.value(task) if held_out is not None else math.nan
            event["held_out"] = now
            if held_out is not None and not now < best:  # NaN counts as a rise
                idle += 1
                if idle > self.patience:  # back to the best mixture, and stop
                    model.load_state_dict(kept)
                    task.sync_params()
                    task.events.append({"event": "grow stop", "stage": self.kind,
                                        "step": task.step, "reason": "held-out loss rose",
                                        "held_out": now, "held_out_best": best})
                    break
            else:
                best, idle = now, 0
            done += 1
            task.events.append(event)
            total, _ = task.evaluate_loss()
            task.record(self.kind, float(total), force_eval=True)
            task.safe_point({"round": done, "idle": idle, "kept": kept if idle else None},
                            loss=float(total))

    def grow_once(self, task: Task, count: int) -> dict[str, float | int | str]:
        """One round: ``count`` Gaussians at the residual's peaks, re-solve, prune."""
        model = task.model
        assert isinstance(model, GMNM)
        layer = model.layer
        x, score = residual_points(task)
        x = model.normalize(x)
        widths = child_widths(model, x)
        chosen = peaks(x, score, count, widths)
        sigma = widths[chosen]
        d, k = layer.in_features, layer.projections
        if k == d:
            proj = torch.eye(d, dtype=sigma.dtype).expand(len(chosen), d, d) / sigma[:, None, None]
        else:
            proj = torch.randn(len(chosen), k, d, dtype=sigma.dtype) / (
                sigma[:, None, None] * math.sqrt(k))
        layer.add_components(x[chosen], proj)
        task.sync_params()
        head = linear_head(model)
        solution = fit_head(task.loss, model, head, self.rcond)
        removed = self.prune_negligible(task, solution.theta)
        return {"event": "grew", "stage": self.kind, "step": task.step, "added": len(chosen),
                "removed": removed, "components": layer.components,
                "width_min": float(sigma.min()), "width_max": float(sigma.max()),
                "cond": solution.cond, "rank": solution.rank}

    def prune_negligible(self, task: Task, theta: Tensor) -> int:
        """Remove Gaussians whose share |θ_i| ‖J_i‖ of the fit is below ``prune`` × the
        size ‖J θ‖ of the fitted function (not × the largest share: broad Gaussians cancel
        with shares far above the function), re-solving when any went; returns how many."""
        if self.prune == 0:
            return 0
        model = task.model
        assert isinstance(model, GMNM)
        m, n_out = model.layer.components, task.loss.problem.n_outputs
        with torch.no_grad():
            J, _ = linear_system(task.loss, model, linear_head(model))
            share = (theta.abs() * J.norm(dim=0)).reshape(n_out, m + 1)[:, :m].amax(dim=0)
            scale = float((J @ theta).norm())  # the fitted function's size (in the rows)
        keep = share >= self.prune * scale
        if bool(keep.all()):
            return 0
        model.layer.keep_components(keep)
        task.sync_params()
        fit_head(task.loss, model, linear_head(model), self.rcond)
        return int((~keep).sum())
