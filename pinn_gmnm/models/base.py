"""Pieces every model shares: input scaling to the domain and parameter counting."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..errors import GMNMError

Bounds = tuple[Sequence[float], Sequence[float]]


class Normalize(nn.Module):
    """Maps the box [lo, hi] affinely onto [−1, 1]^d: x' = (x − c) / h.

    Models scale their inputs with this so that training behaves the same whatever
    the physical size of the domain; problems never scale anything themselves.
    """

    def __init__(self, lo: Sequence[float], hi: Sequence[float]) -> None:
        super().__init__()
        self.lo, self.hi = tuple(float(v) for v in lo), tuple(float(v) for v in hi)
        if len(self.lo) != len(self.hi) or any(h <= l for l, h in zip(self.lo, self.hi)):
            raise GMNMError(f"input bounds need lo < hi on every axis, got {list(lo)}, {list(hi)}")
        # Kept as Python floats (not buffers) so the scaling is exact in any dtype.
        self.center = tuple((h + l) / 2 for l, h in zip(self.lo, self.hi))
        self.half_width = tuple((h - l) / 2 for l, h in zip(self.lo, self.hi))

    def forward(self, x: Tensor) -> Tensor:
        c = torch.tensor(self.center, dtype=x.dtype, device=x.device)
        h = torch.tensor(self.half_width, dtype=x.dtype, device=x.device)
        return (x - c) / h

    def extra_repr(self) -> str:
        return f"lo={list(self.lo)}, hi={list(self.hi)}"


def default_bounds(dim: int, bounds: Bounds | None) -> Bounds:
    """[−1, 1]^d unless bounds are given; checks their length."""
    if bounds is None:
        return (-1.0,) * dim, (1.0,) * dim
    lo, hi = bounds
    if len(lo) != dim or len(hi) != dim:
        raise GMNMError(f"domain bounds {bounds} do not have {dim} coordinates")
    return tuple(lo), tuple(hi)


def glorot_(module: nn.Module) -> None:
    """Glorot (Xavier) normal weights and zero biases for every ``nn.Linear`` in
    ``module``: the usual PINN initialisation."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            nn.init.zeros_(m.bias)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars in ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
