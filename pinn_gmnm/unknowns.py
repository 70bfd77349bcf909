"""Unknown coefficients of inverse problems, learned from data together with u.

An :class:`Unknown` is a scalar trainable parameter that a problem's residual uses like
a number: ``-a * u.laplacian() - f(x)``. It is created in the problem's factory and
listed in ``Problem(unknowns=[a])``; :func:`~pinn_gmnm.training.solve` trains it with the
model's parameters (moving it to the run's dtype and device) and reports its learned
value, and its error when the true value is known.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .errors import GMNMError


class Unknown(nn.Module):
    """A scalar coefficient to be learned.

    Args:
        name: how it is reported (``metrics.json`` key ``unknown_<name>``).
        initial: the starting guess.
        true: the value that generated the data, when known (for the reported error).
        positive: learn log(value) so the value stays positive (diffusivities, rates).

    In residuals use it like a number (``a * u.d("xx")``, ``a ** 2``, ``1 / a``), or
    ``a.value`` (a 0-d tensor) inside torch functions (``torch.exp(a.value)``).
    """

    def __init__(self, name: str, initial: float = 1.0, *, true: float | None = None,
                 positive: bool = False) -> None:
        super().__init__()
        if not name or not name.isidentifier():
            raise GMNMError(f"an unknown needs a name that is an identifier, got {name!r}")
        if not math.isfinite(initial) or (positive and not initial > 0):
            raise GMNMError(f"unknown '{name}': initial value must be finite"
                            f"{' and positive' if positive else ''}, got {initial!r}")
        self.name, self.true, self.positive = name, true, positive
        start = math.log(initial) if positive else float(initial)
        self.raw = nn.Parameter(torch.tensor(start, dtype=torch.float64))

    @property
    def value(self) -> Tensor:
        return self.raw.exp() if self.positive else self.raw

    def forward(self) -> Tensor:
        return self.value

    def __float__(self) -> float:
        return float(self.value.detach())

    def extra_repr(self) -> str:
        true = "" if self.true is None else f", true={self.true:g}"
        return f"{self.name!r}, value={float(self):.6g}{true}"

    @torch.no_grad()
    def assign(self, value: float) -> None:
        """Set the current value (e.g. to ``true``, to check a problem's residuals)."""
        self.raw.fill_(math.log(value) if self.positive else float(value))

    def report(self) -> dict[str, float]:
        """``unknown_<name>`` and, with a true value, ``unknown_<name>_error`` (relative)."""
        v = float(self)
        out = {f"unknown_{self.name}": v}
        if self.true is not None:
            out[f"unknown_{self.name}_error"] = abs(v - self.true) / max(abs(self.true), 1e-300)
        return out

    # arithmetic, so residuals read like the equation
    def __neg__(self) -> Tensor:
        return -self.value
    def __add__(self, o):
        return self.value + o
    def __radd__(self, o):
        return o + self.value
    def __sub__(self, o):
        return self.value - o
    def __rsub__(self, o):
        return o - self.value
    def __mul__(self, o):
        return self.value * o
    def __rmul__(self, o):
        return o * self.value
    def __truediv__(self, o):
        return self.value / o
    def __rtruediv__(self, o):
        return o / self.value
    def __pow__(self, o):
        return self.value ** o
