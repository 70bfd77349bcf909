"""GMNM as a module inside a network: Gaussian mixture layers as the nonlinearity
between linear maps.

The paper presents GMNM as a "nonlinear module" that drops into larger architectures
(CNNs, attention, LSTMs). Its full text was not available to us; our reading of that
phrase is a network in which a GMNM layer replaces the elementwise activation::

    h_0 = Normalize(x)                                   (n, d), scaled to [−1, 1]^d
    h_l = G_l(L_l h_{l−1}),  l = 1 … depth               L_l: Linear(·→w), G_l: GMNM(w→w)
    u   = L_out h_depth                                  Linear(w→o)

with each G_l(z) = Σ_i π_i exp(−½ ‖W_i (z − μ_i)‖²) + b a :class:`~.gmnm.GMNMLayer` of
``components`` Gaussians in R^w, each seeing ``projections`` directions (k × w
projections W_i), and π_i ∈ R^w: the mixture maps the whole hidden vector to a new one,
not each unit separately as tanh does. First and second derivatives with respect to the
inputs are pushed forward through the layers in closed form (:class:`NetJetEngine`),
autograd answers beyond; the output layer is linear, so least squares can solve it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._types import Points
from ..derivatives import DerivativeEngine
from ..errors import require_positive
from .base import Bounds, Normalize, default_bounds, glorot_
from .contract import Surrogate
from .gmnm import GMNMLayer
from .head import LinearHead
from .mlp import LayeredJetEngine


class GMNMNet(Surrogate):
    """Linear(d→w) → GMNM(w→w) → … (``depth`` times) → Linear(w→o), inputs scaled to
    [−1, 1]^d (see the module docstring for the formula).

    Initialisation: linear maps Glorot-normal with zero biases (the PINN recipe); each
    GMNM layer as :class:`~.gmnm.GMNMLayer` initialises it in [−1, 1]^w with width
    ``width_factor`` × the spacing of its means (random projections when k ≠ w), so the
    Gaussians start overlapping the range the Glorot-scaled hidden values occupy.

    Parameter count: (d + 1)w + (depth − 1)(w + 1)w + depth·(m·w·(k + 2) + w) + (w + 1)o.
    """

    def __init__(self, in_features: int, out_features: int = 1, width: int = 16, depth: int = 2,
                 components: int = 16, projections: int = 2, width_factor: float = 1.0, *,
                 bounds: Bounds | None = None) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features),
                            ("width", width), ("depth", depth), ("components", components),
                            ("projections", projections)):
            require_positive(name, value, integer=True)
        require_positive("width_factor", width_factor)
        self.in_features, self.out_features = in_features, out_features
        lo, hi = default_bounds(in_features, bounds)
        self.normalize = Normalize(lo, hi)
        sizes = [in_features] + [width] * depth
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.mixtures = nn.ModuleList(
            GMNMLayer(width, width, components, projections, width_factor=width_factor)
            for _ in range(depth))
        self.head = nn.Linear(width, out_features)
        glorot_(self)

    def features(self, x: Tensor) -> Tensor:
        """The last GMNM layer's outputs, shape (n, width)."""
        h = self.normalize(x)
        for lin, mix in zip(self.linears, self.mixtures):
            h = mix(lin(h))
        return h

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    def derivative_engine(self, x: Points) -> DerivativeEngine:
        """Forward-mode first and second derivatives (autograd beyond)."""
        return NetJetEngine(self, x, head=True)

    def linear_head(self) -> LinearHead:
        """The output layer, over the last GMNM layer's outputs as features (their
        derivatives in forward mode, as the network's)."""
        return LinearHead(lambda x: NetJetEngine(self, x, head=False), self.head.in_features,
                          self.head.weight, self.head.bias, transposed=True)


class NetJetEngine(LayeredJetEngine):
    r"""Values, gradients and second derivatives of a :class:`GMNMNet` pushed forward
    through its layers in closed form. A linear map z = L h carries derivatives
    linearly; a GMNM layer G(z) = Σ_i π_i g_i(z) + b with g_i = exp(−½‖r_i‖²),
    r_i = P_i (z − μ_i) (P_i the k × w projections), and s_ia = P_i ∂_a z, gives

        ∂_a g_i = −g_i ⟨r_i, s_ia⟩,
        Σ_(a,b) ∂_a∂_b g_i = g_i Σ_(a,b) (⟨r_i, s_ia⟩⟨r_i, s_ib⟩ − ⟨s_ia, s_ib⟩)
                             − g_i ⟨r_i, P_i Σ_(a,b) ∂_a∂_b z⟩,

    each a matrix product with π. One pass carries the value and the d first derivatives
    as a (1 + d)·n row block and keeps r, s and g of every layer; each second derivative,
    or Laplacian, then costs one more row per layer. Everything is O(n·m·k·w) per layer
    (no w × w precision matrices). With ``head=False`` the outputs are the last GMNM
    layer's features.
    """

    def _first_pass(self) -> None:
        net, n = self.mlp, len(self.x)
        rows = self._input_rows()
        for lin, mix in zip(net.linears, net.mixtures):
            m, k, w = mix.proj.shape
            P = mix.proj.reshape(m * k, w)
            r, *s = (torch.cat(rows) @ lin.weight.T @ P.T).split(n)  # P_i z and P_i ∂_a z
            shift = lin.bias @ P.T - torch.einsum("mkw,mw->mk", mix.proj, mix.means).reshape(-1)
            r = (r + shift).view(n, m, k)
            s = [t.view(n, m, k) for t in s]
            g = torch.exp(-0.5 * (r * r).sum(-1))
            rs = [(r * t).sum(-1) for t in s]
            self._layers.append((P, r, s, rs, g))
            rows = [g @ mix.weights + mix.bias, *(-(g * v) @ mix.weights for v in rs)]
        out = list(self._to_output(torch.cat(rows)).split(n))
        self._value = out[0] + net.head.bias if self.head else out[0]
        self._first = torch.stack(out[1:], dim=-1)  # (n, k, d)

    def _second_order(self, pairs: tuple[tuple[int, int], ...]) -> Tensor:
        """Σ_(a,b)∈pairs ∂_a∂_b of the outputs, shape (n, k)."""
        if pairs not in self._second:
            if not self._layers:
                self._first_pass()
            net = self.mlp
            S: Tensor | None = None  # zero at the input: the scaling is affine
            for lin, mix, (P, r, s, rs, g) in zip(net.linears, net.mixtures, self._layers):
                curv = sum(rs[a] * rs[b] - (s[a] * s[b]).sum(-1) for a, b in pairs)
                if S is not None:
                    curv = curv - (r * (S @ lin.weight.T @ P.T).view(r.shape)).sum(-1)
                S = (g * curv) @ mix.weights
            self._second[pairs] = self._to_output(S)
        return self._second[pairs]
