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
   When every row depends on its own point alone (checked, :func:`_agrees`), the chain
   rule is cheaper still: row j's derivative is Σ_q ∂f/∂V_q(x_j) ∂V_q(x_j)/∂θ, with the
   coefficients ∂f/∂V_q from a backward pass per equation (:func:`_chain`).

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
from ..models.contract import closed_form_engine, linear_head_of, parameter_tangents
from ..models.head import ConstantColumn, LinearHead
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


class _QueryEngine:
    """A derivative engine whose every answer goes through ``_answer(query)``."""

    def _answer(self, query: Query) -> Tensor:
        raise NotImplementedError

    def value(self) -> Tensor:
        return self._answer(("value", None, ()))

    def partial(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        return self._answer(("partial", output, axes))

    def laplacian(self, output: int | None, axes: tuple[int, ...]) -> Tensor:
        return self._answer(("laplacian", output, axes))


class _Recorder(_QueryEngine):
    """Answers from ``engine`` and notes every question."""

    def __init__(self, engine: DerivativeEngine) -> None:
        self.engine = engine
        self.queries: list[Query] = []

    def _answer(self, query: Query) -> Tensor:
        if query not in self.queries:
            self.queries.append(query)
        return _ask(self.engine, query)


class _Replay(_QueryEngine):
    """Answers recorded questions from given tensors."""

    def __init__(self, queries: Sequence[Query], values: Sequence[Tensor]) -> None:
        self.answers = dict(zip(queries, values))

    def _answer(self, query: Query) -> Tensor:
        if query not in self.answers:
            raise GMNMError(
                f"the residual asked for {query} only on its second evaluation; residuals must "
                "ask for the same derivatives every time (no branching on values)"
            )
        return self.answers[query]


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


def residual_vector(loss: Loss, model: nn.Module) -> Tensor:
    """The stacked, weighted residual vector r (N,) with loss = ‖r‖²."""
    return loss.weighted(loss.residuals(model))


class _Quantities(nn.Module):
    """The recorded quantities of one point set at a single point, flattened, as a module
    so ``functional_call`` can swap the parameters."""

    def __init__(self, model: nn.Module, queries: Sequence[Query]) -> None:
        super().__init__()
        self.model, self.queries = model, list(queries)

    def forward(self, xp: Tensor) -> Tensor:
        x = xp[None]
        engine = closed_form_engine(self.model, x)
        engine = FuncEngine(self.model, x) if engine is None else engine
        return torch.cat([_ask(engine, q).reshape(-1) for q in self.queries])


CHUNK_FLOATS = 2**25
"""About how many floats one vmapped chunk may hold (256 MB in float64)."""


class _Replayed(nn.Module):
    """The residual vector computed from recorded quantities; a module holding the
    problem's unknown coefficients, so ``functional_call`` can swap them too."""

    def __init__(self, loss: Loss, model: nn.Module, queries: list[list[Query]]) -> None:
        super().__init__()
        self.unknowns = nn.ModuleList(loss.problem.unknowns)
        self.loss, self.queries = loss, queries
        self._model = (model,)  # not a submodule: its parameters are not swapped here

    def forward(self, *values: Tensor) -> Tensor:
        it = iter(values)
        given = [[next(it) for _ in qs] for qs in self.queries]
        replay = _Fields(self.loss, lambda i, x: _Replay(self.queries[i], given[i]))
        return self.loss.weighted(self.loss.residuals(self._model[0], replay))


def residual_jacobian(loss: Loss, model: nn.Module, params: Sequence[nn.Parameter]
                      ) -> tuple[Tensor, Tensor]:
    """(r, J): the stacked, weighted residual vector (N,) and its Jacobian (N, P) with
    respect to ``params`` (flattened in order): the model's parameters and the problem's
    unknown coefficients (inverse problems), computed as the module docstring says.
    """
    in_model = {id(p): n for n, p in model.named_parameters()}
    in_unknowns = {id(p): f"unknowns.{i}.{n}" for i, k in enumerate(loss.problem.unknowns)
                   for n, p in k.named_parameters()}
    for p in params:
        if id(p) not in in_model and id(p) not in in_unknowns:
            raise GMNMError("gauss-newton: a trained parameter belongs neither to the model "
                            "nor to the problem's unknown coefficients")
    own = [p for p in params if id(p) in in_model]
    extra = [p for p in params if id(p) not in in_model]
    order = [in_model[id(p)] for p in own]
    theta = {n: p.detach() for n, p in zip(order, own)}
    frozen = {n: p.detach() for n, p in model.named_parameters() if n not in theta}
    n_own, n_extra = sum(p.numel() for p in own), sum(p.numel() for p in extra)

    # 1. What does the residual ask for, point set by point set?
    recorders = _Fields(loss, lambda i, x: _Recorder(engine_for(model, x)))
    with torch.no_grad():
        loss.residuals(model, recorders)
    queries = [r.queries for r in recorders.engines]
    points = [loss.batch.interior, *loss.batch.conditions]

    # 2. Each quantity and its Jacobian in the model's parameters, point by point; in
    # the linear output layer alone, the tangents are the features' own quantities.
    head = linear_head_of(model)
    head_only = head is not None and [id(p) for p in params] == [id(head.weight), id(head.bias)]
    values: list[Tensor] = []
    tangents: list[Tensor] = []
    if head_only:  # (then there are no unknown coefficients among the parameters)
        assert head is not None
        values, features, where = _head_quantities(model, head, queries, points)
        if loss.pointwise:
            found = _pointwise_head_jacobian(loss, model, head, queries, values, features, where)
            if found is not None:
                return found
            loss.pointwise = False  # a property of the residual, not of the parameters
        tangents = [_head_tangent(head, F, output) for F, (_, output) in zip(features, where)]
    else:
        for qs, x in zip(queries, points):
            if qs:
                vs, ts = _quantities(model, qs, x, theta, frozen, order, loss.problem.n_outputs)
                values += vs
                tangents += ts

    # 3. The residual's own linearisation along every parameter: the model's through
    # the quantities, the unknown coefficients' directly.
    replayed = _Replayed(loss, model, queries)
    if loss.pointwise and not extra and tangents:
        found = _pointwise_jacobian(replayed, loss, values, tangents, queries)
        if found is not None:  # (its columns in the order of ``params``: all are own)
            return found
        loss.pointwise = False
    extra_names = [in_unknowns[id(p)] for p in extra]
    primals = (*values, *(p.detach() for p in extra))

    def f(*args: Tensor) -> Tensor:
        state = dict(zip(extra_names, args[len(values):]))
        return torch.func.functional_call(replayed, state, args[:len(values)])

    dirs = [torch.cat([t, t.new_zeros(n_extra, *t.shape[1:])]) if n_extra else t
            for t in tangents]  # (a copy of every tangent costs as much as the jvp)
    start = n_own
    for p in extra:
        d = p.new_zeros(n_own + n_extra, p.numel())
        d[start:start + p.numel()] = torch.eye(p.numel(), dtype=p.dtype, device=p.device)
        dirs.append(d.reshape(-1, *p.shape))
        start += p.numel()
    with torch.no_grad():
        r = f(*primals)
        jvp = torch.func.vmap(lambda *t: torch.func.jvp(f, primals, t)[1],
                              chunk_size=_chunk(4 * len(r)))
        J = jvp(*dirs).T if dirs else r.new_zeros(len(r), 0)  # (N, P): own, then extra
    # back to the order of ``params``
    offsets, at = {}, 0
    for p in [*own, *extra]:
        offsets[id(p)] = at
        at += p.numel()
    index = torch.cat([torch.arange(offsets[id(p)], offsets[id(p)] + p.numel()) for p in params])
    return r, J[:, index.to(J.device)]


def _quantities(model: nn.Module, queries: list[Query], x: Points, theta: dict[str, Tensor],
                frozen: dict[str, Tensor], order: list[str], n_outputs: int
                ) -> tuple[list[Tensor], list[Tensor]]:
    """The recorded quantities at points ``x`` (each (n,) or (n, k)) and their tangents
    along every parameter in ``theta`` (each (P, n) or (P, n, k)): the model's own closed
    form when it offers one, else ``jacrev`` at every point."""
    found = parameter_tangents(model, queries, x, order, n_outputs)
    if found is not None:
        return found
    module = _Quantities(model, queries)
    n_params = sum(v.numel() for v in theta.values())
    chunk = _chunk(len(queries) * (n_params + 1024))

    def at_point(th: dict[str, Tensor], xp: Tensor) -> Tensor:
        state = {f"model.{k}": v for k, v in {**frozen, **th}.items()}
        return torch.func.functional_call(module, state, (xp,))

    try:
        with torch.no_grad():
            flat = torch.func.vmap(at_point, in_dims=(None, 0), chunk_size=chunk)(theta, x)
            jac = (torch.func.vmap(torch.func.jacrev(at_point), in_dims=(None, 0),
                                   chunk_size=chunk)(theta, x) if theta else {})
    except (RuntimeError, NotImplementedError) as exc:
        raise GMNMError(
            f"gauss-newton could not differentiate {type(model).__name__}'s derivatives "
            f"with torch.func ({type(exc).__name__}: {str(exc).splitlines()[0]}); this "
            "happens with derivatives above second order: use the adam/lbfgs stages"
        ) from exc
    n, width = flat.shape
    J = torch.cat([jac[k].reshape(n, width, -1) for k in order] + [flat.new_zeros(n, width, 0)],
                  dim=2)
    vs, ts, start = [], [], 0
    for q in queries:
        shape = _shape(q, n_outputs)
        size = math.prod(shape)
        vs.append(flat[:, start:start + size].reshape(n, *shape))
        ts.append(J[:, start:start + size].permute(2, 0, 1).reshape(-1, n, *shape))
        start += size
    return vs, ts


def _head_quantities(model: nn.Module, head: LinearHead, queries: list[list[Query]],
                     points: list[Points]
                     ) -> tuple[list[Tensor], list[Tensor], list[tuple[int, int | None]]]:
    """For the parameters of the linear output layer: every recorded quantity (in the
    order of ``queries``, point set by point set), the features' same quantity, (n, m + 1)
    with the constant column of the bias last, and where each belongs: (point set, output,
    None for a quantity of every output). A quantity of u = features(x) @ W + b is the
    same quantity of the features times W, so the features' quantities are its tangents
    (:func:`_head_tangent`)."""
    values, features, where = [], [], []
    with torch.no_grad():
        for s, (qs, x) in enumerate(zip(queries, points)):
            if not qs:
                continue
            engine, columns = engine_for(model, x), ConstantColumn(head.features(x))
            for q in qs:
                kind, output, axes = q
                values.append(_ask(engine, q).detach())
                features.append(_ask(columns, (kind, None, axes)))
                where.append((s, None if _shape(q, head.n_outputs) else output))
    return values, features, where


def _head_tangent(head: LinearHead, F: Tensor, output: int | None) -> Tensor:
    """The tangent of a quantity along every parameter of the output layer (weights as
    stored, then bias), from the features' quantity F (n, m + 1): (P, n, o) for a
    quantity of every output, (P, n) for one of output ``output`` (see :func:`_quantities`)."""
    m, o, n = head.n_features, head.n_outputs, len(F)
    F = F.T
    with torch.no_grad():
        if output is None:  # every output: (P, n, o)
            W = F.new_zeros(o, m, n, o) if head.transposed else F.new_zeros(m, o, n, o)
            B = F.new_zeros(o, n, o)
            for c in range(o):
                (W[c, :, :, c] if head.transposed else W[:, c, :, c]).copy_(F[:m])
                B[c, :, c] = F[m]
        else:  # one output c: (P, n)
            W = F.new_zeros(o, m, n) if head.transposed else F.new_zeros(m, o, n)
            B = F.new_zeros(o, n)
            (W[output] if head.transposed else W[:, output]).copy_(F[:m])
            B[output] = F[m]
    return torch.cat([W.reshape(m * o, *W.shape[2:]), B])


def _pointwise_head_jacobian(loss: Loss, model: nn.Module, head: LinearHead,
                             queries: list[list[Query]], values: list[Tensor],
                             features: list[Tensor], where: list[tuple[int, int | None]]
                             ) -> tuple[Tensor, Tensor] | None:
    """(r, J) in the linear output layer's parameters when every residual row depends only
    on the quantities at its own point (every PDE and most conditions); None otherwise.
    ``values``, ``features`` and ``where`` are :func:`_head_quantities`'.

    Then row j of a term on point set s is r_j = f(V_1(x_j), …, V_Q(x_j)), and its
    derivative along output weight (i, c) is Σ_q ∂f/∂V_qc(x_j) · F_qi(x_j), F_q the
    features' quantity q: the coefficients ∂f/∂V_qc at every point come from a few
    backward passes (:func:`_chain`), where the general path takes a ``jvp`` along each
    parameter's dense tangents (on ``taylor-green``'s 3003 unknowns, 2.2 s a step).
    Whether the rows are pointwise is checked, not assumed (:func:`_agrees`)."""
    o, m = head.n_outputs, head.n_features
    replayed = _Replayed(loss, model, queries)
    with torch.no_grad():
        found = _chain(loss, replayed, values, where)
        if found is None:
            return None
        r, chain = found
        J = r.new_zeros(len(r), m + 1, o)  # the head's matrix layout (see LinearHead.get)
        for i, c, (a, n), g in chain:
            J[a:a + n, :, c].addcmul_(g[:, None], features[i])

        def moved(W: Tensor) -> list[Tensor]:
            W = W.reshape(m + 1, o)
            return [F @ W if output is None else F @ W[:, output]
                    for F, (_, output) in zip(features, where)]

        if not _agrees(replayed, values, J.flatten(1), moved):
            return None
    return r, head.in_parameter_order(J)


def _pointwise_jacobian(replayed: _Replayed, loss: Loss, values: list[Tensor],
                        tangents: list[Tensor], queries: list[list[Query]]
                        ) -> tuple[Tensor, Tensor] | None:
    """(r, J) along the parameters of the quantities' tangents (each (P, n) or (P, n, o))
    when every residual row depends only on the quantities at its own point; None
    otherwise: row j's derivative is Σ_qc ∂f/∂V_qc(x_j) · ∂V_qc(x_j)/∂θ, the coefficients
    from :func:`_chain`, where the general path takes a ``jvp`` along each parameter."""
    o = loss.problem.n_outputs
    where = [(s, None if _shape(q, o) else q[1])
             for s, qs in enumerate(queries) for q in qs]
    with torch.no_grad():
        found = _chain(loss, replayed, values, where)
        if found is None:
            return None
        r, chain = found
        JT = r.new_zeros(tangents[0].shape[0], len(r))  # (P, N): rows contiguous per term
        for i, c, (a, n), g in chain:
            T = tangents[i] if tangents[i].dim() == 2 else tangents[i][..., c]
            JT[:, a:a + n].addcmul_(T, g[None, :])

        def moved(delta: Tensor) -> list[Tensor]:
            return [torch.tensordot(delta, T, dims=1) for T in tangents]

        if not _agrees(replayed, values, JT.T, moved):
            return None
    return r, JT.T


def _chain(loss: Loss, replayed: _Replayed, values: list[Tensor],
           where: list[tuple[int, int | None]]
           ) -> tuple[Tensor, list[tuple[int, int, tuple[int, int], Tensor]]] | None:
    """(r, chain) for rows that depend on their own point: for each quantity i, output c
    and term on its point set, the rows (start, count) of the term and the derivative g
    of each row along V_ic at its own point, where ∂r_j/∂θ = g_j ∂V_ic(x_j)/∂θ. None when
    the rows do not pair with the points (a term not one row a point).

    g is the gradient of the sum of a term's rows (reverse mode: if row j depends on
    point j alone, that sum's gradient at point j is row j's), one backward pass per
    equation on the interior points, the conditions' terms (each on its own point set)
    with the first; a forward-mode pass per quantity costs about six times as much
    (``torch.func.jvp`` on ``rotating_blob``'s residual: 4.4 ms, a backward pass 0.7)."""
    n_pde = len(loss.names) - len(loss.problem.conditions)
    sizes = [len(loss.batch.interior)] * n_pde + [len(x) for x in loss.batch.conditions]
    starts = [sum(sizes[:t]) for t in range(len(sizes))]
    point_set = [0] * n_pde + list(range(1, len(sizes) - n_pde + 1))  # of each term
    passes = [[t] for t in range(n_pde)] or [[]]  # terms whose rows one backward pass sums
    passes[0] += list(range(n_pde, len(sizes)))
    leaves = [v.detach().requires_grad_() for v in values]
    with torch.enable_grad():
        r = replayed(*leaves)
        if len(r) != sum(sizes):
            return None
        chain = []
        for terms in passes:
            rows = sum(r[starts[t]:starts[t] + sizes[t]].sum() for t in terms)
            grads = torch.autograd.grad(rows, leaves, retain_graph=True, allow_unused=True)
            for t in terms:
                for i, ((s, output), g) in enumerate(zip(where, grads)):
                    if g is None or s != point_set[t]:
                        continue
                    for c in range(g.shape[1]) if output is None else (output,):
                        chain.append((i, c, (starts[t], sizes[t]),
                                      g if g.dim() == 1 else g[:, c]))
    return r.detach(), chain


def _agrees(replayed: _Replayed, values: list[Tensor], J: Tensor, moved) -> bool:
    """Whether the rows are pointwise, checked, not assumed: yᵀ J δ must equal the
    residual's derivative along δ weighed by y, ⟨∂(yᵀr)/∂V, ``moved(δ)``⟩ (the quantities'
    changes), for two random pairs (y, δ); a periodic condition that pairs points fails
    it and takes the general path."""
    generator = torch.Generator().manual_seed(1)
    leaves = [v.detach().requires_grad_() for v in values]
    with torch.enable_grad():
        r = replayed(*leaves)
    for _ in range(2):
        delta = torch.randn(J.shape[1], generator=generator, dtype=J.dtype).to(J.device)
        y = torch.randn(J.shape[0], generator=generator, dtype=J.dtype).to(J.device)
        grads = torch.autograd.grad(r, leaves, y, retain_graph=True, allow_unused=True)
        exact = sum(float((g * dv).sum()) for g, dv in zip(grads, moved(delta)) if g is not None)
        Jd = J @ delta
        if abs(float(y @ Jd) - exact) > 1e-9 * float(y.abs() @ Jd.abs()) + 1e-300:
            return False
    return True


def _chunk(floats_each: int) -> int:
    """How many items of ``floats_each`` floats to vmap at once."""
    return max(16, CHUNK_FLOATS // max(1, floats_each))


def _shape(query: Query, n_outputs: int) -> tuple[int, ...]:
    """Per-point shape of a quantity: (k,) for all outputs, () for one."""
    kind, output, _ = query
    return (n_outputs,) if kind == "value" or output is None else ()
