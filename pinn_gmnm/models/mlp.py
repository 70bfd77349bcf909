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
from .base import Bounds, Normalize, default_bounds, glorot_
from .contract import Surrogate
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


class MLP(Surrogate):
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
        self.in_features, self.out_features = in_features, out_features
        lo, hi = default_bounds(in_features, bounds)
        self.normalize = Normalize(lo, hi)
        sizes = [in_features] + [width] * depth
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.activation = Activation(activation)
        self.head = nn.Linear(width, out_features)
        glorot_(self)

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


class PairJetEngine:
    """Base of forward-mode engines that push values, gradients and chosen second
    derivatives ∂_a∂_b through a network in one pass. Subclasses implement
    ``_propagate(pairs)``, which sets ``_value`` (n, k), ``_first`` (n, k, d) and
    ``_second[(a, b)]`` (n, k); derivatives above second order fall back to autograd.
    """

    def __init__(self, net: nn.Module, x: Points, *, head: bool) -> None:
        self.mlp, self.x, self.head = net, x, head
        self._value: Tensor | None = None
        self._first: Tensor | None = None
        self._second: dict = {}
        self._fallback: DerivativeEngine | None = None

    def _propagate(self, pairs: list[tuple[int, int]]) -> None:
        raise NotImplementedError

    def value(self) -> Tensor:
        if self._value is None:
            self._propagate([])
        return self._value

    def _first_derivatives(self) -> Tensor:
        """(n, k, d)."""
        if self._first is None:
            self._propagate([])
        return self._first

    def _mixed(self, axes: tuple[int, int]) -> Tensor:
        """∂_a∂_b of the outputs, (n, k)."""
        if axes not in self._second:
            self._propagate([axes])
        return self._second[axes]

    def partial(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        if len(axes) == 0:
            out = self.value()
        elif len(axes) == 1:
            out = self._first_derivatives()[..., axes[0]]
        elif len(axes) == 2:
            out = self._mixed(axes)
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


class LayeredJetEngine(PairJetEngine):
    """A :class:`PairJetEngine` for a network with ``features(x)`` and a linear ``head``,
    built from two passes: ``_first_pass()`` (sets ``_value`` and ``_first``, keeps what
    the second derivatives need in ``_layers``) and ``_second_order(pairs)`` (the sum of
    ∂_a∂_b over ``pairs``, cached in ``_second``). A value alone is one plain forward pass.
    With ``head=False`` the outputs are the last hidden layer's features."""

    def __init__(self, net: nn.Module, x: Points, *, head: bool) -> None:
        super().__init__(net, x, head=head)
        self._layers: list = []
        self._second: dict[tuple[tuple[int, int], ...], Tensor] = {}

    def _to_output(self, t: Tensor) -> Tensor:
        return t @ self.mlp.head.weight.T if self.head else t

    def _input_rows(self) -> list[Tensor]:
        """The scaled inputs and their d first derivatives (constant rows), each (n, d)."""
        x = self.x
        n, d = x.shape
        inv = 1.0 / torch.tensor(self.mlp.normalize.half_width, dtype=x.dtype, device=x.device)
        return [self.mlp.normalize(x), *(torch.diag(inv)[a].expand(n, d) for a in range(d))]

    def _first_pass(self) -> None:
        raise NotImplementedError

    def _second_order(self, pairs: tuple[tuple[int, int], ...]) -> Tensor:
        raise NotImplementedError

    def value(self) -> Tensor:
        if self._value is None:
            self._value = self.mlp(self.x) if self.head else self.mlp.features(self.x)
        return self._value

    def _first_derivatives(self) -> Tensor:
        if self._first is None:
            self._first_pass()
        return self._first

    def _mixed(self, axes: tuple[int, int]) -> Tensor:
        return self._second_order((axes,))

    def laplacian(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        out = self._second_order(tuple((a, a) for a in axes))
        return out if output is None else out[:, output]


class JetEngine(LayeredJetEngine):
    """Values, gradients and second derivatives of an :class:`MLP` pushed forward
    through the layers: for z = W h + b and y = f(z),

        ∂_a y = f'(z) ∂_a z,    Σ_(a,b) ∂_a∂_b y = f''(z) Σ_(a,b) ∂_a z ∂_b z + f'(z) Σ_(a,b) ∂_a∂_b z.

    A value alone is one plain forward pass. The first derivative asked for triggers one
    pass carrying the value and all d first derivatives as a (1 + d)·n row block (one
    matrix product per layer) and keeps f'(z), f''(z) and ∂z of every layer; each second
    derivative, or Laplacian (a sum over (a, a)), then costs one more row per layer.
    With ``head=False`` the outputs are the last hidden layer's features.
    """

    def _first_pass(self) -> None:
        """Value and all first derivatives; keeps what second derivatives need."""
        m, n = self.mlp, len(self.x)
        rows = self._input_rows()
        for lin in m.linears:
            z, *Jz = (torch.cat(rows) @ lin.weight.T).split(n)
            z = z + lin.bias
            h = m.activation(z)
            d1, d2 = m.activation.derivs(z, h)
            self._layers.append((Jz, d1, d2))
            rows = [h, *(d1 * j for j in Jz)]
        out = list(self._to_output(torch.cat(rows)).split(n))
        self._value = out[0] + m.head.bias if self.head else out[0]
        self._first = torch.stack(out[1:], dim=-1)  # (n, k, d)

    def _second_order(self, pairs: tuple[tuple[int, int], ...]) -> Tensor:
        """Σ_(a,b)∈pairs ∂_a∂_b of the outputs, shape (n, k)."""
        if pairs not in self._second:
            if not self._layers:
                self._first_pass()
            S: Tensor | None = None  # zero at the input: the scaling is affine
            for lin, (Jz, d1, d2) in zip(self.mlp.linears, self._layers):
                curv = sum(Jz[a] * Jz[b] for a, b in pairs)
                S = d2 * curv if S is None else d2 * curv + d1 * (S @ lin.weight.T)
            self._second[pairs] = self._to_output(S)
        return self._second[pairs]

