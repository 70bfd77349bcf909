"""The Gaussians' values and derivatives at a point set, kept while nothing they depend on
changes.

Newton's method on a GMNM's output layer evaluates the residual many times on the same
points with the same Gaussians: the Jacobian's quantities, each trial step, the loss
after it. Only the mixing weights change, yet each evaluation recomputed every (n, m)
matrix of features (exp of a quadratic form, then a matrix product per derivative) —
half of a ``burgers`` march's time. Evaluations without autograd (where no graph has to
run through the features) now take them from this cache and only mix them with the
current weights.

An entry is valid while the points and every parameter of the Gaussians are the same
tensors, unmodified (identity, storage address — the entry keeps the storages alive, so
no other data can take their place — and version counter, which every in-place write
bumps: a move of the centres, a loaded state dict); an answer handed out and then
modified in place is noticed by its own version counter, and the entry is computed
again (an answer may be the engine's own matrix). The cache is
shared by all models and bounded (``ELEMENTS`` numbers in all, least recently used
first out), so a march's finished slabs do not hold memory; features of more than a
sixteenth of it at one point set are not cached.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import torch
from torch import Tensor

ELEMENTS = 2**26
"""The most numbers the cache holds in all (512 MiB in float64)."""


def _stamp(t: Tensor) -> tuple[int, int, int, torch.dtype, torch.device]:
    return id(t), t._version, t.data_ptr(), t.dtype, t.device


class _Entry:
    """The features of one point set: the engine that computes them and its answers."""

    def __init__(self, make: Callable[[], Any], keep: Sequence[Tensor]) -> None:
        # their storages kept alive, so that no other tensor's data can take their
        # addresses while the entry lives (``param.data = …`` swaps a parameter's storage
        # without a new version: only its address tells)
        self.make, self.keep = make, tuple(t.detach() for t in keep)
        self.size, self.cached = 0, False  # (cached: counted in the cache's total)
        self.renew()

    def renew(self) -> None:
        """Build the engine afresh and forget its answers (one was written over, and an
        answer may be the engine's own matrix)."""
        self.engine = self.make()
        self.answers: dict[Hashable, tuple[Tensor, int]] = {}
        self.measure()

    def measure(self) -> None:
        """Count the numbers it holds (its answers and the engine's own matrices) into
        the cache's total."""
        global _TOTAL
        held = [t for t, _ in self.answers.values()]
        for v in vars(self.engine).values():
            held += [v] if isinstance(v, Tensor) else \
                [t for t in v.values() if isinstance(t, Tensor)] if isinstance(v, dict) else []
        size = sum(t.numel() for t in held)
        if self.cached:
            _TOTAL += size - self.size
        self.size = size


_CACHE: OrderedDict[Hashable, _Entry] = OrderedDict()
_TOTAL = 0  # the numbers the entries in _CACHE hold

ENTRIES = 32
"""The most point sets the cache holds (a run evaluates a few at a time: the collocation
points of each term, held-out points)."""


def clear() -> None:
    """Drop every cached feature."""
    global _TOTAL
    _CACHE.clear()
    _TOTAL = 0


def cached_features(x: Tensor, parameters: Sequence[Tensor], extra: Hashable,
                    make: Callable[[], Any], size: int) -> Any | None:
    """A :class:`CachedEngine` over ``make()`` (a features engine at points ``x`` that
    depends on ``parameters`` and the hashable ``extra`` only, whose answers hold ``size``
    numbers each), shared while they are unchanged; None when the features must not be
    cached (autograd is on, or an answer would take more than a sixteenth of the cache)."""
    global _TOTAL
    if torch.is_grad_enabled() or 16 * size > ELEMENTS:
        return None
    try:
        key = (_stamp(x), tuple(_stamp(p) for p in parameters), extra)
    except RuntimeError:  # inside torch.func's transforms: tensors without storage
        return None
    entry = _CACHE.get(key)
    if entry is None:
        entry = _Entry(make, (x, *parameters))
        _CACHE[key] = entry
        entry.cached = True
        _TOTAL += entry.size
    _CACHE.move_to_end(key)
    _trim()
    return CachedEngine(entry)


def _trim() -> None:
    """Drop the least recently used entries beyond ``ENTRIES`` or ``ELEMENTS`` (never the
    last one)."""
    global _TOTAL
    while len(_CACHE) > 1 and (len(_CACHE) > ENTRIES or _TOTAL > ELEMENTS):
        _, old = _CACHE.popitem(last=False)
        _TOTAL -= old.size
        old.cached = False  # (an engine still using it counts no more)


class CachedEngine:
    """The derivative engine of cached features: each question asked once of the
    underlying engine, and answered again from memory."""

    def __init__(self, entry: _Entry) -> None:
        self._entry = entry

    def _ask(self, key: Hashable, compute: Callable[[Any], Tensor]) -> Tensor:
        entry = self._entry
        if torch.is_grad_enabled():  # asked under autograd after all: afresh, with its graph
            return compute(entry.make())
        if any(t._version != v for t, v in entry.answers.values()):
            entry.renew()  # an answer was written over
        found = entry.answers.get(key)
        if found is not None:
            return found[0]
        value = compute(entry.engine)
        entry.answers[key] = (value, value._version)
        entry.measure()
        _trim()
        return value

    def value(self) -> Tensor:
        return self._ask(("value",), lambda engine: engine.value())

    def partial(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        return self._ask(("partial", output, tuple(axes)),
                         lambda engine: engine.partial(output, axes))

    def laplacian(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        return self._ask(("laplacian", output, tuple(axes)),
                         lambda engine: engine.laplacian(output, axes))
