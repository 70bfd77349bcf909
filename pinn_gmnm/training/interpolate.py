"""A Gaussian at every sample: the kernel interpolant, for fits that little data limits.

A fit from n samples in several dimensions can be limited by its data rather than by its
model: ``exp-sin-4d`` (2000 samples in 4-D, about 6.7 per axis) came out of growth at
0.16 and of the compact mixture (:mod:`.compact`) at 5.7e-2, while the PINN's MLP
reached 4.4e-2 from the same samples. A mixture with one isotropic Gaussian centred at
each sample, whose weights solve the interpolation conditions, is the Gaussian kernel
interpolant — in its kernel's native space the best recovery from those samples — and
it is a GMNM like any other (μ_i = x_i, W_i = I/σ, π by a linear solve). Its width σ
and a small ridge λ (the solve is (K + λI) π = f, as in kernel ridge regression) are
chosen by leave-one-out cross-validation in closed form (Rippa 1999: the error left out
at sample i is π_i / ((K + λI)⁻¹)_ii), for every λ from one eigendecomposition of K per
width. The stage keeps the interpolant only when its loss on the held-out samples
(:class:`~.heldout.HeldOut`) is below the mixture's it would replace.

Measured (the run's 2000 samples, 2-core CPU): ``exp-sin-4d`` 5.7e-2 → 4.2e-2 on the
catalogue's evaluation grid (12⁴ points, boundary included; leave-one-out chose σ = 1.4
× the samples' spacing and λ = 1e-3), 1.5e-2 on the grid's points at least 0.1 from the
boundary: half the grid lies nearer it, where the interpolant extrapolates toward the
samples' mean. (Interpolating the compact mixture's residual instead, on top of it, came
out at 5.4e-2: leave-one-out found no width that predicts that residual, 0.97.) On
20 000 random points of the square, ``front`` 1.1e-2 and ``multiscale`` 0.104, where the
compact mixture's 2.0e-5 and 0.101 are better and the held-out comparison keeps them (a
kernel of two widths, K_σ₁ + a K_σ₂ with σ₂ 0.5 to 1 spacing, found nothing of
``multiscale``'s small scale either: 0.098 at best, its 2000 samples about 4.5 a period);
``exp-sin`` 2.4e-6, where growth's 2.8e-7 is better. Seven widths, each one
eigendecomposition of the n × n matrix, take about 6 s at n = 2000.

The weights are the only unknowns solved (n of them for n samples, never more unknowns
than equations); the mixture's parameter count, which counts every centre and
projection, is n(d + d² + outputs) + outputs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor

from ..conditions import evaluate_value
from ..errors import GMNMError, require_positive
from ..fitting import is_fit_problem
from ..models.gmnm import GMNM
from .growth import Grow, restore, snapshot
from .heldout import HeldOut
from .stages import Stage
from .task import Task

WIDTHS = (1.0, 1.4, 2.0, 0.7, 2.8, 4.0, 0.5)
"""The widths tried, in units of the samples' spacing ((volume / n)^(1/d) of their
bounding box in the model's normalised coordinates); the likeliest first, for a run
whose budget ends before the last."""

RIDGES = (1e-12, 1e-10, 1e-8, 1e-6, 1e-4, 1e-3, 1e-2)
"""The ridges λ tried at each width (K's diagonal is 1)."""

MOST_SAMPLES = 4000
"""No interpolant on more samples: its n × n eigendecompositions (about 8 n² bytes
each, a few held at once, and time ∝ n³) would outgrow the stage's share of a run."""


class Choice(NamedTuple):
    """The interpolant chosen: its leave-one-out error, width σ, ridge λ, weights π (n, o)
    and bias b (o,)."""

    error: float
    sigma: float
    ridge: float
    weights: Tensor
    bias: Tensor


def leave_one_out(K: Tensor, y: Tensor, ridges: tuple[float, ...]
                  ) -> tuple[float, float, Tensor]:
    """(error, λ, weights) of the ridge λ whose leave-one-out error ‖π / diag((K + λI)⁻¹)‖
    (over ‖y‖) is lowest; ``K`` symmetric (n, n), ``y`` (n, o)."""
    lam, Q = torch.linalg.eigh(K)
    lam = lam.clamp_min(0.0)
    Qy = Q.T @ y
    Q2 = Q.square()
    scale = float(y.norm()) or 1.0
    best: tuple[float, float, Tensor] | None = None
    for ridge in ridges:
        inv = 1.0 / (lam + ridge)
        w = Q @ (inv[:, None] * Qy)
        err = float((w / (Q2 @ inv)[:, None]).norm()) / scale
        if best is None or err < best[0]:
            best = (err, ridge, w)
    assert best is not None
    return best


@dataclass(frozen=True)
class Interpolate(Stage):
    """Try the kernel interpolant of the fit's samples (see the module docstring) and keep
    it when its held-out loss is below the current mixture's. Only for fits (a problem
    whose residual is u − f); ``skip_below``: not tried when the held-out residual is
    already below this × the zero function's (growth's ``tol``, as
    :class:`~.compact.Compact` judges it); ``most_samples``: not tried on more samples."""

    skip_below: float = Grow.tol
    most_samples: int = MOST_SAMPLES
    kind: ClassVar[str] = "interpolate"

    def __post_init__(self) -> None:
        require_positive("interpolate skip_below", self.skip_below)
        require_positive("interpolate most_samples", self.most_samples, integer=True)

    def run(self, task: Task) -> None:
        model = task.model
        if not isinstance(model, GMNM):
            raise GMNMError(f"stage 'interpolate' trains a GMNM, not a {type(model).__name__}")
        problem = task.loss.problem
        if not is_fit_problem(problem):
            raise GMNMError("stage 'interpolate' fits samples: the problem must be a fit "
                            "(a residual u − f), e.g. one registered with register_target")
        layer = model.layer
        reason = self._skip_reason(task, layer.projections == layer.in_features)
        if reason is not None:
            task.events.append({"event": "interpolate skipped", "stage": self.kind,
                                "step": task.step, "reason": reason})
            return
        held = HeldOut(task, task.params)
        if held.best <= Grow.target(task, held, self.skip_below):
            task.events.append({"event": "interpolate skipped", "stage": self.kind,
                                "step": task.step,
                                "reason": "held-out residual below skip_below"})
            return
        x = task.interior_points()
        y = evaluate_value(problem.residual.function, x).reshape(len(x), 1)
        xn = model.normalize(x.to(torch.float64))
        chosen = self._choose(task, xn, y.to(torch.float64))
        if chosen is None:
            task.events.append({"event": "interpolate skipped", "stage": self.kind,
                                "step": task.step, "reason": "no width fitted in the time left"})
            return
        replaced, before = snapshot(task), held.best
        with torch.no_grad():
            d = layer.in_features
            layer._resize(len(xn))
            layer.means.copy_(xn)
            layer.set_projections(torch.eye(d, dtype=torch.float64).expand(len(xn), d, d)
                                  .to(layer.proj) / chosen.sigma)
            layer.weights.copy_(chosen.weights)
            layer.bias.copy_(chosen.bias)
        task.sync_params()
        now = held.value(task)
        kept = now < before
        task.events.append({"event": "interpolate", "stage": self.kind, "step": task.step,
                            "components": len(xn), "width": chosen.sigma, "ridge": chosen.ridge,
                            "leave_one_out": chosen.error, "held_out": now,
                            "replaced_held_out": before,
                            "kept": kept})
        if not kept:
            restore(task, replaced)
        total, _ = task.evaluate_loss()
        task.record(self.kind, float(total), force_eval=True)

    def _skip_reason(self, task: Task, isotropic: bool) -> str | None:
        n = len(task.loss.batch.interior) * task.loss.parallel.world
        if not isotropic:
            return "the model has fewer projections than dimensions (no isotropic Gaussian)"
        if n > self.most_samples:
            return f"{n} samples, more than most_samples = {self.most_samples}"
        if task.out_of_time():
            return "budget spent"
        return None

    def _choose(self, task: Task, xn: Tensor, y: Tensor) -> Choice | None:
        """The interpolant at samples ``xn`` (normalised) of values ``y`` (n, o) whose
        width and ridge have the least leave-one-out error among those that fit in the
        time left; None when none fitted."""
        n, d = xn.shape
        extent = (xn.max(dim=0).values - xn.min(dim=0).values).clamp_min(1e-12)
        spacing = (float(extent.prod()) / n) ** (1.0 / d)
        bias = y.mean(dim=0)
        d2 = torch.cdist(xn, xn).square_()
        best: Choice | None = None
        last = 0.0
        for factor in WIDTHS:
            if not task.step_fits(last):
                break
            start = time.perf_counter()
            sigma = factor * spacing
            K = torch.exp(d2 * (-0.5 / sigma**2))
            loo, ridge, w = leave_one_out(K, y - bias, RIDGES)
            del K
            if best is None or loo < best.error:
                best = Choice(loo, sigma, ridge, w, bias)
            last = time.perf_counter() - start
        return best if best is not None and math.isfinite(best.error) else None
