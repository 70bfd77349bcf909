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
not each unit separately as tanh does. Derivatives with respect to the inputs come from
autograd; the output layer is linear, so least squares can solve it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._types import Points
from ..derivatives import AutogradEngine, DerivativeEngine
from ..errors import require_positive
from .base import Bounds, Normalize, default_bounds, glorot_
from .contract import Surrogate
from .gmnm import GMNMLayer
from .head import LinearHead


class _Features(nn.Module):
    """The last hidden layer of a :class:`GMNMNet` as a module (for autograd engines)."""

    def __init__(self, net: GMNMNet) -> None:
        super().__init__()
        self.__dict__["net"] = net  # not a submodule: no parameters registered twice

    def forward(self, x: Tensor) -> Tensor:
        return self.net.features(x)


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

    def linear_head(self) -> LinearHead:
        """The output layer, over the last GMNM layer's outputs as features (autograd
        derivatives of the features)."""
        features = _Features(self)
        return LinearHead(lambda x: GradEnabledEngine(features, x), self.head.in_features,
                          self.head.weight, self.head.bias, transposed=True)


class GradEnabledEngine:
    """Autograd derivatives of ``module`` at ``x`` that also work when the caller has
    switched gradients off (the least-squares solvers build their systems under
    ``torch.no_grad``): the derivatives are taken with gradients on, and returned
    detached when the caller's mode is off."""

    def __init__(self, module: nn.Module, x: Points) -> None:
        self.module, self.x = module, x
        self._engine: DerivativeEngine | None = None

    def _call(self, name: str, *args) -> Tensor:
        outer = torch.is_grad_enabled()
        with torch.enable_grad():
            if self._engine is None:
                self._engine = AutogradEngine(self.module, self.x)
            out = getattr(self._engine, name)(*args)
        return out if outer else out.detach()

    def value(self) -> Tensor:
        return self._call("value")

    def partial(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        return self._call("partial", output, axes)

    def laplacian(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        return self._call("laplacian", output, axes)
