"""Adaptive training: resampling, residual-based refinement, gradient-norm balancing,
hard constraints and inverse problems."""

from __future__ import annotations

import math

import torch

from pinn_gmnm import (GMNM, MLP, Adam, Collocation, get_problem, hard_constraint, solve)
from pinn_gmnm.training import GradNormBalance, Refine, Resample, default_stages, sample_batch


class Spy:
    """Remembers the interior points and weights the loss had at each record."""

    def __init__(self) -> None:
        self.interiors, self.weights = [], []

    def on_record(self, row, task) -> None:
        self.interiors.append(task.loss.batch.interior.clone())
        self.weights.append(list(task.loss.weights))


def _small_mlp(p):
    torch.manual_seed(0)
    return MLP(p.dim, p.n_outputs, 8, 1, bounds=p.geometry.bbox)


def test_resample_draws_fresh_points_of_the_same_size():
    p = get_problem("poisson-1d")
    spy = Spy()
    solve(p, _small_mlp(p), stages=[Adam(steps=6)], collocation=Collocation(32, 2),
          callbacks=[Resample(every=3), spy])
    sizes = {len(x) for x in spy.interiors}
    assert sizes == {32}
    assert torch.equal(spy.interiors[0], spy.interiors[1])  # step 1, 2: same points
    assert not torch.equal(spy.interiors[1], spy.interiors[2])  # step 3: fresh


def test_refine_adds_points_where_the_residual_is_largest():
    p = get_problem("poisson-1d")
    model = _small_mlp(p)
    spy = Spy()
    refine = Refine(every=2, candidates=500, add=10)
    solve(p, model, stages=[Adam(steps=4)], collocation=Collocation(32, 2),
          callbacks=[refine, spy])
    assert [len(x) for x in spy.interiors] == [32, 42, 42, 52]
    added = spy.interiors[-1][42:]
    cand = p.geometry.sample_interior(2000, refine.sampler, 99).to(added)
    r_added = p.residuals(p.field(model, added), added)[0].detach().abs()
    r_cand = p.residuals(p.field(model, cand), cand)[0].detach().abs()
    assert r_added.min() > r_cand.median()


def test_refine_counts_every_rank_s_points_against_its_limit():
    """Under torchrun a rank holds a shard: the limit applies to the total, so a run
    already past it (here 2 ranks × 32 points > 50) adds nothing."""
    from pinn_gmnm.distributed import Serial

    class TwoRanks(Serial):  # this rank's counts, as if another rank held as many
        def total(self, count: int) -> int:
            return 2 * count

    p = get_problem("poisson-1d")
    spy = Spy()
    solve(p, _small_mlp(p), stages=[Adam(steps=4)], collocation=Collocation(32, 2),
          callbacks=[Refine(every=2, candidates=500, add=10, max_points=50), spy],
          parallel=TwoRanks())
    assert [len(x) for x in spy.interiors] == [32, 32, 32, 32]


def test_grad_norm_balance_equalises_the_terms_pull():
    p = get_problem("poisson")
    model = _small_mlp(p)
    spy = Spy()
    solve(p, model, stages=[Adam(steps=2)], collocation=Collocation(64, 32),
          callbacks=[GradNormBalance(every=1, alpha=0.0), spy])
    before = spy.weights[-1]  # set at the last step for the current parameters
    from pinn_gmnm.training import Loss
    loss = Loss(p, sample_batch(p, Collocation(64, 32), 0))
    loss(model)
    params = list(model.parameters())
    norms = []
    for r in loss.residuals(model):
        g = torch.autograd.grad(r.square().mean(), params, allow_unused=True)
        norms.append(math.sqrt(sum(float(x.square().sum()) for x in g if x is not None)))
    weighted = [w * n for w, n in zip(before, norms)]
    assert abs(weighted[0] - weighted[1]) / weighted[0] < 1e-6
    assert before != [1.0, 1.0]


def test_hard_constraints_hold_exactly_while_training():
    p = get_problem("heat-1d")
    model = hard_constraint(p, _small_mlp(p))
    s = solve(p, model, stages=[Adam(steps=20, lr=1e-2)], collocation=Collocation(64, 32))
    last = s.history[-1]
    assert last["loss_ends"] < 1e-28 and last["loss_initial"] < 1e-28
    assert last["loss_pde"] > 0 and math.isfinite(s.metrics["rel_l2"])
    x = torch.tensor([[0.0, 0.3], [1.0, 0.7], [0.25, 0.0]], dtype=torch.float64)
    u = s(x)[:, 0]
    assert abs(float(u[0])) < 1e-15 and abs(float(u[1])) < 1e-15
    assert abs(float(u[2]) - float(p.exact_values(x[2:])[0, 0])) < 1e-15


def test_inverse_problem_recovers_its_coefficient():
    """poisson-inverse, 1 % noise: the default GMNM stages (least squares, then the
    coefficient with the head re-solved) find a* = 2."""
    p = get_problem("poisson-inverse")
    torch.manual_seed(0)
    model = GMNM(2, components=64, bounds=p.geometry.bbox)
    stages = default_stages(p, model)
    assert [s.kind for s in stages] == ["grow", "coefficients"]
    s = solve(p, model, stages=stages, collocation=Collocation(300, 80))
    assert abs(s.metrics["unknown_a"] - 2.0) < 0.02, s.metrics
    assert s.metrics["unknown_a_error"] < 0.01 and s.metrics["rel_l2"] < 0.02
    assert "unknown_a" in s.history[-1]
