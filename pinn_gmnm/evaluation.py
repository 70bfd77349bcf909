"""Accuracy of a trained model on a fixed evaluation set.

Metrics: relative L2 error ‖u − u*‖₂ / ‖u*‖₂ and max |u − u*| against the exact
solution — or, when there is none, against the problem's numerical reference solution at
the reference's own points — and the RMS of the PDE residual. With several outputs the
relative L2 error of each is reported too (``rel_l2_<output>``). The evaluation set is a
regular grid for boxes (boundary included) and a dense scrambled Sobol' set otherwise;
it is the same for every model and seed, so numbers are comparable across runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._types import Points
from .errors import GMNMError
from .problem import Problem
from .sampling import Sobol

EVAL_POINTS = 20_000
"""About how many points the evaluation set has."""

QUICK_POINTS = 4096
"""How many of them the error shown during training uses."""

PREDICT_CHUNK = 4096
"""Points per forward pass when predicting many: a GMNM's (points × Gaussians) work
arrays then stay in cache (chunks of 16 384 took twice as long on a 201² grid)."""


def evaluation_points(problem: Problem, n: int = EVAL_POINTS) -> Points:
    """The fixed evaluation points for ``problem`` (float64)."""
    g = problem.geometry
    if g.is_box:
        lo, hi = g.bbox
        k = max(5, min(2001, round(n ** (1.0 / g.dim))))
        axes = [torch.linspace(l, h, k, dtype=torch.float64) for l, h in zip(lo, hi)]
        return torch.cartesian_prod(*axes).reshape(-1, g.dim)
    return g.sample_interior(2 ** math.ceil(math.log2(n)), Sobol(), seed=2024)


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
                if ref.dim != problem.dim or ref.n_outputs != problem.n_outputs:
                    raise GMNMError(
                        f"{problem.name}: the reference solution is {ref.dim}-D with "
                        f"{ref.n_outputs} value(s) per point; the problem is {problem.dim}-D "
                        f"with {problem.n_outputs} output(s)")
                x, v = ref.known()
                step = max(1, math.ceil(len(x) / (2 * n)))  # thin very large references
                return cls(problem, x[::step].to(device=device, dtype=dtype),
                           v[::step].to(device=device, dtype=dtype), f"reference: {ref.source}")
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

    def residual_rms(self, model: nn.Module, chunk: int = 4096) -> float:
        total, count = 0.0, 0
        for i in range(0, len(self.points), chunk):
            x = self.points[i:i + chunk]
            u = self.problem.field(model, x)
            with torch.enable_grad():
                rs = self.problem.residuals(u, x)
            total += sum(float(r.detach().square().sum()) for r in rs)
            count += sum(r.numel() for r in rs)
        return math.sqrt(total / count)

    def metrics(self, model: nn.Module) -> dict[str, float]:
        """``rel_l2``, ``max_abs`` (NaN without an exact solution) and ``residual_rms``."""
        out: dict[str, float] = {"rel_l2": math.nan, "max_abs": math.nan}
        if self.exact is not None:
            pred = self.predict(model)
            out["rel_l2"] = _rel_l2(pred, self.exact)
            out["max_abs"] = float((pred - self.exact).abs().max())
            if self.problem.n_outputs > 1:
                for c, name in enumerate(self.problem.outputs):
                    out[f"rel_l2_{name}"] = _rel_l2(pred[:, c], self.exact[:, c])
        out["residual_rms"] = self.residual_rms(model)
        return out


def _rel_l2(pred: Tensor, ref: Tensor) -> float:
    return float((pred - ref).norm() / ref.norm().clamp_min(torch.finfo(ref.dtype).tiny))
