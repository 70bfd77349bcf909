"""B-spline bases on per-input knot vectors, with their first two derivatives.

A grid of G intervals on [a, b] is extended by k knots on each side (spacing
h = (b − a)/G), giving G + 2k + 1 knots t_0 … t_{G+2k} and G + k B-splines of order k
(degree k; cubic for k = 3). They are built by the Cox–de Boor recursion

    B⁰_j(x) = 1 if t_j ≤ x < t_{j+1} else 0,
    Bᵖ_j(x) = (x − t_j)/(t_{j+p} − t_j) Bᵖ⁻¹_j(x) + (t_{j+p+1} − x)/(t_{j+p+1} − t_{j+1}) Bᵖ⁻¹_{j+1}(x),

and differentiated with

    d/dx Bᵖ_j = p (Bᵖ⁻¹_j / (t_{j+p} − t_j) − Bᵖ⁻¹_{j+1} / (t_{j+p+1} − t_{j+1})).

Inside [t_k, t_{G+k}] = [a, b] the G + k functions are non-negative and sum to one.
Every function here works on all inputs of a layer at once: ``x`` has shape (n, d) and
``grid`` (d, G + 2k + 1), one knot vector per input.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import GMNMError


def uniform_grid(lo: Tensor, hi: Tensor, intervals: int, k: int) -> Tensor:
    """Knots for G = ``intervals`` equal intervals on [lo_i, hi_i] per input, extended by
    k knots on each side: shape (d, G + 2k + 1)."""
    steps = torch.arange(-k, intervals + k + 1, dtype=lo.dtype, device=lo.device)
    h = (hi - lo) / intervals
    return lo[:, None] + h[:, None] * steps[None, :]


def extend_grid(inner: Tensor, k: int) -> Tensor:
    """Extend knots (d, G + 1) by k knots on each side, spaced by the mean spacing of the
    inner grid (as pykan does): shape (d, G + 2k + 1)."""
    G = inner.shape[1] - 1
    h = (inner[:, -1:] - inner[:, :1]) / G
    steps = torch.arange(1, k + 1, dtype=inner.dtype, device=inner.device)
    left = inner[:, :1] - h * steps.flip(0)
    right = inner[:, -1:] + h * steps
    return torch.cat([left, inner, right], dim=1)


def _inverse(span: Tensor) -> Tensor:
    """1 / span, and 0 for empty knot spans (repeated knots). Small: (1, d, ·)."""
    ok = span > 0
    return torch.where(ok, 1.0 / torch.where(ok, span, torch.ones_like(span)), torch.zeros_like(span))


def basis_orders(x: Tensor, grid: Tensor, k: int) -> list[Tensor]:
    """B-splines of every order 0 … k at ``x``: a list whose entry p has shape
    (n, d, G + 2k − p).

    With w_j = (x − t_j)/(t_{j+p} − t_j) the recursion reads
    Bᵖ_j = w_j Bᵖ⁻¹_j + (1 − w_{j+1}) Bᵖ⁻¹_{j+1}; knot spans enter only through their
    reciprocals, computed once on the (small) grid.
    """
    if x.ndim != 2 or grid.ndim != 2 or x.shape[1] != grid.shape[0]:
        raise GMNMError(f"B-spline inputs (n, d) and grid (d, knots) do not match: "
                        f"{tuple(x.shape)} and {tuple(grid.shape)}")
    xe = x[:, :, None]
    t = grid[None, :, :]
    B = ((xe >= t[..., :-1]) & (xe < t[..., 1:])).to(x.dtype)
    out = [B]
    for p in range(1, k + 1):
        w = (xe - t[..., :-p]) * _inverse(t[..., p:] - t[..., :-p])   # (n, d, knots − p)
        B = w[..., :-1] * B[..., :-1] + (1 - w[..., 1:]) * B[..., 1:]
        out.append(B)
    return out


def _derive(lower: Tensor, grid: Tensor, p: int) -> Tensor:
    """d/dx of order-p splines from (derivatives of) order p − 1 ones: shape (n, d, ·)."""
    t = grid[None, :, :]
    inv = p * _inverse(t[..., p:] - t[..., :-p])                         # (1, d, knots − p)
    scaled = lower * inv
    return scaled[..., :-1] - scaled[..., 1:]


def bspline_basis(x: Tensor, grid: Tensor, k: int = 3, derivatives: int = 0) -> list[Tensor]:
    """[B, B′, B″][: derivatives + 1], each of shape (n, d, G + k): the order-k
    B-splines at ``x`` and their derivatives in x (0 ≤ ``derivatives`` ≤ 2, ≤ k)."""
    if not 0 <= derivatives <= min(2, k):
        raise GMNMError(f"B-spline derivatives of order {derivatives} are not available "
                        f"for order-{k} splines (0 to {min(2, k)})")
    orders = basis_orders(x, grid, k)
    out = [orders[k]]
    if derivatives >= 1:
        out.append(_derive(orders[k - 1], grid, k))
    if derivatives >= 2:
        out.append(_derive(_derive(orders[k - 2], grid, k - 1), grid, k))
    return out


def fit_coefficients(x: Tensor, y: Tensor, grid: Tensor, k: int, ridge: float = 1e-10) -> Tensor:
    """Coefficients c (d, o, G + k) whose splines best match ``y`` (n, d, o) at ``x``
    (n, d) in least squares: Σ_j c[i, o, j] B_j(x_i) ≈ y[:, i, o] for every edge.

    A tiny ridge (relative to the largest diagonal of BᵀB) keeps coefficients of
    splines no sample reaches at zero instead of undetermined.
    """
    B = bspline_basis(x, grid, k)[0].double().permute(1, 0, 2)   # (d, n, K)
    gram = B.transpose(1, 2) @ B                                   # (d, K, K)
    scale = gram.diagonal(dim1=1, dim2=2).amax(dim=1).clamp_min(1e-300)
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    rhs = B.transpose(1, 2) @ y.double().permute(1, 0, 2)          # (d, K, o)
    coef = torch.linalg.solve(gram + ridge * scale[:, None, None] * eye, rhs)
    return coef.permute(0, 2, 1).to(y.dtype)                       # (d, o, K)
