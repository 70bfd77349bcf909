"""A B-spline Kolmogorov–Arnold network (KAN), the PIKAN baseline when trained on a PDE.

Each edge i → o of a layer carries its own learnable function of one variable,

    φ_io(h) = w_b[i, o] · SiLU(h) + w_s[i, o] · Σ_j c[i, o, j] B_j(h),

with B_j the G + k order-k B-splines (cubic by default) on input i's grid, and each
output node sums its edges: y_o = Σ_i φ_io(h_i) + b_o. This is pykan's KANLayer (Liu et
al., 2024) plus a bias per node. The whole layer is one matrix product: the per-input
features [SiLU(h_i), B_0(h_i), …, B_{G+k−1}(h_i)] flattened to (n, d_in·(1 + G + k)),
times the coefficient matrix stacking w_b and w_s ⊙ c.

Grids adapt to the data as in pykan: :meth:`KANLayer.update_grid` moves the knots to
sample quantiles (mixed with a uniform grid by ``grid_eps``) and re-fits c so that the
functions stay as they were; :meth:`KANLayer.refine` moves to a finer grid the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._types import Points
from ..derivatives import DerivativeEngine
from ..errors import GMNMError, require_positive
from .base import Bounds, Normalize, default_bounds
from .contract import Surrogate
from .bspline import bspline_basis, extend_grid, fit_coefficients, uniform_grid
from .head import LinearHead
from .mlp import ACTIVATIONS, PairJetEngine

_silu, _silu_derivs = ACTIVATIONS["silu"]


class KANLayer(nn.Module):
    r"""One KAN layer, (n, d_in) → (n, d_out).

    =================  ================  =====================================
    parameter          shape             meaning
    =================  ================  =====================================
    ``coef``           (d_in, d_out, K)  spline coefficients c, K = G + k
    ``scale_base``     (d_in, d_out)     w_b, weight of SiLU on each edge
    ``scale_spline``   (d_in, d_out)     w_s, weight of the spline on each edge
    ``bias``           (d_out,)          b
    ``grid`` (buffer)  (d_in, G + 2k + 1) knots per input
    =================  ================  =====================================

    Parameter count: d_in·d_out·(G + k + 2) + d_out. Initialisation follows pykan:
    c from U(−½, ½)·``noise_scale``/G, w_b from U(−1, 1)/√d_in, w_s = 1/√d_in, b = 0,
    a uniform grid on ``grid_range``.
    """

    def __init__(self, in_features: int, out_features: int, grid: int = 5, order: int = 3, *,
                 grid_range: tuple[float, float] = (-1.0, 1.0), noise_scale: float = 0.5,
                 grid_eps: float = 0.02) -> None:
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features),
                        ("grid", grid), ("order", order)):
            require_positive(f"KAN {name}", v, integer=True)
        if not grid_range[0] < grid_range[1]:
            raise GMNMError(f"KAN grid_range needs lo < hi, got {grid_range}")
        if not 0.0 <= grid_eps <= 1.0:
            raise GMNMError(f"KAN grid_eps must lie in [0, 1], got {grid_eps}")
        self.in_features, self.out_features = in_features, out_features
        self.order, self.grid_eps = order, grid_eps
        dtype = torch.get_default_dtype()
        lo = torch.full((in_features,), float(grid_range[0]), dtype=dtype)
        hi = torch.full((in_features,), float(grid_range[1]), dtype=dtype)
        self.register_buffer("grid", uniform_grid(lo, hi, grid, order))
        K = grid + order
        self.coef = nn.Parameter((torch.rand(in_features, out_features, K, dtype=dtype) - 0.5)
                                 * noise_scale / grid)
        s = 1.0 / math.sqrt(in_features)
        self.scale_base = nn.Parameter((torch.rand(in_features, out_features, dtype=dtype) * 2 - 1) * s)
        self.scale_spline = nn.Parameter(torch.full((in_features, out_features), s, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(out_features, dtype=dtype))

    @property
    def intervals(self) -> int:
        """G, the number of grid intervals."""
        return self.grid.shape[1] - 1 - 2 * self.order

    @property
    def n_features(self) -> int:
        """d_in · (1 + G + k): the width of the flattened feature matrix."""
        return self.in_features * (1 + self.intervals + self.order)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"grid={self.intervals}, order={self.order}")

    def features(self, h: Tensor, derivatives: int = 0) -> list[Tensor]:
        """[F, F′, F″][: derivatives + 1], each (n, d_in, 1 + G + k): SiLU(h_i) and the
        B-splines of h_i, and their derivatives in h_i."""
        if h.ndim != 2 or h.shape[1] != self.in_features:
            raise GMNMError(f"KAN layer expects inputs of shape (n, {self.in_features}), "
                            f"got {tuple(h.shape)}")
        splines = bspline_basis(h, self.grid.to(h), self.order, derivatives)
        base = _silu(h)
        bases = [base]
        if derivatives:
            d1, d2 = _silu_derivs(h, base)
            bases += [d1, d2][:derivatives]
        return [torch.cat([b[..., None], s], dim=-1) for b, s in zip(bases, splines)]

    def weight3(self) -> Tensor:
        """The coefficients as (d_in, 1 + G + k, d_out): w_b, then w_s ⊙ c."""
        spline = self.scale_spline[:, None, :] * self.coef.transpose(1, 2)
        return torch.cat([self.scale_base[:, None, :], spline], dim=1)

    def forward(self, h: Tensor) -> Tensor:
        F = self.features(h)[0]
        return F.reshape(len(h), -1) @ self.weight3().reshape(self.n_features, -1) + self.bias

    def splines(self, h: Tensor) -> Tensor:
        """The spline part w_s Σ_j c_j B_j(h_i) of every edge, shape (n, d_in, d_out)."""
        B = bspline_basis(h, self.grid.to(h), self.order)[0]
        return torch.einsum("nik,iok->nio", B, self.coef) * self.scale_spline

    @torch.no_grad()
    def _regrid(self, h: Tensor, grid: Tensor) -> None:
        """Move to knots ``grid``, re-fitting c so the splines match their old values at h."""
        target = torch.einsum("nik,iok->nio", bspline_basis(h, self.grid.to(h), self.order)[0],
                              self.coef)
        self.grid = grid.to(self.grid)
        # In place (.data keeps the Parameter object, so optimisers and the solver's
        # parameter list still refer to it); refine changes its shape.
        self.coef.data = fit_coefficients(h, target, self.grid.to(h), self.order).to(self.coef)

    @torch.no_grad()
    def update_grid(self, h: Tensor) -> None:
        """Knots at the quantiles of the samples h (n, d_in), mixed with a uniform grid
        over their range by ``grid_eps``; the functions are kept (least squares)."""
        G = self.intervals
        xs = torch.sort(h, dim=0).values
        ids = torch.linspace(0, len(h) - 1, G + 1).round().long().to(h.device)
        adaptive = xs[ids].T                                              # (d_in, G + 1)
        t = torch.linspace(0, 1, G + 1, dtype=h.dtype, device=h.device)
        uniform = adaptive[:, :1] + (adaptive[:, -1:] - adaptive[:, :1]) * t
        inner = self.grid_eps * uniform + (1 - self.grid_eps) * adaptive
        self._regrid(h, extend_grid(inner, self.order))

    @torch.no_grad()
    def refine(self, grid: int, h: Tensor) -> None:
        """Move to a uniform grid of ``grid`` intervals on the current range, fitting the
        new splines to the current ones at samples h (n, d_in) by least squares."""
        require_positive("KAN grid", grid, integer=True)
        k = self.order
        lo, hi = self.grid[:, k], self.grid[:, -1 - k]
        self._regrid(h, uniform_grid(lo, hi, grid, k))


class KAN(Surrogate):
    """A KAN surrogate: inputs scaled from the domain's box to [−1, 1]^d, then KAN layers
    of widths [d, width × depth, out] with ``grid`` intervals and order-``order`` splines.

    Grids follow the data as in pykan's ``fit``: with ``grid_updates`` the solver moves
    every layer's knots to the quantiles of the current activations of the interior
    points before training and every 5 Adam steps up to step 50 (see
    :class:`GridUpdates`).

    The default method (``auto``) trains a KAN with Adam (grid updates) then L-BFGS: a
    least-squares fit of the last layer over the random initial features is
    ill-conditioned (on the ``sines`` fit it reaches a small training loss with a test
    error far above 1), so ``least_squares_by_default`` is False. ``--method varpro`` still
    applies it on request.
    """

    least_squares_by_default = False

    def __init__(self, in_features: int, out_features: int = 1, width: int = 15, depth: int = 2,
                 grid: int = 5, order: int = 3, *, bounds: Bounds | None = None,
                 grid_updates: bool = True) -> None:
        super().__init__()
        require_positive("KAN width", width, integer=True)
        require_positive("KAN depth", depth, integer=True)
        self.in_features, self.out_features = in_features, out_features
        lo, hi = default_bounds(in_features, bounds)
        self.normalize = Normalize(lo, hi)
        sizes = [in_features] + [width] * depth + [out_features]
        self.layers = nn.ModuleList(KANLayer(a, b, grid, order) for a, b in zip(sizes[:-1], sizes[1:]))
        self.grid_updates = grid_updates

    def forward(self, x: Tensor) -> Tensor:
        h = self.normalize(x)
        for layer in self.layers:
            h = layer(h)
        return h

    @torch.no_grad()
    def update_grid(self, x: Points) -> None:
        """Every layer's knots to the quantiles of its inputs at points ``x``."""
        h = self.normalize(x)
        for layer in self.layers:
            layer.update_grid(h)
            h = layer(h)

    @torch.no_grad()
    def refine(self, grid: int, x: Points) -> None:
        """Every layer to a finer (or coarser) grid of ``grid`` intervals, the functions
        kept in least squares at points ``x``."""
        h = self.normalize(x)
        for layer in self.layers:
            nxt = layer(h)
            layer.refine(grid, h)
            h = nxt

    def derivative_engine(self, x: Points) -> DerivativeEngine:
        """Forward-mode first and second derivatives (autograd beyond)."""
        return KANEngine(self, x, head=True)

    def linear_head(self) -> LinearHead:
        """The last layer: its output is linear in (w_b, w_s ⊙ c, b) given its inputs."""
        return KANHead(self)

    def training_callbacks(self) -> list[GridUpdates]:
        return [GridUpdates(self)] if self.grid_updates else []


class KANHead(LinearHead):
    """The last KAN layer as a linear head over its (n, d_in·(1 + G + k)) features.

    Writing a head sets w_s = 1 and c to the fitted spline weights (w_s ⊙ c is what the
    output depends on), w_b to the SiLU weights and b to the bias.
    """

    def __init__(self, kan: KAN) -> None:
        layer = kan.layers[-1]
        super().__init__(lambda x: KANEngine(kan, x, head=False), layer.n_features,
                         layer.coef, layer.bias)
        self.layer = layer

    def head_parameters(self) -> list[nn.Parameter]:
        L = self.layer
        return [L.coef, L.scale_base, L.scale_spline, L.bias]

    def get(self) -> Tensor:
        L = self.layer
        return torch.cat([L.weight3().reshape(L.n_features, -1), L.bias[None, :]]).detach()

    @torch.no_grad()
    def set(self, theta: Tensor) -> None:
        L = self.layer
        theta = theta.to(L.coef)
        w = theta[:-1].reshape(L.in_features, -1, L.out_features)
        L.scale_base.copy_(w[:, 0, :])
        L.scale_spline.fill_(1.0)
        L.coef.copy_(w[:, 1:, :].transpose(1, 2))
        L.bias.copy_(theta[-1])


class KANEngine(PairJetEngine):
    """Values, gradients and second derivatives of a :class:`KAN` pushed forward through
    its layers. With J_ia = ∂h_i/∂x_a and S_i = ∂_a∂_b h_i for the layer's inputs,

        ∂_a y_o = Σ_i φ′_io(h_i) J_ia,   ∂_a∂_b y_o = Σ_i φ″_io(h_i) J_ia J_ib + φ′_io(h_i) S_i,

    where φ′ and φ″ use the B-splines' closed-form derivatives. With ``head=False`` the
    outputs are the last layer's features (for the least-squares solvers).
    """

    def __init__(self, kan: KAN, x: Points, *, head: bool) -> None:
        super().__init__(kan, x, head=head)

    def _propagate(self, pairs: list[tuple[int, int]]) -> None:
        kan, x = self.mlp, self.x
        n, d = x.shape
        h = kan.normalize(x)
        inv = 1.0 / torch.tensor(kan.normalize.half_width, dtype=x.dtype, device=x.device)
        J = torch.diag_embed(inv).expand(n, d, d)                       # (n, d_in, d)
        S = {p: x.new_zeros(n, d) for p in pairs}                        # (n, d_in) each
        last = len(kan.layers) - 1
        for i, layer in enumerate(kan.layers):
            F = layer.features(h, derivatives=2 if pairs else 1)
            if i == last and not self.head:
                size = layer.n_features
                self._value = F[0].reshape(n, size)
                self._first = (F[1][..., None] * J[:, :, None, :]).reshape(n, size, d)
                for (a, b), s in S.items():
                    self._second[(a, b)] = (F[2] * (J[..., a] * J[..., b])[..., None]
                                            + F[1] * s[..., None]).reshape(n, size)
                return
            W = layer.weight3()
            h = F[0].reshape(n, -1) @ W.reshape(layer.n_features, -1) + layer.bias
            d1 = torch.einsum("nik,iko->nio", F[1], W)                    # φ′_io(h_i)
            if pairs:
                d2 = torch.einsum("nik,iko->nio", F[2], W)                # φ″_io(h_i)
                S = {(a, b): torch.einsum("nio,ni->no", d2, J[..., a] * J[..., b])
                     + torch.einsum("nio,ni->no", d1, s) for (a, b), s in S.items()}
            J = torch.einsum("nio,nia->noa", d1, J)
        self._value, self._first = h, J
        self._second.update(S)


@dataclass
class GridUpdates:
    """Training callback: the grid updates of pykan's ``fit`` (``update_grid=True``,
    ``grid_update_num=10``, ``stop_grid_update_step=50``): once before the first stage,
    then every ``every`` Adam steps up to step ``until``, each layer's knots are moved to
    the quantiles of its inputs at the interior collocation points (all of them, gathered
    from every rank in data-parallel training, so every rank moves its grids alike). It
    acts on ``kan`` itself, so it works under a wrapper such as hard constraints."""

    kan: KAN
    every: int = 5
    until: int = 50

    def on_stage_start(self, stage: object, task) -> None:
        if task.step == 0:
            self.kan.update_grid(task.interior_points())

    def on_record(self, row: dict, task) -> None:
        from ..training.stages import Adam

        step = int(row["step"])
        if isinstance(task.current_stage, Adam) and step % self.every == 0 and step <= self.until:
            self.kan.update_grid(task.interior_points())
