"""The physics-informed loss: weighted mean squares of the PDE and condition residuals."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from .._types import Points
from ..derivatives import Field
from ..errors import GMNMError, unknown
from ..problem import Problem
from ..distributed import SERIAL, Serial
from .batch import Batch


class BasisFields(Protocol):
    """Fields whose values have one row per basis function of a model's linear head
    (:class:`~pinn_gmnm.training.linear.Basis` is one): ``rows`` rows."""

    rows: int

    def field(self, x: Points) -> Field: ...


@contextmanager
def _torch_errors_explained(name: str, basis: BasisFields | None) -> Iterator[None]:
    """Explain two errors torch raises inside the problem's own functions with a message
    that does not say what to change: "does not require grad" when they call
    torch.autograd (the solvers evaluate residuals with gradients off: closed-form
    derivatives), and a size mismatch on a basis field, whose values carry a leading
    dimension (B, n), when they index the points' axis as the first (``u.grad()[:, 0]``:
    u.grad() is (B, n, d) there)."""
    try:
        yield
    except RuntimeError as exc:
        if not torch.is_grad_enabled() and "does not require grad" in str(exc):
            raise GMNMError(
                f"{name}: the residual or a condition calls torch.autograd itself, but "
                "residuals are evaluated with gradients off (the model's derivatives are in "
                "closed form): compute it inside `with torch.enable_grad():` on a copy of the "
                f"points that requires grad (torch said: {exc})") from exc
        if basis is not None and "size of tensor" in str(exc):
            raise GMNMError(
                f"{name}: the residual or a condition failed on a basis of functions, which "
                "least squares evaluates it on: there every value has a leading dimension "
                "(B, n) and u.grad() is (B, n, d), so index the last axis (u.grad()[..., 0], "
                "or u.d(\"x\")) and write it with elementwise operations "
                f"(torch said: {exc})") from exc
        raise


def term_names(problem: Problem, n_equations: int = 1) -> list[str]:
    """Loss term names: ``pde`` (``pde1``, ``pde2``… for systems), then one per condition,
    named by its label and numbered when labels repeat."""
    names = ["pde"] if n_equations == 1 else [f"pde{i + 1}" for i in range(n_equations)]
    labels = [c.label for c in problem.conditions]
    for i, label in enumerate(labels):
        names.append(label if labels.count(label) == 1 else f"{label}{labels[:i + 1].count(label)}")
    return names


class _Zeros:
    """The derivative engine of the zero function, which is all it takes to count the
    equations a residual returns."""

    def __init__(self, x: Points, outputs: int) -> None:
        self.x, self.outputs = x, outputs

    def value(self) -> Tensor:
        return self.x.new_zeros(len(self.x), self.outputs)

    def partial(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        return self.value() if output is None else self.x.new_zeros(len(self.x))

    laplacian = partial


def _count_equations(problem: Problem, x: Points) -> int | None:
    """How many equations the problem's residual returns (its terms ``pde``, or ``pde1``,
    ``pde2``… for systems), from the zero function at a few points; None when the
    residual cannot be evaluated there (the checked first evaluation reports why)."""
    p = problem
    try:
        return len(p.residuals(Field(_Zeros(x, p.n_outputs), p.variables, p.outputs, p.spatial), x))
    except Exception:
        return None


class Loss:
    """Σ_terms w_t · mean(r_t²) over a fixed :class:`Batch`.

    ``weights`` maps term names (see :func:`term_names`) to weights; a condition's own
    ``weight`` is used where none is given, and 1 for the PDE.

    Each mean divides by the term's number of points over all ranks (``parallel``, see
    :mod:`pinn_gmnm.distributed`), so in data-parallel training each rank's value is its
    share and the shares add up to the loss of a single process holding every point.
    """

    def __init__(self, problem: Problem, batch: Batch, weights: Mapping[str, float] | None = None,
                 *, closed_form: bool = True, parallel: Serial = SERIAL) -> None:
        self.problem, self.closed_form, self.parallel = problem, closed_form, parallel
        self.batch = batch
        self.weights_given = dict(weights or {})
        self._names: list[str] | None = None
        self._weights: list[float] | None = None
        self.pointwise = True
        """Whether each residual row may depend on its own point only: cleared when the
        output layer's Jacobian finds one that does not (a periodic condition pairs
        points), so that later Jacobians of this loss go straight to the general path."""
        self.equal_rows = False
        """Whether the least-squares systems built from this loss scale every row to the
        same norm, √(u_t / n_t) with u_t its term's user weight, instead of by the term
        weights (set for a mixture graded towards a corner, see :mod:`.corners`); the
        loss value itself stays Σ w_t mean(r_t²)."""
        equations = _count_equations(problem, batch.interior[:2])
        if equations is not None:  # else the first evaluation says what is wrong
            self._set_names(equations)

    @property
    def batch(self) -> Batch:
        return self._batch

    @batch.setter
    def batch(self, batch: Batch) -> None:
        """New points (resampling, refinement): the point counts are taken afresh."""
        self._batch = batch
        self._counts: list[int] | None = None

    def residuals(self, model: nn.Module, basis: BasisFields | None = None, *,
                  batch: Batch | None = None) -> list[Tensor]:
        """Every residual vector: the PDE's (one per equation), then each condition's.

        With a ``basis`` (see :mod:`pinn_gmnm.training.linear`) each residual has shape
        (B, n): its values for each basis function of the model's linear head. ``batch``
        evaluates them on other points (a piece of the loss's batch, see
        :mod:`pinn_gmnm.training.streamed`); the counts stay those of the loss's batch.
        """
        p, b = self.problem, (self.batch if batch is None else batch)
        if basis is None:
            field = lambda x: p.field(model, x, closed_form=self.closed_form)  # noqa: E731
            rows = None
        else:
            field, rows = basis.field, basis.rows
        with _torch_errors_explained(p.name, basis):
            return self._residuals(p, b, field, rows, batch)

    def _residuals(self, p: Problem, b: Batch, field: Callable[[Tensor], Any],
                   rows: int | None, batch: Batch | None) -> list[Tensor]:
        out = p.residuals(field(b.interior), b.interior, rows)
        for c, x in zip(p.conditions, b.conditions):
            expected = (len(x),) if rows is None else (rows, len(x))
            if batch is not None and len(x) == 0:
                # a piece without this condition's points: a condition kept whole (its
                # values belong to all its points, in order) lies in the first piece only
                out.append(b.interior.new_zeros(expected))
                continue
            try:
                r = c.residual(field(x), x, p.geometry)
            except GMNMError as exc:
                raise GMNMError(f"{p.name}: condition '{c.label}': {exc}") from exc
            if r.shape != expected:
                raise GMNMError(
                    f"{p.name}: condition '{c.label}' gives residuals of shape "
                    f"{tuple(r.shape)}, expected {expected}"
                )
            out.append(r)
        if self._names is None:
            self._set_names(len(out) - len(p.conditions))
        if self._counts is None:
            full = self.batch
            sizes = ([len(full.interior)] * (len(out) - len(p.conditions))
                     + [len(x) for x in full.conditions])
            self._counts = [self.parallel.total(n) for n in sizes]
        return out

    def _set_names(self, n_equations: int) -> None:
        names = term_names(self.problem, n_equations)
        for key, w in self.weights_given.items():
            if key not in names:
                raise unknown("loss term", key, names)
            if not 0 <= float(w) < float("inf"):
                raise GMNMError(f"loss weight '{key}' must be a finite number >= 0, got {w!r}")
        defaults = [1.0] * n_equations + [c.weight for c in self.problem.conditions]
        self._names = names
        self._user = [float(self.weights_given.get(n, d)) for n, d in zip(names, defaults)]
        self._weights = list(self._user)

    @property
    def names(self) -> list[str]:
        """The terms' names (known from construction, see :func:`term_names`)."""
        assert self._names is not None, "the residual could not be evaluated: no terms"
        return self._names

    @property
    def counts(self) -> list[int]:
        """Points per term, over all ranks."""
        assert self._counts is not None, "evaluate the loss once before asking for its counts"
        return self._counts

    @property
    def weights(self) -> list[float]:
        """The terms' weights, in the order of :attr:`names`."""
        assert self._weights is not None, "the residual could not be evaluated: no terms"
        return self._weights

    def weights_state(self) -> list[float] | None:
        """The current weights as plain data for a checkpoint."""
        return None if self._weights is None else list(self._weights)

    def load_weights_state(self, weights: Sequence[float]) -> None:
        """Restore weights saved by :meth:`weights_state`."""
        self._weights = [float(w) for w in weights]

    @property
    def user_weights(self) -> list[float]:
        """The weights as given (``weights``, else each condition's own, else 1), before any
        automatic scaling."""
        assert self._names is not None, "the residual could not be evaluated: no terms"
        return list(self._user)

    def scale_terms(self, factors: Sequence[float]) -> None:
        """Weights ← user weights × ``factors``, one per term (equilibration, see
        :mod:`.equilibrate`): the user's weights stay multipliers on top of the scaling."""
        if len(factors) != len(self.names):
            raise GMNMError(f"{len(factors)} term scales for {len(self.names)} loss terms")
        self._weights = [u * float(f) for u, f in zip(self._user, factors)]

    def set_weights(self, weights: Mapping[str, float]) -> None:
        """Change terms' weights by name during training (adaptive balancing)."""
        for name, w in weights.items():
            if name not in self.names:
                raise GMNMError(f"loss weight for unknown term '{name}'; terms: {', '.join(self.names)}")
            self.weights[self.names.index(name)] = float(w)

    def weighted(self, residuals: Sequence[Tensor]) -> Tensor:
        """The residuals scaled by √(w_t / n_t) and stacked into one vector r, so that
        ‖r‖² is the loss (this rank's share of it)."""
        return torch.cat([r * math.sqrt(w / c)
                          for w, r, c in zip(self.weights, residuals, self.counts)], dim=-1)

    def __call__(self, model: nn.Module) -> tuple[Tensor, dict[str, Tensor]]:
        """The total loss and each term's unweighted mean square."""
        rs = self.residuals(model)
        return self._total([r.square().sum() for r in rs])

    def in_pieces(self, model: nn.Module, rows: int) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss's value as :meth:`__call__` gives it (detached: no back-propagation),
        summed over pieces of about ``rows`` points, so that only one piece's features
        are held at a time."""
        from .streamed import pieces

        sums: list[Tensor] = []
        for piece in pieces(self, rows):
            part = [r.detach().square().sum() for r in self.residuals(model, batch=piece)]
            sums = part if not sums else [a + b for a, b in zip(sums, part)]
        return self._total(sums)

    def _total(self, sums: Sequence[Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        parts = {n: s / c for n, s, c in zip(self.names, sums, self.counts)}
        total = sum(w * v for w, v in zip(self.weights, parts.values()))
        return torch.as_tensor(total), parts
