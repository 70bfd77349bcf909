"""A solution pieced together in time: one model per time slab, one callable over the whole.

Time marching (:class:`~pinn_gmnm.training.march.March`) solves an evolution problem slab
by slab, [t_0, t_1], [t_1, t_2], …; each slab has its own model, built for that slab's
box. :class:`TimeSlabs` holds them and answers for the whole domain: a point with time t
goes to the slab with t_k ≤ t < t_{k+1} (the last slab also takes t = t_K), so
evaluation, plots, checkpoints and ``load_solution`` see one model as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from .._types import Points
from ..errors import GMNMError
from .base import Bounds
from .contract import Surrogate, closed_form_engine

if TYPE_CHECKING:
    from ..derivatives import DerivativeEngine


def slab_times(t0: float, t1: float, slabs: int) -> list[float]:
    """The ``slabs + 1`` boundaries of equal slabs of [t0, t1]."""
    return [t0 + (t1 - t0) * k / slabs for k in range(slabs)] + [t1]


class TimeSlabs(Surrogate):
    """Models ``pieces[k]`` for t in [times[k], times[k + 1]) (the last one closed), time
    being the last input coordinate. ``build(bounds)`` makes one piece for a slab's box;
    every piece has the same architecture, so a trained piece's parameters can start the
    next one (the same layout shifted in time).

    Derivatives are the pieces' (a point's slab is fixed): closed form when every piece
    offers it, else autograd. Training works on one piece at a time.
    """

    least_squares_by_default = False  # trained slab by slab, never as one block

    def __init__(self, build: Callable[[Bounds], nn.Module], bounds: Bounds,
                 slabs: int) -> None:
        super().__init__()
        if isinstance(slabs, bool) or not isinstance(slabs, int) or slabs < 1:
            raise GMNMError(f"slabs must be a whole number >= 1, got {slabs!r}")
        lo, hi = (tuple(float(v) for v in b) for b in bounds)
        self.times = slab_times(lo[-1], hi[-1], slabs)
        self.pieces = nn.ModuleList(build((lo[:-1] + (a,), hi[:-1] + (b,)))
                                    for a, b in zip(self.times[:-1], self.times[1:]))
        first = self.pieces[0]
        self.in_features = int(getattr(first, "in_features", len(lo)))
        self.out_features = int(getattr(first, "out_features", 1))

    @property
    def slabs(self) -> int:
        return len(self.pieces)

    def extra_repr(self) -> str:
        return f"slabs={self.slabs}, times={[round(t, 6) for t in self.times]}"

    def slab_of(self, t: Tensor) -> Tensor:
        """The index of the slab each time belongs to (clamped to the first and last)."""
        inner = torch.tensor(self.times[1:-1], dtype=t.dtype, device=t.device)
        return torch.bucketize(t.contiguous(), inner, right=True)

    def forward(self, x: Points) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise GMNMError(f"expected points of shape (n, {self.in_features}), got {tuple(x.shape)}")
        which = self.slab_of(x[:, -1])
        out = x.new_zeros(len(x), self.out_features)
        for k, piece in enumerate(self.pieces):
            rows = (which == k).nonzero()[:, 0]
            if len(rows):
                out = out.index_copy(0, rows, piece(x[rows]).reshape(len(rows), -1))
        return out

    def derivative_engine(self, x: Points) -> DerivativeEngine | None:
        """Each slab's points answered by its piece's closed-form engine (None: autograd)."""
        which = self.slab_of(x[:, -1])
        parts = []
        for k, piece in enumerate(self.pieces):
            rows = (which == k).nonzero()[:, 0]
            if len(rows):
                engine = closed_form_engine(piece, x[rows])
                if engine is None:
                    return None
                parts.append((rows, engine))
        return _Piecewise(len(x), parts)

    def copy_piece(self, source: int, target: int) -> None:
        """Start piece ``target`` from the parameters of piece ``source``."""
        with torch.no_grad():
            self.pieces[target].load_state_dict(self.pieces[source].state_dict())

    def bounds_of(self, k: int, bounds: Bounds) -> Bounds:
        """The box of slab ``k`` within the domain's box ``bounds``."""
        lo, hi = (tuple(float(v) for v in b) for b in bounds)
        return lo[:-1] + (self.times[k],), hi[:-1] + (self.times[k + 1],)


class _Piecewise:
    """A derivative engine made of the engines of disjoint sets of rows."""

    def __init__(self, n: int, parts: list[tuple[Tensor, DerivativeEngine]]) -> None:
        self.n, self.parts = n, parts

    def _join(self, ask: Callable[[DerivativeEngine], Tensor]) -> Tensor:
        out: Tensor | None = None
        for rows, engine in self.parts:
            v = ask(engine)
            if out is None:
                out = v.new_zeros(self.n, *v.shape[1:])
            out = out.index_copy(0, rows, v)
        assert out is not None
        return out

    def value(self) -> Tensor:
        return self._join(lambda e: e.value())

    def partial(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        return self._join(lambda e: e.partial(output, axes))

    def laplacian(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        return self._join(lambda e: e.laplacian(output, axes))


def pieces_of(model: nn.Module) -> Sequence[nn.Module]:
    """The pieces of a :class:`TimeSlabs` model, or the model itself as the only one."""
    return list(model.pieces) if isinstance(model, TimeSlabs) else [model]
