"""Accuracy of a trained model on a fixed evaluation set.

Metrics: relative L2 error ‖u − u*‖₂ / ‖u*‖₂ and max |u − u*| against the exact
solution — or, when there is none, against the problem's numerical reference solution at
the reference's own points — and the RMS of the PDE residual. With several outputs the
relative L2 error of each is reported too (``rel_l2_<output>``), and that of each group
of outputs the problem declares as one vector field (``rel_l2_<group>``, e.g. a flow's
velocity (u, v)). The evaluation set is a regular grid for boxes (boundary included) and
a dense scrambled Sobol' set otherwise; it is the same for every model and seed, so
numbers are comparable across runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ._types import Points
from .problem import Problem
from .sampling import Sobol

EVAL_POINTS = 20_000
"""About how many points the evaluation set has."""

QUICK_POINTS = 4096
"""How many of them the error shown during training uses."""

PREDICT_CHUNK = 1024
"""Points per forward pass when predicting many: a GMNM's (points × Gaussians) work
arrays then stay in cache (with 1024 Gaussians on a 201² grid, chunks of 4096 took about
twice as long, and chunks of 16 384 four times)."""


def evaluation_points(problem: Problem, n: int = EVAL_POINTS) -> Points:
    """The fixed evaluation points for ``problem`` (float64)."""
    g = problem.geometry
    if g.is_box:
        lo, hi = g.bbox
        k = max(5, min(2001, round(n ** (1.0 / g.dim))))
        axes = [torch.linspace(l, h, k, dtype=torch.float64) for l, h in zip(lo, hi)]
        return torch.cartesian_prod(*axes).reshape(-1, g.dim)
    return g.sample_interior(2 ** math.ceil(math.log2(n)), Sobol(), seed=2024)


def thinned(n: int, most: int) -> Tensor:
    """Indices (ascending) of at most ``most`` of ``n`` reference points, drawn at random
    with a fixed seed. A stride would alias with the grid a reference is stored on: every
    third row of an (x, y, t) grid kept only every third time level of heat-2d."""
    if n <= most:
        return torch.arange(n)
    generator = torch.Generator().manual_seed(2024)
    return torch.randperm(n, generator=generator)[:most].sort().values


@dataclass
class Evaluator:
    """Computes metrics of models on one problem's evaluation set."""

    problem: Problem
    points: Points
    exact: Tensor | None
    against: str = "exact solution"

    @classmethod
    def for_problem(cls, problem: Problem, dtype: torch.dtype = torch.float64,
                    device: torch.device | str = "cpu", n: int = EVAL_POINTS) -> Evaluator:
        if problem.exact is None:
            ref = problem.reference_solution()
            if ref is not None:
                x, v = ref.known()
                keep = thinned(len(x), 2 * n)
                return cls(problem, x[keep].to(device=device, dtype=dtype),
                           v[keep].to(device=device, dtype=dtype), f"reference: {ref.source}")
        x = evaluation_points(problem, n).to(device=device, dtype=dtype)
        return cls(problem, x, problem.exact_values(x))

    @torch.no_grad()
    def predict(self, model: nn.Module, x: Points | None = None, chunk: int = PREDICT_CHUNK
                ) -> Tensor:
        x = self.points if x is None else x
        out = [model(x[i:i + chunk]) for i in range(0, len(x), chunk)]
        return torch.cat(out).reshape(len(x), -1)

    def quick_error(self, model: nn.Module) -> float:
        """Relative L2 error on a fixed subset of the evaluation set (NaN without exact)."""
        if self.exact is None:
            return math.nan
        step = max(1, len(self.points) // QUICK_POINTS)
        x, ref = self.points[::step], self.exact[::step]
        return _rel_l2(self.predict(model, x), ref)

    def residual_rms(self, model: nn.Module) -> float:
        """The RMS of the residual over the evaluation points (NaN where it is not finite
        at some: :meth:`measure` says where)."""
        rms, bad = self._residual(model)
        return math.nan if bad.any() else rms

    def _residual(self, model: nn.Module, chunk: int = PREDICT_CHUNK) -> tuple[float, Tensor]:
        """The RMS of the residual over the points where it is finite, and the mask of
        the points where it is not (any equation)."""
        total, count, bad = 0.0, 0, []
        for i in range(0, len(self.points), chunk):
            x = self.points[i:i + chunk]
            u = self.problem.field(model, x)
            with torch.enable_grad():
                rs = [r.detach() for r in self.problem.residuals(u, x)]
            finite = torch.stack([r.isfinite() for r in rs]).all(dim=0)
            total += sum(float(r[finite].square().sum()) for r in rs)
            count += int(finite.sum()) * len(rs)
            bad.append(~finite)
        return math.sqrt(total / count) if count else math.nan, torch.cat(bad)

    def metrics(self, model: nn.Module) -> dict[str, float]:
        """``rel_l2``, ``max_abs`` (NaN without an exact solution) and ``residual_rms``."""
        return self.measure(model)[0]

    def measure(self, model: nn.Module) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """The :meth:`metrics` and, for each one that is not finite, an event saying at how
        many points and where (see :func:`not_finite`). A metric is never computed over
        only part of the points: what the other points give is the event's ``elsewhere``."""
        out: dict[str, float] = {"rel_l2": math.nan, "max_abs": math.nan}
        events = []
        if self.exact is not None:
            pred, exact = self.predict(model), self.exact

            def errors(rows: Tensor) -> dict[str, float]:
                if not rows.any():
                    return {"rel_l2": math.nan, "max_abs": math.nan}
                p, e = pred[rows], exact[rows]
                return {"rel_l2": _rel_l2(p, e), "max_abs": float((p - e).abs().max())}

            wrong_exact, wrong_pred = ~exact.isfinite().all(dim=1), ~pred.isfinite().all(dim=1)
            bad = wrong_exact | wrong_pred
            out.update(errors(torch.ones_like(bad)))
            out.update(self.per_output(pred, exact))
            if bad.any():
                cause = " and ".join(c for c, b in (("exact solution", wrong_exact),
                                                    ("prediction", wrong_pred)) if b.any())
                events += [self._not_finite(k, cause, bad, v) for k, v in errors(~bad).items()]
        out["residual_rms"], bad = self._residual(model)
        if bad.any():
            events.append(self._not_finite("residual_rms", "residual", bad, out["residual_rms"]))
            out["residual_rms"] = math.nan
        return out, events

    def per_output(self, pred: Tensor, exact: Tensor) -> dict[str, float]:
        """With several outputs, the relative L2 error of each (``rel_l2_<output>``) and of
        each of the problem's groups taken as one vector field (``rel_l2_<group>``:
        ‖(u − u*, v − v*)‖₂ / ‖(u*, v*)‖₂ over the points, for a velocity (u, v)). A field
        whose solution is 0 at every point has no relative error: its RMS error is given
        instead (``rms_<name>``)."""
        p = self.problem
        if p.n_outputs == 1:
            return {}
        fields = {name: [c] for c, name in enumerate(p.outputs)}
        fields.update({group: [p.outputs.index(m) for m in members]
                       for group, members in p.groups.items()})
        out = {}
        for name, cols in fields.items():
            e = exact[:, cols]
            if bool((e == 0).all()):
                out[f"rms_{name}"] = float((pred[:, cols] - e).square().mean().sqrt())
            else:
                out[f"rel_l2_{name}"] = _rel_l2(pred[:, cols], e)
        return out

    def _not_finite(self, metric: str, cause: str, bad: Tensor, elsewhere: float) -> dict[str, Any]:
        x = self.points[bad].detach().double().cpu()
        lo, hi = x.min(dim=0).values.tolist(), x.max(dim=0).values.tolist()
        return {"event": "not finite", "metric": metric, "cause": cause,
                "points": int(bad.sum()), "of": len(self.points),
                "where": {v: [a, b] for v, a, b in zip(self.problem.variables, lo, hi)},
                "examples": x[:3].tolist(), "elsewhere": elsewhere}


def not_finite(event: dict[str, Any]) -> str:
    """A "not finite" event of :meth:`Evaluator.measure` in words: ``not finite at 1 of 2001
    evaluation points (x = 0): the residual is NaN or infinite there; 3.1e-05 elsewhere``."""
    where = ", ".join(f"{v} = {a:g}" if a == b else f"{v} in [{a:g}, {b:g}]"
                      for v, (a, b) in event["where"].items())
    elsewhere = event["elsewhere"]
    return (f"not finite at {event['points']} of {event['of']} evaluation points ({where}): the "
            f"{event['cause']} is NaN or infinite there"
            + (f"; {elsewhere:.3e} elsewhere" if elsewhere is not None and math.isfinite(elsewhere)
               else ""))


def _rel_l2(pred: Tensor, ref: Tensor) -> float:
    return float((pred - ref).norm() / ref.norm().clamp_min(torch.finfo(ref.dtype).tiny))
