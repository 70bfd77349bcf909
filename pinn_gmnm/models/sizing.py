"""Parameter-matched model sizes, so that comparisons pit networks of equal size.

Every registered model may name one integer option that scales it (GMNM: the number of
Gaussians; MLP, PINN, KAN: the width) in its :class:`~.ModelSpec` (``size_option``).
:func:`match_parameters` picks the value of that option whose parameter count is closest
to a target, counting real models (built without touching the global random state).
When that option alone cannot come within the tolerance (small KANs: a 1D KAN of width 3
has 157 parameters, of width 4 already 249), a second option named by ``fine_size_option``
(KAN: the grid size) is varied too, next to the closest values of the first, staying as
near its usual value as the tolerance allows.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import GMNMError, require_positive
from .base import Bounds, count_parameters

TOLERANCE = 0.10
"""Matched sizes are within ±10 % of the target."""


def size_option(name: str) -> str:
    """The option that scales model ``name`` (a clear error when it has none)."""
    from . import MODELS

    option = MODELS.get(name).size_option
    if option is None:
        raise GMNMError(f"model '{name}' has no size option, so it cannot be parameter-matched; "
                        "give its options explicitly")
    return option


def parameter_count(name: str, in_features: int, out_features: int, *, bounds: Bounds,
                    equations: int | None = None, conditions: bool | None = None,
                    isotropic: bool | None = None, **options: Any) -> int:
    """Trainable parameters of model ``name`` with ``options`` (global RNG untouched),
    laid out for ``equations``, ``conditions`` and ``isotropic`` (see
    :func:`~.build_model`)."""
    from . import build_model

    with torch.random.fork_rng(devices=[]):
        return count_parameters(build_model(name, in_features, out_features, bounds=bounds,
                                            equations=equations, conditions=conditions,
                                            isotropic=isotropic, **options))


def match_parameters(name: str, in_features: int, out_features: int, target: int, *,
                     bounds: Bounds, tolerance: float = TOLERANCE, **options: Any) -> dict[str, Any]:
    """``options`` plus the size option whose parameter count is closest to ``target``.

    Raises GMNMError when no size comes within ``tolerance`` (a fraction) of the target.
    """
    from . import MODELS

    require_positive("target parameter count", target, integer=True)
    option = size_option(name)

    def count(**sizes: int) -> int:
        return parameter_count(name, in_features, out_features, bounds=bounds,
                               **{**options, **sizes})

    def within(n: int) -> bool:
        return abs(n - target) <= tolerance * target

    lo, hi = 1, 1
    while count(**{option: hi}) < target:
        lo, hi = hi, hi * 2
        if hi > 1 << 24:
            raise GMNMError(f"cannot size model '{name}' to {target} parameters")
    while hi - lo > 1:  # smallest value with count >= target lies in (lo, hi]
        mid = (lo + hi) // 2
        if count(**{option: mid}) >= target:
            hi = mid
        else:
            lo = mid
    best = min((hi, max(1, hi - 1)), key=lambda v: abs(count(**{option: v}) - target))
    got = count(**{option: best})
    spec = MODELS.get(name)
    fine = spec.fine_size_option
    if not within(got) and fine is not None and fine not in options:
        counts = {(v, g): count(**{option: v, fine: g})
                  for v in sorted({max(1, best - 1), best, best + 1}) for g in range(2, 31)}
        usual = spec.defaults[fine]
        close = [p for p, n in counts.items() if within(n)]
        if close:  # the one nearest the usual value of the second option
            v, g = min(close, key=lambda p: (abs(p[1] - usual), abs(counts[p] - target)))
            return {**options, option: v, fine: g}
    if not within(got):
        raise GMNMError(
            f"model '{name}' cannot be sized to {target} parameters within ±{tolerance:.0%} "
            f"(closest: {option}={best} with {got}); choose a larger --params"
        )
    return {**options, option: best}
