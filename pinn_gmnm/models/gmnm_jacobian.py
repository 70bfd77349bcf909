"""A GMNM's quantities and their tangents along every parameter, in closed form.

Gauss–Newton needs, for each quantity a residual asks for (a value, a partial derivative
up to second order, a Laplacian; see :mod:`pinn_gmnm.training.jacobian`), its derivative
along every parameter. For G(x) = Σ_i π_i g_i(x) + b the structure does most of the work:

- along π_ic: feature i's quantity, in output c;
- along b_c: 1 for values, 0 for derivatives;
- along Gaussian i's centre and projection θ_i = (μ_i, W_i): π_ic ∂Q[g_i]/∂θ_i, which
  depends on Gaussian i alone. Each Q[g_i] is g_i times a polynomial in W_iᵀW_i (x − μ_i)
  and W_iᵀW_i, so ∂Q[g_i]/∂θ_i,j, for coordinate j of every θ_i at once, is a few
  elementwise products of (n, m) arrays (:func:`_tangents`): d + k·d of them in all,
  where the generic path differentiates the whole model at every point in reverse mode
  (``jacrev`` over all P parameters, per point), about twenty times slower for a few
  thousand parameters, and a forward-mode pass per coordinate (``torch.func.jvp``, used
  here before) cost several times more again.

Only the plain parametrisation (``GMNMLayer``) and derivatives up to second order are
covered; the caller falls back to the generic path otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .._types import Points

Query = tuple[str, "int | None", tuple[int, ...]]


def _feature_quantities(A: Tensor, mu: Tensor, x: Points, queries: Sequence[Query]
                        ) -> Tensor | None:
    """Q[g_i](x_p) for every query, shape (Q, n, m), for A (m, d, d) and μ (m, d) in
    physical coordinates (every (n, m) array a matrix product, as in
    :class:`~.gmnm.MixtureEngine`); None beyond second order."""
    d = x.shape[1]
    Amu = torch.einsum("mde,me->md", A, mu)
    Az = [x @ A[:, a, :].T - Amu[:, a] for a in range(d)]      # (A_i z_i)_a, (n, m) each
    g = torch.exp(-0.5 * sum((x[:, a, None] - mu[None, :, a]) * Az[a] for a in range(d)))
    out = []
    for kind, _, axes in queries:
        if kind == "laplacian":
            out.append(g * (sum(Az[a].square() for a in axes) - sum(A[:, a, a] for a in axes)))
        elif kind == "value" or len(axes) == 0:
            out.append(g)
        elif len(axes) == 1:
            out.append(-g * Az[axes[0]])
        elif len(axes) == 2:
            a, b = axes
            out.append(g * (Az[a] * Az[b] - A[:, a, b]))
        else:
            return None
    return torch.stack(out)


def _with_bias(kind: str, axes: tuple[int, ...]) -> bool:
    """Whether the quantity is a value, which the bias b shifts."""
    return kind == "value" or (kind == "partial" and len(axes) == 0)


def _tangents(x: Points, c: Tensor, h: Tensor, means: Tensor, proj: Tensor,
              queries: Sequence[Query]) -> Callable[[str, int], list[Tensor]]:
    """``tangent(name, j)``: ∂Q[g_i](x_p)/∂θ_i,j for every query Q (a list of (n, m)
    arrays), along coordinate j of every Gaussian's centre (``layer.means``) or
    projection (``layer.proj``, row-major (k, d)) at once.

    With z = x̂ − μ_i in the model's normalised coordinates x̂ = (x − c)/h, M = WᵀW and
    g = exp(−½ zᵀMz), a quantity is g times a polynomial in v = Mz and M, each entry
    taken in physical coordinates (v_a/h_a, M_ab/(h_a h_b); :func:`_feature_quantities`).
    Their changes, every one an (n, m) array or an (m,) vector:

    - along μ_j: δg = g v_j, δv = −M e_j, δM = 0;
    - along W_kj, with s = (Wz)_k: δg = −g s z_j, δv_a = [a = j] s + W_ka z_j,
      δM_ab = [a = j] W_kb + W_ka [b = j];

    and the product rule carries them into the values, first and second partials and
    Laplacians. A handful of elementwise products per coordinate, where a forward-mode
    pass through the quantities (``torch.func.jvp``) costs several times more."""
    xn = (x - c) / h
    d = xn.shape[1]
    M = torch.einsum("mkd,mke->mde", proj, proj)

    def applied(rows: Tensor) -> Tensor:
        """(R_i z)_row for every point and Gaussian, (n, m), for rows R (m, d)."""
        return xn @ rows.T - (rows * means).sum(dim=1)

    z = [xn[:, a, None] - means[None, :, a] for a in range(d)]  # (n, m) each
    v = [applied(M[:, a, :]) for a in range(d)]
    g = torch.exp(-0.5 * sum(z[a] * v[a] for a in range(d)))
    hs = [float(t) for t in h]
    zero = torch.zeros_like(M[:, 0, 0])
    s_of: dict[int, Tensor] = {}

    def tangent(name: str, j: int) -> list[Tensor]:
        if name == "layer.means":
            dg = g * v[j]
            dv = [-M[None, :, a, j] for a in range(d)]
            dM = None
        else:
            k, j = divmod(j, d)
            w = proj[:, k, :]  # (m, d): row k of every W_i
            if k not in s_of:
                s_of.clear()
                s_of[k] = applied(w)
            s = s_of[k]
            dg = -g * s * z[j]
            dv = [w[None, :, a] * z[j] + (s if a == j else 0.0) for a in range(d)]
            dM = [[(w[:, b] if a == j else zero) + (w[:, a] if b == j else zero)
                   for b in range(d)] for a in range(d)]

        def second(a: int, b: int) -> Tensor:  # ∂²g/∂x̂_a∂x̂_b = g (v_a v_b − M_ab), changed
            out = dg * (v[a] * v[b] - M[None, :, a, b]) + g * (dv[a] * v[b] + v[a] * dv[b])
            return out - g * dM[a][b][None] if dM is not None else out

        out = []
        for kind, _, axes in queries:
            if kind == "laplacian":
                out.append(sum(second(a, a) / hs[a] ** 2 for a in axes))
            elif kind == "value" or len(axes) == 0:
                out.append(dg)
            elif len(axes) == 1:
                a = axes[0]
                out.append(-(dg * v[a] + g * dv[a]) / hs[a])
            else:
                a, b = axes
                out.append(second(a, b) / (hs[a] * hs[b]))
        return out

    return tangent


def gmnm_tangents(model, queries: Sequence[Query], x: Points, names: Sequence[str],
                  n_outputs: int) -> tuple[list[Tensor], list[Tensor]] | None:
    """The quantities of ``model`` (a :class:`~.gmnm.GMNM` with a plain layer) at ``x``
    and their tangents along the parameters ``names`` (in that order, each flattened), in
    the shapes :func:`pinn_gmnm.training.jacobian._quantities` returns; None when a
    parameter or a query is not covered."""
    layer = model.layer
    sizes = {"layer.means": layer.means[0].numel(), "layer.proj": layer.proj[0].numel(),
             "layer.weights": layer.weights.shape[1], "layer.bias": None}
    if any(n not in sizes for n in names):
        return None
    with torch.no_grad():
        means, proj = layer.means.detach(), layer.proj.detach()
        weights, bias = layer.weights.detach(), layer.bias.detach()
        c = torch.tensor(model.normalize.center, dtype=means.dtype, device=means.device)
        h = torch.tensor(model.normalize.half_width, dtype=means.dtype, device=means.device)
        m, o = weights.shape
        n = len(x)

        A = torch.einsum("mkd,mke->mde", proj, proj) / (h[:, None] * h[None, :])
        F = _feature_quantities(A, c + h * means, x, queries)
        if F is None:
            return None
        tangent = _tangents(x, c, h, means, proj, queries)
        P = sum(m * sizes[k] if k != "layer.bias" else o for k in names)
        outs = [list(range(o)) if kind == "value" or output is None else [output]
                for kind, output, _ in queries]
        tangents = [F.new_zeros(P, n, len(cols)) for cols in outs]
        at = 0
        for name in names:
            if name in ("layer.means", "layer.proj"):
                # ∂Q[g_i]/∂θ_i,j for coordinate j of every Gaussian's centre (projection) at
                # once, (Q, n, m); along θ_i,j in output c: π_ic times that
                size = sizes[name]
                for j in range(size):
                    for T, cols, dq in zip(tangents, outs, tangent(name, j)):
                        T[at:at + m * size].view(m, size, n, len(cols))[:, j].copy_(
                            torch.einsum("ni,ic->inc", dq, weights[:, cols]))
                at += m * size
            elif name == "layer.weights":  # along π_ic': feature i's quantity in output c'
                for T, cols, fq in zip(tangents, outs, F):
                    block = T[at:at + m * o].view(m, o, n, len(cols))
                    for k, col in enumerate(cols):
                        block[:, col, :, k] = fq.T
                at += m * o
            else:  # the bias: 1 in its own output, for values
                for T, cols, (kind, _, axes) in zip(tangents, outs, queries):
                    if _with_bias(kind, axes):
                        for k, col in enumerate(cols):
                            T[at + col, :, k] = 1.0
                at += o
        values = []
        for qi, (kind, output, axes) in enumerate(queries):
            cols = outs[qi]
            V = F[qi] @ weights[:, cols] + (bias[cols] if _with_bias(kind, axes) else 0.0)
            if not (kind == "value" or output is None):  # one output: (n,), tangents (P, n)
                V, tangents[qi] = V[:, 0], tangents[qi][..., 0]
            values.append(V)
    return values, tangents
