"""A parametrisation of GMNM's projections that keeps the widths well scaled.

The plain layer learns each projection W_i (k × d) entry by entry: one Adam step moves
every entry by about the learning rate, whatever the Gaussian's width, so a narrow
Gaussian (large W) hardly changes its width while a broad one (small W) may flip it.
Here each row of W_i is a log-scale times a unit direction (weight normalisation):

    W_i[j] = exp(ℓ_ij) · v_ij / ‖v_ij‖,        j = 1 … k,

so ℓ_ij = −log(width along that direction) moves widths by relative amounts, and the
directions v_ij only turn. The issue suggested a unit-diagonal factor; unit-norm rows
represent every W with non-zero rows, k ≠ d included, which a unit diagonal does not.
The function is the plain layer's for equal A_i = W_iᵀW_i; only the training differs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .gmnm import GMNMLayer


class ScaledGMNMLayer(GMNMLayer):
    r"""A :class:`~.gmnm.GMNMLayer` whose projections are W_i[j] = exp(ℓ_ij) v_ij/‖v_ij‖.

    Parameters ``means`` (m, d), ``log_scale`` (m, k), ``directions`` (m, k, d),
    ``weights`` (m, o), ``bias`` (o,); initialised to the same function as the plain
    layer built with the same arguments and random state.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        W = self._parameters.pop("proj").detach()
        self.log_scale = nn.Parameter(torch.empty(W.shape[:-1], dtype=W.dtype))
        self.directions = nn.Parameter(torch.empty_like(W))
        self.set_projections(W)

    @torch.no_grad()
    def set_projections(self, W: Tensor) -> None:
        """Set the parameters so that the projections equal ``W`` (m, k, d), rows non-zero."""
        norms = W.norm(dim=-1)
        self.log_scale.copy_(norms.log())
        self.directions.copy_(W / norms[..., None])

    @property
    def proj(self) -> Tensor:  # type: ignore[override]
        """The projections W_i, shape (m, k, d)."""
        unit = self.directions / self.directions.norm(dim=-1, keepdim=True)
        return self.log_scale.exp()[..., None] * unit
