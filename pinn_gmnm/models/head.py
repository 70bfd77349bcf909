"""Linear output layers, which the least-squares solvers fit exactly.

A model whose output is ``features(x) @ W + b`` exposes a :class:`LinearHead`: the
features (as a derivative engine with one output per feature) and the weights W, b.
For a linear PDE with linear conditions every residual is then affine in (W, b), so the
best (W, b) for fixed features is a linear least-squares problem.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._types import Points
from ..derivatives import DerivativeEngine


@dataclass
class LinearHead:
    """The last, linear layer of a model: output = features(x) @ weight + bias.

    ``weight`` is stored (m, o) (``transposed=False``) or (o, m) like ``nn.Linear``
    (``transposed=True``).
    """

    features: Callable[[Points], DerivativeEngine]
    n_features: int
    weight: nn.Parameter
    bias: nn.Parameter
    transposed: bool = False

    @property
    def n_outputs(self) -> int:
        return self.bias.shape[0]

    def head_parameters(self) -> list[nn.Parameter]:
        return [self.weight, self.bias]

    def get(self) -> Tensor:
        """The head as one (m + 1, o) matrix: weights, then the bias row."""
        w = self.weight.T if self.transposed else self.weight
        return torch.cat([w, self.bias[None, :]]).detach()

    def in_parameter_order(self, T: Tensor) -> Tensor:
        """``T`` (..., m + 1, o), laid out as :meth:`get` lays out the head, flattened over
        its last two axes in the order of :meth:`head_parameters` (the weights as stored,
        then the bias): (..., (m + 1) o)."""
        if not self.transposed:  # already in that order: a view, not a copy
            return T.reshape(*T.shape[:-2], -1)
        w, b = T[..., :-1, :].transpose(-1, -2), T[..., -1, :]
        return torch.cat([w.reshape(*T.shape[:-2], -1), b], dim=-1)

    @torch.no_grad()
    def set(self, theta: Tensor) -> None:
        """Write an (m + 1, o) matrix (weights, then bias row) into the head."""
        theta = theta.to(self.weight)
        w, b = theta[:-1], theta[-1]
        self.weight.copy_(w.T if self.transposed else w)
        self.bias.copy_(b)


class ConstantColumn:
    """Wraps a feature engine with one more output, the constant 1 (for the bias)."""

    def __init__(self, engine: DerivativeEngine) -> None:
        self.engine = engine

    def value(self) -> Tensor:
        v = self.engine.value()
        return torch.cat([v, v.new_ones(len(v), 1)], dim=1)

    def partial(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        if not axes:
            v = self.value()
            return v if output is None else v[:, output]
        return self._pad(self.engine.partial(None, axes), output)

    def laplacian(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        return self._pad(self.engine.laplacian(None, axes), output)

    @staticmethod
    def _pad(d: Tensor, output: int | None) -> Tensor:
        d = torch.cat([d, d.new_zeros(len(d), 1)], dim=1)
        return d if output is None else d[:, output]
