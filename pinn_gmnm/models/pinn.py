"""The classic physics-informed neural network, as users know it from DeepXDE.

Raissi, Perdikaris & Karniadakis (2019), with DeepXDE's usual settings: a tanh MLP with
Glorot-normal weights and zero biases, equal loss weights, trained with Adam at a
constant learning rate of 1e-3 and then L-BFGS. The architecture is :class:`MLP`'s; what
makes it the PINN baseline is that it always trains with this recipe, whatever method a
run asks for (the ``mlp`` model is the same network trained like GMNM).
"""

from __future__ import annotations

from ..methods import AdamLBFGSMethod, Method
from .base import Bounds
from .mlp import MLP

PINN_LR = 1e-3
"""DeepXDE's usual Adam learning rate (constant, no decay)."""

PINN_LBFGS_HISTORY = 100
"""DeepXDE's L-BFGS memory (``maxcor``)."""


class PINN(MLP):
    """A tanh MLP trained with the classic recipe: Adam (lr 1e-3) then L-BFGS."""

    def __init__(self, in_features: int, out_features: int = 1, width: int = 50, depth: int = 3,
                 *, bounds: Bounds | None = None) -> None:
        super().__init__(in_features, out_features, width, depth, "tanh", bounds=bounds)

    def fixed_method(self) -> Method:
        """Adam at a constant learning rate of 1e-3, then L-BFGS with DeepXDE's memory;
        the run's Adam and L-BFGS step counts apply."""
        return AdamLBFGSMethod(lr=PINN_LR, decay=False, history=PINN_LBFGS_HISTORY)
