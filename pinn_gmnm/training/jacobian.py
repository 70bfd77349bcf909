"""The Jacobian of the stacked, weighted residual vector with respect to the parameters.

The loss is ‖r(θ)‖² with r = [√(w_t / n_t) · r_t]_t, the residuals of every term (PDE
equations, then conditions) stacked. Gauss–Newton needs J = ∂r/∂θ, an (N, P) matrix.

Computing J naively (forward or reverse mode through the whole loss) costs P or N
evaluations of the loss, each over all n points. Two facts make it cheaper:

1. Models are pointwise: the output at x_p depends on x_p and θ only. So the Jacobian
   of each quantity a residual asks for (u, ∂_x u, Δu, …; call them V_q) is obtained
   point by point: ``vmap`` over the points of ``jacrev`` over the model's own
   closed-form (or forward-mode) derivative engine at a single point, which costs about
   as much as one backward pass per quantity, not one per residual row.
2. The residual is a function of the quantities: r = f(V_1, …, V_Q). Its Jacobian is the
   directional derivative of f along each parameter's tangents ∂V_q/∂θ_j, a ``jvp``
   vmapped over the P parameters. f only does arithmetic on (n,) vectors, so this is
   cheap, and it makes no assumption on how f combines points (periodic conditions, say).

Which quantities a residual asks for is found by evaluating it once with a recording
engine; it is then evaluated on the recorded quantities. The model must be pointwise (no
batch statistics), which every model in this package is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .._types import Points
from ..derivatives import DerivativeEngine, Field, FuncEngine, engine_for
from ..errors import GMNMError
from .loss import Loss

Query = tuple[str, "int | None", tuple[int, ...]]
"""(kind, output, axes): kind is ``value``, ``partial`` or ``laplacian``."""


def _ask(engine: DerivativeEngine, query: Query) -> Tensor:
    kind, output, axes = query
    if kind == "value":
        return engine.value()
    if kind == "partial":
        return engine.partial(output, axes)
    return engine.laplacian(output, axes)


class _Recorder:
    """A derivative engine that answers from ``engine`` and notes every question."""

    def __init__(self, engine: DerivativeEngine) -> None:
        self.engine = engine
        self.queries: list[Query] = []

    def _note(self, query: Query) -> Tensor:
        if query not in self.queries:
            self.queries.append(query)
        return _ask(self.engine, query)

    def value(self) -> Tensor:
        return self._note(("value", None, ()))

    def partial(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        return self._note(("partial", output, axes))

    def laplacian(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        return self._note(("laplacian", output, axes))


class _Replay:
    """A derivative engine that answers recorded questions from given tensors."""

    def __init__(self, queries: Sequence[Query], values: Sequence[Tensor]) -> None:
        self.answers = dict(zip(queries, values))

    def _get(self, query: Query) -> Tensor:
        if query not in self.answers:
            raise GMNMError(
                f"the residual asked for {query} only on its second evaluation; residuals must "
                "ask for the same derivatives every time (no branching on values)"
            )
        return self.answers[query]

    def value(self) -> Tensor:
        return self._get(("value", None, ()))

    def partial(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        return self._get(("partial", output, axes))

    def laplacian(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        return self._get(("laplacian", output, axes))


class _Fields:
    """Hands :meth:`Loss.residuals` one field per point set, from engines it makes."""

    rows = None

    def __init__(self, loss: Loss, make) -> None:
        self.problem, self.make = loss.problem, make
        self.engines: list = []

    def field(self, x: Points) -> Field:
        p = self.problem
        engine = self.make(len(self.engines), x)
        self.engines.append(engine)
        return Field(engine, p.variables, p.outputs, p.spatial)


def stack_residuals(loss: Loss, rs: Sequence[Tensor]) -> Tensor:
    """[√(w_t / n_t) · r_t]_t as one vector, so that ‖r‖² is the loss."""
    return torch.cat([r * math.sqrt(w / r.shape[-1]) for w, r in zip(loss.weights, rs)], dim=-1)


def residual_vector(loss: Loss, model: nn.Module) -> Tensor:
    """The stacked, weighted residual vector r (N,) with loss = ‖r‖²."""
    return stack_residuals(loss, loss.residuals(model))


class _Quantities(nn.Module):
    """The recorded quantities of one point set at a single point, flattened, as a module
    so ``functional_call`` can swap the parameters."""

    def __init__(self, model: nn.Module, queries: Sequence[Query]) -> None:
        super().__init__()
        self.model, self.queries = model, list(queries)

    def forward(self, xp: Tensor) -> Tensor:
        x = xp[None]
        make = getattr(self.model, "derivative_engine", None)
        engine = make(x) if make is not None else FuncEngine(self.model, x)
        return torch.cat([_ask(engine, q).reshape(-1) for q in self.queries])


CHUNK_FLOATS = 2**25
"""About how many floats one vmapped chunk may hold (256 MB in float64)."""


def residual_jacobian(loss: Loss, model: nn.Module, params: Sequence[nn.Parameter]
                      ) -> tuple[Tensor, Tensor]:
    """(r, J): the stacked, weighted residual vector (N,) and its Jacobian (N, P) with
    respect to ``params`` (flattened in order), computed as the module docstring says.
    """
    ids = {id(p) for p in params}
    names = {id(p): n for n, p in model.named_parameters()}
    if any(i not in names for i in ids):
        raise GMNMError("gauss-newton: every trained parameter must belong to the model")
    order = [names[id(p)] for p in params]
    theta = {n: p.detach() for n, p in zip(order, params)}
    frozen = {n: p.detach() for n, p in model.named_parameters() if id(p) not in ids}
    sizes = [p.numel() for p in params]

    # 1. What does the residual ask for, point set by point set?
    recorders = _Fields(loss, lambda i, x: _Recorder(engine_for(model, x)))
    with torch.no_grad():
        loss.residuals(model, recorders)
    queries = [r.queries for r in recorders.engines]
    points = [loss.batch.interior, *loss.batch.conditions]

    # 2. Each quantity and its parameter Jacobian, point by point.
    values: list[list[Tensor]] = []
    tangents: list[list[Tensor]] = []
    for qs, x in zip(queries, points):
        if not qs:
            values.append([])
            tangents.append([])
            continue
        module = _Quantities(model, qs)
        chunk = _chunk(len(qs) * (sum(sizes) + 1024))

        def at_point(th: dict[str, Tensor], xp: Tensor, module=module) -> Tensor:
            state = {f"model.{k}": v for k, v in {**frozen, **th}.items()}
            return torch.func.functional_call(module, state, (xp,))

        try:
            with torch.no_grad():
                flat = torch.func.vmap(at_point, in_dims=(None, 0), chunk_size=chunk)(theta, x)
                jac = torch.func.vmap(torch.func.jacrev(at_point), in_dims=(None, 0),
                                      chunk_size=chunk)(theta, x)
        except (RuntimeError, NotImplementedError) as exc:
            raise GMNMError(
                f"gauss-newton could not differentiate {type(model).__name__}'s derivatives "
                f"with torch.func ({type(exc).__name__}: {str(exc).splitlines()[0]}); this "
                "happens with derivatives above second order: use the adam/lbfgs stages"
            ) from exc
        J = torch.cat([jac[k].reshape(len(x), flat.shape[1], -1) for k in order], dim=2)
        vs, ts, start = [], [], 0
        for q in qs:
            shape = _shape(q, loss.problem.n_outputs)
            width = math.prod(shape)
            vs.append(flat[:, start:start + width].reshape(len(x), *shape))
            # (P, n, *shape): the tangent of this quantity along each parameter
            ts.append(J[:, start:start + width].permute(2, 0, 1).reshape(-1, len(x), *shape))
            start += width
        values.append(vs)
        tangents.append(ts)

    # 3. The residual's own linearisation along every parameter.
    def f(*flat_values: Tensor) -> Tensor:
        it = iter(flat_values)
        given = [[next(it) for _ in qs] for qs in queries]
        replay = _Fields(loss, lambda i, x: _Replay(queries[i], given[i]))
        return stack_residuals(loss, loss.residuals(model, replay))

    primals = tuple(v for vs in values for v in vs)
    dirs = tuple(t for ts in tangents for t in ts)
    with torch.no_grad():
        r = f(*primals)
        if not primals:
            return r, r.new_zeros(len(r), sum(sizes))
        jvp = torch.func.vmap(lambda *t: torch.func.jvp(f, primals, t)[1],
                              chunk_size=_chunk(4 * len(r)))
        Jr = jvp(*dirs)  # (P, N)
    return r, Jr.T


def _chunk(floats_each: int) -> int:
    """How many items of ``floats_each`` floats to vmap at once."""
    return max(16, CHUNK_FLOATS // max(1, floats_each))


def _shape(query: Query, n_outputs: int) -> tuple[int, ...]:
    """Per-point shape of a quantity: (k,) for all outputs, () for one."""
    kind, output, _ = query
    return (n_outputs,) if kind == "value" or output is None else ()
