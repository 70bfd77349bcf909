"""The multilayer perceptron used as the MLP and PINN baselines, with forward-mode
derivatives (value, gradient and second derivatives pushed through the layers together).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from .._types import Points
from ..derivatives import AutogradEngine, DerivativeEngine
from ..errors import GMNMError, require_positive, unknown
from .base import Bounds, Normalize, default_bounds
from .head import LinearHead

Derivs = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
"""(z, f(z)) → (f'(z), f''(z))."""


def _tanh(z: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    d1 = 1 - y * y
    return d1, -2 * y * d1


def _sin(z: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    return torch.cos(z), -y


def _silu(z: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    s = torch.sigmoid(z)
    return s * (1 + z * (1 - s)), s * (1 - s) * (2 + z * (1 - 2 * s))


def _gelu(z: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    pdf = torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    cdf = 0.5 * (1 + torch.erf(z / math.sqrt(2)))
    return cdf + z * pdf, pdf * (2 - z * z)


def _softplus(z: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    s = torch.sigmoid(z)
    return s, s * (1 - s)


def _relu(z: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    return (z > 0).to(z), torch.zeros_like(z)


ACTIVATIONS: dict[str, tuple[Callable[[Tensor], Tensor], Derivs]] = {
    "tanh": (torch.tanh, _tanh),
    "sin": (torch.sin, _sin),
    "silu": (nn.functional.silu, _silu),
    "gelu": (nn.functional.gelu, _gelu),
    "softplus": (nn.functional.softplus, _softplus),
    "relu": (torch.relu, _relu),
}


class Activation(nn.Module):
    """An elementwise activation that also knows its first two derivatives."""

    def __init__(self, name: str) -> None:
        super().__init__()
        if name not in ACTIVATIONS:
            raise unknown("activation", name, ACTIVATIONS)
        self.name = name
        self.fn, self.derivs = ACTIVATIONS[name]

    def forward(self, z: Tensor) -> Tensor:
        return self.fn(z)

    def extra_repr(self) -> str:
        return self.name


class MLP(nn.Module):
    """Fully connected network: inputs scaled to [−1, 1]^d, ``depth`` hidden layers of
    ``width`` units with ``activation`` (tanh by default), then a linear output layer.

    Weights use Glorot (Xavier) normal initialisation and biases start at zero, the
    usual PINN recipe. Parameter count: (d + 1)w + (depth − 1)(w + 1)w + (w + 1)o.
    """

    def __init__(self, in_features: int, out_features: int = 1, width: int = 50, depth: int = 3,
                 activation: str = "tanh", *, bounds: Bounds | None = None) -> None:
        super().__init__()
        require_positive("width", width, integer=True)
        require_positive("depth", depth, integer=True)
        lo, hi = default_bounds(in_features, bounds)
        self.normalize = Normalize(lo, hi)
        sizes = [in_features] + [width] * depth
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.activation = Activation(activation)
        self.head = nn.Linear(width, out_features)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def features(self, x: Tensor) -> Tensor:
        """The last hidden layer's activations, shape (n, width)."""
        h = self.normalize(x)
        for lin in self.linears:
            h = self.activation(lin(h))
        return h

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    def derivative_engine(self, x: Points) -> DerivativeEngine:
        """Forward-mode first and second derivatives (autograd beyond)."""
        return JetEngine(self, x, head=True)

    def linear_head(self) -> LinearHead:
        """The output layer, over the last hidden layer's activations as features."""
        return LinearHead(lambda x: JetEngine(self, x, head=False), self.head.in_features,
                          self.head.weight, self.head.bias, transposed=True)


class JetEngine:
    """Values, gradients and second derivatives of an :class:`MLP` pushed forward
    through the layers together: for z = W h + b and y = f(z),

        ∂y = f'(z) ∂z,    ∂_a∂_b y = f''(z) ∂_a z ∂_b z + f'(z) ∂_a∂_b z.

    Only the second derivatives asked for are propagated (the diagonal for a Laplacian).
    With ``head=False`` the outputs are the last hidden layer's features.
    """

    def __init__(self, mlp: MLP, x: Points, *, head: bool) -> None:
        self.mlp, self.x, self.head = mlp, x, head
        self._value: Tensor | None = None
        self._first: Tensor | None = None
        self._second: dict[tuple[int, int], Tensor] = {}
        self._fallback: DerivativeEngine | None = None

    def _out(self, t: Tensor, bias: bool = False) -> Tensor:
        """Apply the output layer (without bias for derivatives) to per-feature values."""
        if not self.head:
            return t
        w = self.mlp.head.weight
        if t.ndim == 2:
            return t @ w.T + (self.mlp.head.bias if bias else 0)
        return torch.einsum("nw...,ow->no...", t, w)

    def _propagate(self, pairs: list[tuple[int, int]]) -> None:
        """One forward pass computing value, all first derivatives and ``pairs``."""
        m = self.mlp
        x = self.x
        d = x.shape[1]
        h = m.normalize(x)
        inv = 1.0 / torch.tensor(m.normalize.half_width, dtype=x.dtype, device=x.device)
        J = torch.diag_embed(inv).expand(len(x), d, d)           # (n, width, d)
        S = {p: x.new_zeros(len(x), d) for p in pairs}           # (n, width) each
        for lin in m.linears:
            z = lin(h)
            Jz = torch.einsum("nid,oi->nod", J, lin.weight)
            Sz = {p: s @ lin.weight.T for p, s in S.items()}
            h = m.activation(z)
            d1, d2 = m.activation.derivs(z, h)
            S = {(a, b): d2 * Jz[..., a] * Jz[..., b] + d1 * Sz[(a, b)] for (a, b) in pairs}
            J = d1[..., None] * Jz
        self._value = self._out(h, bias=True)
        self._first = self._out(J)
        for p, s in S.items():
            self._second[p] = self._out(s)

    def value(self) -> Tensor:
        if self._value is None:
            self._propagate([])
        return self._value

    def partial(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        if len(axes) == 0:
            out = self.value()
        elif len(axes) == 1:
            if self._first is None:
                self._propagate([])
            out = self._first[..., axes[0]]
        elif len(axes) == 2:
            if axes not in self._second:
                self._propagate([axes])
            out = self._second[axes]
        else:
            if not self.head:
                raise GMNMError(f"derivatives of order {len(axes)} are not available to the "
                                "least-squares solvers (at most 2)")
            if self._fallback is None:
                self._fallback = AutogradEngine(self.mlp, self.x)
            return self._fallback.partial(output, axes)
        return out if output is None else out[:, output]

    def laplacian(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        missing = [(a, a) for a in axes if (a, a) not in self._second]
        if missing:
            self._propagate(missing)
        out = sum(self._second[(a, a)] for a in axes)
        return out if output is None else out[:, output]
