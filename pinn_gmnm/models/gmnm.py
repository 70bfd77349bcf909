"""The Gaussian Mixture-Inspired Nonlinear Module (GMNM).

Our reading of arXiv 2510.06660 (Lu, Yuan, Zhang, Li, 2025) — the paper's full text was
not available to us, only its abstract and summaries — is a learnable mixture of m
anisotropic Gaussians with unconstrained real mixing weights:

    G(x) = Σ_i π_i · exp(−½ ‖W_i (x − μ_i)‖²) + b,       i = 1 … m.

Each W_i (k × d) projects the centred input onto k directions, so the Gaussian has the
inverse covariance A_i = W_iᵀ W_i, positive semi-definite by construction: no constraint
has to be enforced while training. The π_i may be any real numbers (this is a function
approximator, not a density).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from .._types import Points
from ..derivatives import DerivativeEngine
from ..errors import GMNMError, require_positive
from .base import Bounds, Normalize, default_bounds
from .contract import Surrogate
from .feature_cache import cached_features
from .head import LinearHead
from .layout import (DEFAULT_EQUATIONS, FIT_MARGIN, MARGIN, MIN_GRID_AXIS, default_components,
                     elongated, enlarged, even_count, proportions, space_time_proportions,
                     spread_centres, spread_evenly, spread_points)


def quadratic_features(x: Tensor) -> Tensor:
    """[x_a x_b for a ≤ b] ++ [x_a] ++ [1], shape (n, d(d+1)/2 + d + 1).

    Every quadratic form in x is one matrix product of these features with a
    coefficient vector, which is how the mixture avoids (n, m, d) temporaries.
    """
    n, d = x.shape
    a, b = torch.triu_indices(d, d, device=x.device)
    return torch.cat([x[:, a] * x[:, b], x, x.new_ones(n, 1)], dim=1)


def _tracked(t: Tensor) -> bool:
    """Whether autograd records operations on ``t``. When it does not (prediction,
    evaluation, plots), the (n, m) element-wise steps of the mixture run in place on one
    array: the same operations, bit for bit, two to three times faster, since that work
    is bound by memory traffic."""
    return torch.is_grad_enabled() and t.requires_grad


def quadratic_coefficients(mat: Tensor, lin: Tensor, const: Tensor) -> Tensor:
    """Coefficients C with quadratic_features(x) @ C = xᵀ M_i x + l_iᵀ x + c_i.

    ``mat`` (m, d, d) symmetric, ``lin`` (m, d), ``const`` (m,). Returns (F, m).
    """
    d = mat.shape[-1]
    a, b = torch.triu_indices(d, d, device=mat.device)
    off = torch.where(a == b, 1.0, 2.0).to(mat)
    return torch.cat([(mat[:, a, b] * off).T, lin.T, const[None, :]], dim=0)


class GMNMLayer(Surrogate):
    r"""A GMNM layer: G(x) = Σ_i π_i · exp(−½ ‖W_i (x − μ_i)‖²) + b.

    Shapes, with d = ``in_features``, o = ``out_features``, m = ``components`` and
    k = ``projections`` (default d):

    ============  ===========  =====================================
    parameter     shape        meaning
    ============  ===========  =====================================
    ``means``     (m, d)       centres μ_i
    ``proj``      (m, k, d)    projections W_i; A_i = W_iᵀW_i
    ``weights``   (m, o)       mixing weights π_i (any real numbers)
    ``bias``      (o,)         offset b
    ============  ===========  =====================================

    Parameter count: m·d + m·k·d + m·o + o.  Input (n, d) → output (n, o).

    Initialisation (inputs are expected to lie in the box ``bounds``, by default
    [−1, 1]^d): means spread evenly over the box enlarged by ``margin`` × its half-width
    on every side (a grid when m is a perfect d-th power, otherwise a scrambled Sobol'
    set); every Gaussian isotropic with standard deviation ``width_factor`` × h, where
    h = (volume / m)^(1/d) is the spacing m means would have over the box itself (for
    k ≠ d, W_i has random Gaussian rows scaled to the same mean width); π drawn from
    N(0, (0.1/√m)²), b = 0. The layer can also serve as a hidden nonlinearity inside a
    larger network.

    The Mahalanobis distances (x − μ_i)ᵀA_i(x − μ_i) for all points and components are
    one matrix product of quadratic features of x with coefficients built from (A_i, μ_i),
    or, when the projections are fewer (k < d and k < (d + 3)/2, e.g. inside a wide
    network), of x
    with the stacked W_i: ‖W_i x − W_i μ_i‖².
    """

    def __init__(self, in_features: int, out_features: int = 1, components: int = 64,
                 projections: int | None = None, *, bounds: Bounds | None = None,
                 width_factor: float = 1.0, margin: float = 0.0) -> None:
        super().__init__()
        require_positive("in_features", in_features, integer=True)
        require_positive("out_features", out_features, integer=True)
        require_positive("components", components, integer=True)
        k = in_features if projections is None else projections
        require_positive("projections", k, integer=True)
        require_positive("width_factor", width_factor)
        if not 0 <= margin < math.inf:
            raise GMNMError(f"margin must be a finite number >= 0, got {margin!r}")
        self.in_features, self.out_features = in_features, out_features
        self.components, self.projections = components, k
        lo, hi = default_bounds(in_features, bounds)

        d, m = in_features, components
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
        volume = float(np.prod(np.subtract(hi, lo)))
        sigma = width_factor * (volume / m) ** (1.0 / d)
        if k == d:
            proj = torch.eye(d, dtype=torch.float64).expand(m, d, d) / sigma
        else:
            proj = torch.randn(m, k, d, dtype=torch.float64) / (sigma * math.sqrt(k))
        dtype = torch.get_default_dtype()
        pad = [margin * (h - l) / 2 for l, h in zip(lo, hi)]
        means = spread_points(m, [l - p for l, p in zip(lo, pad)], [h + p for h, p in zip(hi, pad)],
                              seed)
        self.means = nn.Parameter(means.to(dtype))
        self.proj = nn.Parameter(proj.clone().to(dtype))
        self.weights = nn.Parameter(torch.randn(m, out_features, dtype=dtype) * (0.1 / math.sqrt(m)))
        self.bias = nn.Parameter(torch.zeros(out_features, dtype=dtype))

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"components={self.components}, projections={self.projections}")

    def precision(self) -> Tensor:
        """A_i = W_iᵀ W_i, shape (m, d, d)."""
        return torch.einsum("mkd,mke->mde", self.proj, self.proj)

    def mahalanobis(self, x: Tensor) -> Tensor:
        """q_i(x) = (x − μ_i)ᵀ A_i (x − μ_i) for every point and component, shape (n, m)."""
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise GMNMError(f"GMNM layer expects inputs of shape (n, {self.in_features}), got {tuple(x.shape)}")
        k, d = self.projections, self.in_features
        if k < d and 2 * k < d + 3:  # fewer projections: k·d numbers beat d(d + 3)/2 + 1
            W = self.proj
            r = x @ W.reshape(-1, W.shape[-1]).T - torch.einsum("mkd,md->mk", W, self.means).reshape(-1)
            return r.view(len(x), self.components, -1).square().sum(dim=-1)
        A = self.precision()
        Amu = torch.einsum("mde,me->md", A, self.means)
        coef = quadratic_coefficients(A, -2.0 * Amu, (Amu * self.means).sum(dim=1))
        # Rounding can make a tiny distance slightly negative; distances are >= 0.
        q = quadratic_features(x) @ coef
        return q.clamp_min(0.0) if _tracked(q) else q.clamp_min_(0.0)

    def basis(self, x: Tensor) -> Tensor:
        """The Gaussians g_i(x) = exp(−½ q_i(x)), shape (n, m)."""
        q = self.mahalanobis(x)
        return torch.exp(-0.5 * q) if _tracked(q) else q.mul_(-0.5).exp_()

    def forward(self, x: Tensor) -> Tensor:
        return self.basis(x) @ self.weights + self.bias

    @torch.no_grad()
    def set_projections(self, W: Tensor) -> None:
        """Set the projections to ``W`` (m, k, d)."""
        self.proj.copy_(W)

    def _per_component(self) -> list[str]:
        """The parameters with one row per Gaussian (all but the bias)."""
        return [name for name in self._parameters if name != "bias"]

    def _resize(self, m: int) -> None:
        """Give every per-Gaussian parameter m rows (the first min(m, old) kept, the
        others zero): new Parameter objects, so optimisers must be rebuilt."""
        for name in self._per_component():
            old = self._parameters[name]
            assert old is not None
            new = old.new_zeros((m, *old.shape[1:]))
            n = min(m, old.shape[0])
            new[:n] = old.detach()[:n]
            self._parameters[name] = nn.Parameter(new, requires_grad=old.requires_grad)
        self.components = m

    @torch.no_grad()
    def add_components(self, means: Tensor, proj: Tensor) -> None:
        """Append Gaussians centred at ``means`` (n, d) with projections ``proj``
        (n, k, d) and mixing weights 0: the function is unchanged."""
        m, W = self.components, self.proj.detach().clone()
        self._resize(m + len(means))
        self.means[m:] = means.to(self.means)
        self.set_projections(torch.cat([W, proj.to(W)]))

    @torch.no_grad()
    def keep_components(self, keep: Tensor) -> None:
        """Keep only the Gaussians where the boolean mask ``keep`` (m,) is True."""
        if not bool(keep.any()):
            raise GMNMError("cannot remove every Gaussian of a GMNM layer")
        for name in self._per_component():
            old = self._parameters[name]
            assert old is not None
            self._parameters[name] = nn.Parameter(old.detach()[keep].clone(),
                                                  requires_grad=old.requires_grad)
        self.components = int(keep.sum())

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        # A grown or pruned layer (adaptive growth) saves another number of Gaussians than
        # its config builds: take the saved count, so run directories and resumes load.
        saved = state_dict.get(prefix + "means")
        if saved is not None and saved.shape[0] != self.components:
            self._resize(saved.shape[0])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class GMNM(Surrogate):
    """A GMNM surrogate for a PDE: inputs scaled from the domain's bounding box to
    [−1, 1]^d, then one :class:`GMNMLayer` with ``components`` Gaussians.

    ``bounds`` is the domain's bounding box ``(lo, hi)``; the means start spread over it
    and a margin of 30 % of its half-width around it (a 32 × 32 grid for the default 1024
    components in 2D), so that boundary layers and corners are shaped by Gaussians centred
    past the boundary (see :mod:`.layout`; :meth:`arrange` also culls places far from an
    irregular domain). The default initial width is 4 × the spacing of the means over the
    box: broad, overlapping Gaussians, the regime in which the least-squares solve for π is
    most accurate (on ``poisson`` with 400 components and no margin, 1 × gives a relative
    L2 error near 0.4 and 4 × near 4e-7). The default number of components is tied to the
    number of collocation ``equations`` the model will be trained on and to the
    dimension, so that least squares has twice as many equations as unknowns
    (:func:`~.layout.default_components`).

    The margin (default ``MARGIN``) serves boundary and initial conditions: Gaussians
    centred past the boundary shape the layers they impose. A problem without
    conditions (a fit from samples: ``conditions=False``) gets a narrower one,
    ``FIT_MARGIN``: there a Gaussian centred outside is pinned only by the few samples
    near the edge, and with the full margin the fit swung between them and the boundary
    (``multiscale`` 0.20 with it, max error 3.0 at the box's edge; 0.13 with
    ``FIT_MARGIN``), while without any the smooth fits lost accuracy at the edges
    (``exp-sin`` 2.8e-7 with ``FIT_MARGIN``, 1.1e-6 without).

    With ``isotropic`` the layout is even and the Gaussians round in the box's own units
    rather than in the normalised ones (:func:`~.layout.proportions`; the same on a cube):
    on an elongated box, as many centres along each axis as its length allows at one
    spacing (see :mod:`.layout`). Meant for axes that share a unit, as a steady problem's
    do; the default run asks for it on every problem without a time variable (None, the
    default of a GMNM built directly, is the normalised layout). A box too
    long and thin for its count (fewer than ``MIN_GRID_AXIS`` Gaussians would lie across
    it, as on 100 × 1 with 1024) keeps the normalised layout. With ``time_axis`` too, the
    last axis is time, which shares no unit with space: the layout is round in space and
    has as many centres along time as along a mean axis of space
    (:func:`~.layout.space_time_proportions`; the normalised layout on a square or cube in
    space), as the default run asks for a time-dependent problem's single space-time block.
    """

    def __init__(self, in_features: int, out_features: int = 1, components: int | None = None,
                 projections: int | None = None, *, bounds: Bounds | None = None,
                 width_factor: float = 4.0, equations: int = DEFAULT_EQUATIONS,
                 margin: float | None = None, conditions: bool = True,
                 parametrisation: str = "plain", isotropic: bool | None = None,
                 time_axis: bool = False) -> None:
        super().__init__()
        require_positive("in_features", in_features, integer=True)
        layer_class = _parametrisation(parametrisation)
        if margin is None:  # past the boundary only where conditions act there
            margin = MARGIN if conditions else FIT_MARGIN
        lo, hi = default_bounds(in_features, bounds)
        if not isotropic:
            self.aspect = (1.0,) * in_features
        elif time_axis and in_features > 1:
            self.aspect = space_time_proportions(lo, hi)
        else:
            self.aspect = proportions(lo, hi)
        """Each normalised axis's half-width in the layout's common unit (all 1 unless
        ``isotropic``)."""
        self.in_features, self.out_features = in_features, out_features
        self.width_factor, self.margin = width_factor, margin
        if self.elongated and even_count(
                components or default_components(in_features, equations, out_features),
                self.layout_sides, MIN_GRID_AXIS) is None:
            # too long and thin for round Gaussians at this count: fewer than
            # MIN_GRID_AXIS would lie across, and widths from the box's volume would
            # leave gaps along it (the normalised layout stretches them instead)
            self.aspect = (1.0,) * in_features
        if components is None:
            components = default_components(in_features, equations, out_features,
                                            aspect=self.layout_sides)
        self.normalize = Normalize(lo, hi)
        self.layer = self.new_layer(components, projections, layer_class)

    @property
    def elongated(self) -> bool:
        """Whether the layout is round in units other than the normalised ones (its
        :attr:`aspect` not all 1)."""
        return elongated(self.aspect)

    @property
    def layout_sides(self) -> tuple[float, ...]:
        """The sides of the box the centres are spread over (the normalised box and its
        margin) in the layout's common unit: the proportions of its even grids."""
        lo, hi = enlarged(self.in_features, self.margin, self.aspect)
        return tuple(h - l for l, h in zip(lo, hi))

    def new_layer(self, m: int, projections: int | None = None,
                  layer_class: type[GMNMLayer] | None = None) -> GMNMLayer:
        """A fresh layer of m Gaussians laid out as this model's first one was: over the
        normalised box and its margin, evenly and round in the layout's common unit
        (:attr:`aspect`). ``layer_class`` and ``projections``: by default the current
        layer's."""
        if layer_class is None:
            layer_class = type(self.layer)
            projections = self.layer.projections if projections is None else projections
        layer = layer_class(self.in_features, self.out_features, m, projections,
                            width_factor=self.width_factor, margin=self.margin)
        if self.elongated:  # (on a cube the layer's own layout is the even one)
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
            lo, hi = enlarged(self.in_features, self.margin, self.aspect)
            a = self.aspect_like()
            with torch.no_grad():
                layer.means.copy_(spread_evenly(m, lo, hi, seed) / a)
                layer.set_projections(self._rescaled(layer.proj.double() * a, self._width(m, 1.0))
                                      .to(layer.means))
        return layer

    def aspect_like(self, x: Tensor | None = None) -> Tensor:
        """:attr:`aspect` as a tensor in ``x``'s dtype and on its device (float64 on the
        CPU without one)."""
        if x is None:
            return torch.tensor(self.aspect, dtype=torch.float64)
        return torch.tensor(self.aspect, dtype=x.dtype, device=x.device)

    def _width(self, m: int, fraction: float, width_factor: float | None = None) -> float:
        """The width (common unit) of m Gaussians spread over ``fraction`` of the box:
        ``width_factor`` (default the model's) × their spacing."""
        factor = self.width_factor if width_factor is None else width_factor
        volume = fraction * math.prod(2.0 * a for a in self.aspect)
        return factor * (volume / m) ** (1.0 / self.in_features)

    def _rescaled(self, W: Tensor, sigma: float) -> Tensor:
        """Projections ``W`` (m, k, d) scaled so that their mean width in the common unit
        is ``sigma`` (directions kept)."""
        Wc = W.double() / self.aspect_like(W.double())  # W acts on normalised x = z / aspect
        current = math.sqrt(self.in_features / float(Wc.square().sum(dim=(1, 2)).mean()))
        return W * (current / sigma)

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(self.normalize(x))

    @torch.no_grad()
    def arrange(self, points: Points, seed: int = 0, width_factor: float | None = None
                ) -> dict[str, float]:
        """Spread the centres over the domain that ``points`` sample (physical coordinates,
        interior and boundary) and the margin around it: places of the enlarged box
        farther than the margin from every point are culled (see
        :func:`~.layout.spread_centres`), and every Gaussian's width becomes
        ``width_factor`` × the spacing of the centres over the part of the box they cover.
        The number of components stays. Meant before training: the projections keep their
        directions and are rescaled to the new width. Returns the fraction of the enlarged
        box kept and the width (normalised coordinates; with :attr:`aspect`, its common
        unit)."""
        layer = self.layer
        x = self.normalize(points.detach().to("cpu", torch.float64))  # laid out on the CPU
        aspect = self.aspect if self.elongated else None
        means, fraction = spread_centres(layer.components, x, seed, self.margin, aspect)
        sigma = self._width(layer.components, fraction, width_factor)
        layer.means.copy_(means)
        layer.set_projections(self._rescaled(layer.proj.detach(), sigma))
        return {"kept": fraction, "width": sigma}

    @torch.no_grad()
    def respread(self, m: int, points: Points, seed: int = 0,
                 width_factor: float | None = None) -> dict[str, float]:
        """Replace the mixture by ``m`` isotropic Gaussians spread over the domain that
        ``points`` sample and the margin around it, as :meth:`arrange` places them, with
        width ``width_factor`` (default the model's) × their spacing and mixing weights 0 (a uniform refinement:
        the fit is re-solved afterwards). Returns what :meth:`arrange` returns."""
        require_positive("components", m, integer=True)
        layer = self.layer
        d, k = layer.in_features, layer.projections
        layer._resize(m)
        if k == d:
            proj = torch.eye(d, dtype=torch.float64).expand(m, d, d)
        else:
            proj = torch.randn(m, k, d, dtype=torch.float64) / math.sqrt(k)
        proj = proj * self.aspect_like()  # round in the common unit
        layer.set_projections(proj.to(layer.proj))  # unit width: arrange sets the spacing
        layer.weights.zero_()
        return self.arrange(points, seed, width_factor)

    def physical(self) -> tuple[Tensor, Tensor]:
        """(A_i, μ_i) in the problem's own coordinates, the input scaling folded in:
        with x' = (x − c)/h, A = H⁻¹ A' H⁻¹ and μ = c + H μ', H = diag(h)."""
        x_ref = self.layer.means
        c = torch.tensor(self.normalize.center, dtype=x_ref.dtype, device=x_ref.device)
        h = torch.tensor(self.normalize.half_width, dtype=x_ref.dtype, device=x_ref.device)
        A = self.layer.precision() / (h[:, None] * h[None, :])
        return A, c + h * self.layer.means

    def derivative_engine(self, x: Points) -> DerivativeEngine:
        """Closed-form values and derivatives of any order: the Gaussians' own
        (:meth:`_features`) mixed with the current weights."""
        return MixedEngine(self._features(x), self.layer.weights, self.layer.bias)

    def _features(self, x: Points) -> DerivativeEngine:
        """The Gaussians' own values and derivatives at ``x``; without autograd from the
        feature cache (:mod:`.feature_cache`), kept while ``x`` and the Gaussians are
        unchanged."""
        def make() -> MixtureEngine:
            A, mu = self.physical()
            return MixtureEngine(x, A, mu)

        shape = [p for n, p in self.layer.named_parameters() if n not in ("weights", "bias")]
        extra = (type(self.layer).__name__, tuple(self.normalize.center),
                 tuple(self.normalize.half_width))
        cached = cached_features(x, shape, extra, make, len(x) * self.layer.components)
        return make() if cached is None else cached

    def parameter_tangents(self, queries, x, names, n_outputs):  # type: ignore[no-untyped-def]
        """In closed form for the plain parametrisation (:mod:`.gmnm_jacobian`)."""
        if type(self.layer) is not GMNMLayer:
            return None
        from .gmnm_jacobian import gmnm_tangents

        return gmnm_tangents(self, queries, x, names, n_outputs)

    def linear_head(self) -> LinearHead:
        """The mixing weights π and bias b, over the Gaussians as features."""
        return LinearHead(self._features, self.layer.components, self.layer.weights,
                          self.layer.bias)


def _parametrisation(name: str) -> type[GMNMLayer]:
    """The layer class for ``parametrisation``: "plain" learns W_i entry by entry,
    "scaled" as log-scales times unit directions (:mod:`.gmnm_scaled`)."""
    if name == "plain":
        return GMNMLayer
    if name == "scaled":
        from .gmnm_scaled import ScaledGMNMLayer

        return ScaledGMNMLayer
    raise GMNMError(f"unknown GMNM parametrisation '{name}'; known: plain, scaled")


def _pairings(axes: tuple[int, ...], A: Tensor) -> list[tuple[tuple[int, ...], Tensor]]:
    """Every way of pairing some of ``axes``: (the unpaired axes, Π over the pairs (a, b)
    of −A[:, a, b], an (m,) vector)."""
    if not axes:
        return [((), torch.ones(A.shape[0], dtype=A.dtype, device=A.device))]
    a, rest = axes[0], axes[1:]
    out = [((a,) + u, c) for u, c in _pairings(rest, A)]
    for j, b in enumerate(rest):
        out += [(u, -A[:, a, b] * c) for u, c in _pairings(rest[:j] + rest[j + 1:], A)]
    return out


class MixedEngine:
    """Σ_i π_i g_i(x) + b and its derivatives: the Gaussians' own (``features``, a
    :class:`MixtureEngine` or its cached answers) times the weights, plus the bias for the
    value."""

    def __init__(self, features: DerivativeEngine, weights: Tensor, bias: Tensor) -> None:
        self.features, self.weights, self.bias = features, weights, bias

    def _mix(self, M: Tensor, output: int | None) -> Tensor:
        out = M @ self.weights
        return out if output is None else out[:, output]

    def value(self) -> Tensor:
        return self.features.value() @ self.weights + self.bias

    def partial(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        if len(axes) == 0:
            v = self.value()
            return v if output is None else v[:, output]
        return self._mix(self.features.partial(None, axes), output)

    def laplacian(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        return self._mix(self.features.laplacian(None, axes), output)


class MixtureEngine:
    """Closed-form values and derivatives of the m Gaussians g_i(x) = exp(−½ (x − μ_i)ᵀA_i(x − μ_i))
    themselves, (n, m) each (the features of the least-squares solvers; a model's output
    mixes them, :class:`MixedEngine`).

    With z_i = x − μ_i:
      ∂_a g_i     = −g_i (A_i z_i)_a
      ∂_a∂_b g_i  = g_i ((A_i z_i)_a (A_i z_i)_b − (A_i)_ab)
      Σ_{a∈S} ∂_a² g_i = g_i (z_iᵀ A_i E_S A_i z_i − Σ_{a∈S} (A_i)_aa),  E_S = diag(1_S)

    Every (n, m) matrix here is a matrix product: (A_i z_i)_a = Σ_b (A_i)_ab x_b − (A_i μ_i)_a
    is x @ A[:, a, :]ᵀ, and the quadratic forms go through :func:`quadratic_features`.
    Beyond second order, ∂_S g_i = g_i H_S (see :meth:`_hermite`). ``output`` selects
    one Gaussian's column.
    """

    def __init__(self, x: Points, A: Tensor, mu: Tensor) -> None:
        self.x, self.A, self.mu = x, A, mu
        self._phi = quadratic_features(x)
        self._Amu = torch.einsum("mde,me->md", A, mu)
        coef = quadratic_coefficients(A, -2.0 * self._Amu, (self._Amu * mu).sum(dim=1))
        # −½ folded into the (F, m) coefficients rather than applied to the (n, m) result;
        # no clamp at 0: a distance rounded to −1e-16 only gives exp(5e-17).
        self.G = torch.exp(self._phi @ (-0.5 * coef))
        self._P: dict[int, Tensor] = {}

    @staticmethod
    def _pick(M: Tensor, output: int | None) -> Tensor:
        return M if output is None else M[:, output]

    def _Az(self, a: int) -> Tensor:
        """(A_i z_i)_a for every point and component, shape (n, m)."""
        if a not in self._P:
            self._P[a] = self.x @ self.A[:, a, :].T - self._Amu[:, a]
        return self._P[a]

    def value(self) -> Tensor:
        return self.G

    def partial(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        if len(axes) == 0:
            return self._pick(self.G, output)
        if len(axes) == 1:
            return self._pick(-self.G * self._Az(axes[0]), output)
        if len(axes) == 2:
            a, b = axes
            return self._pick(self.G * (self._Az(a) * self._Az(b) - self.A[:, a, b]), output)
        return self._pick(self.G * self._hermite(tuple(axes)), output)

    def _hermite(self, axes: tuple[int, ...]) -> Tensor:
        """∂_S g_i / g_i for the axes S (with repeats): the sum over the ways of pairing
        some of S, each unpaired a contributing −(A_i z_i)_a and each pair (a, b)
        −(A_i)_ab (a multivariate Hermite polynomial; order 2 is (Az)_a (Az)_b − A_ab).

        The pairings are summed per set U of unpaired axes: their pairs' products are
        (m,) vectors, and each U costs one (n, m) monomial Π_{a∈U} (A_i z_i)_a (built on
        a shorter one) and one multiply-add. A U whose pairs all vanish (off-diagonal
        entries of a diagonal A_i) is skipped. For ∂_xxyy that is 4 monomials and 3 terms
        where the pairing-by-pairing recursion made 22 calls of (n, m) work: a clamped
        plate's least-squares solve took 50 s of a 60 s budget in it."""
        coefficients: dict[tuple[int, ...], Tensor] = {}
        for unpaired, coefficient in _pairings(tuple(sorted(axes)), self.A):
            if unpaired in coefficients:
                coefficients[unpaired] = coefficients[unpaired] + coefficient
            else:
                coefficients[unpaired] = coefficient
        monomials: dict[tuple[int, ...], Tensor] = {}

        def monomial(u: tuple[int, ...]) -> Tensor:
            if u not in monomials:
                monomials[u] = self._Az(u[0]) if len(u) == 1 else monomial(u[:-1]) * self._Az(u[-1])
            return monomials[u]

        out: Tensor | None = None
        constant: Tensor | None = None
        for unpaired in sorted(coefficients, key=len, reverse=True):
            c = coefficients[unpaired] * (-1.0) ** len(unpaired)
            if not unpaired:
                constant = c
            elif bool(torch.any(c != 0)):
                term = monomial(unpaired) * c
                out = term if out is None else out.add_(term)
        assert out is not None  # the pairing with nothing paired has coefficient 1
        return out if constant is None else out.add_(constant)

    def laplacian(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        select = torch.zeros(self.A.shape[-1], dtype=self.A.dtype, device=self.A.device)
        select[list(axes)] = 1.0
        B = self.A @ (select[:, None] * self.A)  # A E_S A
        Bmu = torch.einsum("mde,me->md", B, self.mu)
        trace = (self.A.diagonal(dim1=1, dim2=2) * select).sum(dim=1)
        # the trace goes into the constant coefficient: one (n, m) operation fewer
        coef = quadratic_coefficients(B, -2.0 * Bmu, (Bmu * self.mu).sum(dim=1) - trace)
        return self._pick(self.G * (self._phi @ coef), output)
