"""A GMNM's quantities and their tangents along every parameter, in closed form.

Gauss–Newton needs, for each quantity a residual asks for (a value, a partial derivative
up to second order, a Laplacian; see :mod:`pinn_gmnm.training.jacobian`), its derivative
along every parameter. For G(x) = Σ_i π_i g_i(x) + b the structure does most of the work:

- along π_ic: feature i's quantity, in output c;
- along b_c: 1 for values, 0 for derivatives;
- along Gaussian i's centre and projection θ_i = (μ_i, W_i): π_ic ∂Q[g_i]/∂θ_i, which
  depends on Gaussian i alone. So one forward-mode derivative of the (n, m) matrix
  Q[g_i](x_p) along "coordinate j of every θ_i at once" gives ∂Q[g_i]/∂θ_i,j for every
  point and Gaussian: d + k·d passes of an (n, m) computation, where the generic path
  differentiates the whole model at every point in reverse mode (``jacrev`` over all
  P parameters, per point), about twenty times slower for a few thousand parameters.

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


def _value_tangents(x: Points, c: Tensor, h: Tensor, means: Tensor, proj: Tensor, g: Tensor
                    ) -> Callable[[str, int], Tensor]:
    """For values alone (a fit's residual, a Dirichlet condition's): ``tangent(name, j)``,
    ∂g_i(x_p)/∂θ_i,j for coordinate j of every Gaussian's centre (``layer.means``) or
    projection (``layer.proj``, row-major (k, d)) at once, shape (n, m), from g (n, m).
    With z = x̂ − μ_i in the model's normalised coordinates x̂ = (x − c)/h:
    ∂g/∂μ_j = g (W_iᵀW_i z)_j and ∂g/∂W_kj = −g (W_i z)_k z_j, each (n, m) array one
    matrix product, where a forward-mode pass per coordinate costs several times more."""
    xn = (x - c) / h
    d = xn.shape[1]

    def applied(M: Tensor, row: int) -> Tensor:
        """(M_i z)_row for every point and Gaussian, M (m, ·, d)."""
        return xn @ M[:, row, :].T - (M[:, row, :] * means).sum(dim=1)

    def tangent(name: str, j: int) -> Tensor:
        if name == "layer.means":
            return g * applied(torch.einsum("mkd,mke->mde", proj, proj), j)
        k, col = divmod(j, d)
        return -g * applied(proj, k) * (xn[:, col, None] - means[None, :, col])

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

        def features(mu_n: Tensor, W: Tensor) -> Tensor | None:
            A = torch.einsum("mkd,mke->mde", W, W) / (h[:, None] * h[None, :])
            return _feature_quantities(A, c + h * mu_n, x, queries)

        F = features(means, proj)
        if F is None:
            return None
        values_only = all(_with_bias(kind, axes) for kind, _, axes in queries)
        value_tangent = _value_tangents(x, c, h, means, proj, F[0]) if values_only else None
        P = sum(m * sizes[k] if k != "layer.bias" else o for k in names)
        outs = [list(range(o)) if kind == "value" or output is None else [output]
                for kind, output, _ in queries]
        tangents = [F.new_zeros(P, n, len(cols)) for cols in outs]
        at = 0
        for name in names:
            if name in ("layer.means", "layer.proj"):
                # ∂Q[g_i]/∂θ_i,j for coordinate j of every Gaussian's centre (projection) at
                # once, (Q, n, m); along θ_i,j in output c: π_ic times that
                primal, size = (means if name == "layer.means" else proj), sizes[name]
                for j in range(size):
                    if value_tangent is not None:  # every query a value: one (n, m) array
                        dF = [value_tangent(name, j)] * len(queries)
                    else:
                        e = torch.zeros(size, dtype=primal.dtype, device=primal.device)
                        e[j] = 1.0
                        e = e.reshape(primal.shape[1:]).expand_as(primal)
                        tang = ((e, torch.zeros_like(proj)) if name == "layer.means"
                                else (torch.zeros_like(means), e))
                        dF = torch.func.jvp(features, (means, proj), tang)[1]
                    for T, cols, dq in zip(tangents, outs, dF):
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
