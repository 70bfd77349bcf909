"""The model contract: what a surrogate can do, declared once.

Training never guesses what a model can do. A model derives from :class:`Surrogate`
and overrides the members below where it can do more than the defaults; training asks
through :func:`capabilities`, :func:`linear_head_of` and :func:`closed_form_engine`.
Any other ``nn.Module`` mapping points (n, d) to values (n, k) also trains, with the
defaults: autograd derivatives, gradient-based methods only.

==========================  =========================================================
member                      default and meaning
==========================  =========================================================
``in_features``             input dimension d the model was built for
``out_features``            number of outputs k
``linear_head()``           None; a :class:`~.head.LinearHead` when the output is
                            ``features(x) @ W + b``: least squares, variable
                            projection and the head-only Gauss–Newton stage need it
``derivative_engine(x)``    None (autograd); a closed-form
                            :class:`~pinn_gmnm.derivatives.DerivativeEngine`
``least_squares_by_default``  True; False keeps ``--method auto`` off least squares
                            and Gauss–Newton (KAN: least squares over random spline
                            features fits unseen points badly)
``fixed_method()``          None; a :class:`~pinn_gmnm.methods.Method` the model always
                            trains with, whatever the run asks (the PINN baseline)
``training_callbacks()``    []; callbacks the model needs during training (KAN's grid
                            updates)
``parameter_tangents(...)``  None (``torch.func`` per point); the quantities a residual
                            asks for and their derivatives along the named parameters
                            in closed form, for Gauss–Newton's Jacobian (GMNM)
==========================  =========================================================

Wrappers (:class:`~.hard.HardConstraint`) implement the contract too, forwarding what
still holds for the wrapped model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from torch import Tensor, nn

from .._types import Points

if TYPE_CHECKING:
    from ..derivatives import DerivativeEngine
    from ..methods import Method
    from .head import LinearHead


class Surrogate(nn.Module):
    """Base class of every model in the library (see the module docstring)."""

    in_features: int
    out_features: int
    least_squares_by_default: ClassVar[bool] = True

    def linear_head(self) -> LinearHead | None:
        """The linear output layer, or None when the model has none."""
        return None

    def derivative_engine(self, x: Points) -> DerivativeEngine | None:
        """Closed-form derivatives at ``x``, or None to let autograd answer."""
        return None

    def fixed_method(self) -> Method | None:
        """The method this model always trains with, or None to follow the run's."""
        return None

    def training_callbacks(self) -> list[Any]:
        """Training callbacks the model needs (fresh objects for each call)."""
        return []

    def parameter_tangents(self, queries: Sequence[Any], x: Points, names: Sequence[str],
                           n_outputs: int) -> tuple[list[Tensor], list[Tensor]] | None:
        """The recorded ``queries`` (see :mod:`pinn_gmnm.training.jacobian`) at ``x`` and
        their tangents along the parameters ``names``, or None to let the generic path
        (``torch.func`` per point) compute them."""
        return None


@dataclass(frozen=True)
class Capabilities:
    """What :func:`capabilities` reports about a model."""

    linear_head: bool
    closed_form: bool
    least_squares_by_default: bool
    fixed_method: Method | None


def capabilities(model: nn.Module) -> Capabilities:
    """The declared capabilities of ``model`` (the defaults for a plain ``nn.Module``)."""
    if not isinstance(model, Surrogate):
        return Capabilities(False, False, True, None)
    return Capabilities(
        linear_head=model.linear_head() is not None,
        closed_form=type(model).derivative_engine is not Surrogate.derivative_engine,
        least_squares_by_default=model.least_squares_by_default,
        fixed_method=model.fixed_method(),
    )


def linear_head_of(model: nn.Module) -> LinearHead | None:
    """``model``'s linear output layer, or None."""
    return model.linear_head() if isinstance(model, Surrogate) else None


def closed_form_engine(model: nn.Module, x: Points) -> DerivativeEngine | None:
    """``model``'s closed-form derivative engine at ``x``, or None (use autograd)."""
    return model.derivative_engine(x) if isinstance(model, Surrogate) else None


def parameter_tangents(model: nn.Module, queries: Sequence[Any], x: Points,
                       names: Sequence[str], n_outputs: int
                       ) -> tuple[list[Tensor], list[Tensor]] | None:
    """``model``'s closed-form quantities and tangents (see
    :meth:`Surrogate.parameter_tangents`), or None."""
    if not isinstance(model, Surrogate):
        return None
    return model.parameter_tangents(queries, x, names, n_outputs)


def training_callbacks(model: nn.Module) -> list[Any]:
    """The callbacks ``model`` declares it needs during training."""
    return model.training_callbacks() if isinstance(model, Surrogate) else []


def input_features(model: nn.Module) -> int | None:
    """The input dimension ``model`` declares, or None when it declares none."""
    return model.in_features if isinstance(model, Surrogate) else None
