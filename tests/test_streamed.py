"""Least squares streamed in row blocks gives the dense solve's answer."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from pinn_gmnm import GMNM, Collocation, Dirichlet, Interval, LeastSquares, Problem, get_problem
from pinn_gmnm import solve
from pinn_gmnm.errors import GMNMError
from pinn_gmnm.training import Loss, sample_batch
from pinn_gmnm.training.linear import linear_head
from pinn_gmnm.training.lsq import linear_system, solve_lstsq
from pinn_gmnm.training.solvers import Auto, Dense, Streamed
from pinn_gmnm.training.streamed import pieces, r_factor, solve_r


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


def _system(name: str, components: int, points: Collocation, **options):
    p = get_problem(name)
    model = GMNM(len(p.variables), components=components, bounds=p.geometry.bbox,
                 **options).double()
    loss = Loss(p, sample_batch(p, points, seed=3).to(torch.float64, "cpu"))
    return p, model, loss, linear_head(model)


def _objective(loss, model, head, theta):
    J, r0 = linear_system(loss, model, head)
    return float((J @ theta + r0).square().sum())


def test_r_factor_of_blocks_equals_the_dense_solution_when_well_conditioned():
    """20 narrow Gaussians on poisson-1d (cond ~ 1e3): the solutions agree to 1e-10."""
    _, model, loss, head = _system("poisson-1d", 20, Collocation(64, 2), width_factor=1.0)
    J, r0 = linear_system(loss, model, head)
    dense = solve_lstsq(J, -r0)
    assert dense.cond < 1e5
    for rows in (1, 7, 1000):
        streamed = solve_r(r_factor(loss, model, head, rows), torch.float64)
        gap = (streamed.theta - dense.theta).norm() / dense.theta.norm()
        assert float(gap) < 1e-10, rows
        assert streamed.rank == dense.rank


def test_a_tall_system_is_solved_through_its_r_factor_to_the_same_solution():
    """poisson-1d's 66 × 21 system (rows ≥ QR_FIRST × columns) goes through its R factor;
    the SVD of J itself (QR_FIRST out of reach) gives the same solution to 1e-10."""
    from pinn_gmnm.training import lsq

    _, model, loss, head = _system("poisson-1d", 20, Collocation(64, 2), width_factor=1.0)
    J, r0 = linear_system(loss, model, head)
    assert J.shape[0] >= lsq.QR_FIRST * J.shape[1]
    via_r = solve_lstsq(J, -r0)
    lsq_qr_first, lsq.QR_FIRST = lsq.QR_FIRST, 10**9
    try:
        direct = solve_lstsq(J, -r0)
    finally:
        lsq.QR_FIRST = lsq_qr_first
    assert float((via_r.theta - direct.theta).norm() / direct.theta.norm()) < 1e-10
    assert via_r.rank == direct.rank and abs(via_r.cond / direct.cond - 1) < 1e-6


@pytest.mark.parametrize("name", ["poisson", "heat-1d", "advection-1d"])
def test_streamed_solution_fits_as_well_as_the_dense_one(name: str):
    """Ill-conditioned GMNM systems (the default broad Gaussians, cond ~ 1e15): the
    solutions differ along the damped directions only; the least-squares objective
    agrees to 1e-4 relative (measured: 6e-6 on poisson, the streamed one the lower). advection-1d has a periodic condition, whose points stay
    together in one piece."""
    _, model, loss, head = _system(name, 64, Collocation(300, 80))
    dense = Dense().solve(loss, model, head, None)
    streamed = Streamed(rows=50).solve(loss, model, head, None)
    a, b = (_objective(loss, model, head, s.theta) for s in (dense, streamed))
    assert abs(a - b) <= 1e-4 * a
    assert dense.cond > 1e10


def test_pieces_cover_every_point_once_and_keep_paired_conditions_whole():
    p, _, loss, _ = _system("advection-1d", 8, Collocation(100, 40))
    parts = pieces(loss, 30)
    assert len(parts) > 3
    torch.testing.assert_close(torch.cat([q.interior for q in parts]), loss.batch.interior)
    for i, c in enumerate(p.conditions):
        joined = torch.cat([q.conditions[i] for q in parts])
        torch.testing.assert_close(joined, loss.batch.conditions[i])
        if not c.pointwise:
            assert len(parts[0].conditions[i]) == len(loss.batch.conditions[i])


def test_stage_with_streamed_solver_matches_dense_and_says_so():
    """Through the stage: equilibration built piece by piece gives the same scales, and
    the run's events name the solver."""
    p = get_problem("poisson")
    torch.manual_seed(0)
    model = GMNM(2, components=100, bounds=p.geometry.bbox)
    runs = {s: solve(p, copy.deepcopy(model), stages=[LeastSquares(solver=s)],
                     collocation=Collocation(600, 150))
            for s in ("dense", Streamed(rows=97))}
    (ea,), (eb,) = ([e for e in r.events if e["event"] == "equilibrated"] for r in runs.values())
    assert (ea["solver"], eb["solver"]) == ("dense", "streamed")
    for term, scale in ea["term_scales"].items():
        assert math.isclose(scale, eb["term_scales"][term], rel_tol=1e-12)
    a, b = (r.metrics for r in runs.values())
    assert math.isclose(a["residual_rms"], b["residual_rms"], rel_tol=1e-4)
    assert math.isclose(a["rel_l2"], b["rel_l2"], rel_tol=1e-2)


def test_auto_streams_when_the_dense_system_exceeds_the_memory_limit():
    _, _, loss, head = _system("poisson", 30, Collocation(200, 40))
    assert isinstance(Auto(memory=1 << 40).resolve(loss, head), Dense)
    assert isinstance(Auto(memory=1000).resolve(loss, head), Streamed)
    assert Auto().dense_bytes(loss, head) == 32 * 240 * 31


def test_a_system_of_two_outputs_streams():
    p = Problem(Interval(0, 1),
                lambda u, x: [u.d("x") - u["v"](),
                              -u["v"].d("x") - math.pi**2 * torch.sin(math.pi * x[:, 0])],
                [Dirichlet(0.0, output="u")], outputs=("u", "v"), linear=True)
    model = GMNM(1, 2, components=12, bounds=p.geometry.bbox, width_factor=1.0).double()
    loss = Loss(p, sample_batch(p, Collocation(50, 2), seed=0).to(torch.float64, "cpu"))
    head = linear_head(model)
    dense = Dense().solve(loss, model, head, None)
    streamed = Streamed(rows=9).solve(loss, model, head, None)
    assert float((streamed.theta - dense.theta).norm() / dense.theta.norm()) < 1e-8


def test_unknown_solver_names_the_known_ones():
    with pytest.raises(GMNMError, match="unknown least-squares solver 'streamd'.*did you mean"):
        LeastSquares(solver="streamd")
    with pytest.raises(GMNMError, match="streamed solver rows must be positive, got 0"):
        Streamed(rows=0)


@pytest.mark.parametrize("name", ["poisson", "poisson-neumann", "heat-1d", "wave-1d",
                                  "advection-1d"])
def test_sparse_rows_from_the_query_basis_equal_the_dense_system(name: str):
    """Untruncated (tol 1e-300), the sparse rows equal the dense ones: values, normal and
    time derivatives, Laplacians, second time derivatives, paired periodic rows."""
    import numpy as np
    import scipy.sparse as sp

    from pinn_gmnm.training.sparse import sparse_blocks

    _, model, loss, head = _system(name, 30, Collocation(600, 300))
    J, r0 = linear_system(loss, model, head)
    J, r0 = J.numpy(), r0.numpy()
    blocks = sparse_blocks(loss, model, head, 1e-300)
    Js = sp.vstack([b for parts, _ in blocks for b in parts]).toarray()
    r0s = np.concatenate([r for _, r in blocks])
    # the same rows in another (spatial) order: compare what a permutation leaves alone
    assert Js.shape == J.shape and not np.array_equal(r0s, r0)
    top = np.abs(J).max()
    assert np.abs(Js.T @ Js - J.T @ J).max() <= 1e-12 * top**2 * len(J)
    assert np.abs(Js.T @ r0s - J.T @ r0).max() <= 1e-12 * top * np.abs(r0).max() * len(J)
    assert np.allclose(np.sort(np.abs(Js).sum(1)), np.sort(np.abs(J).sum(1)), rtol=1e-12)


def test_spatial_order_keeps_groups_in_small_boxes():
    """A permutation whose runs of ``group`` points lie in boxes far smaller than the
    domain; flat sets (a face) are ordered too."""
    from pinn_gmnm.training.sparse import spatial_order

    x = torch.rand(4096, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    order = spatial_order(x, 64)
    assert torch.equal(torch.sort(order).values, torch.arange(4096))
    runs = x[order].reshape(64, 64, 3)
    assert float((runs.max(dim=1).values - runs.min(dim=1).values).max(dim=1).values.mean()) < 0.6
    shuffled = x[torch.randperm(4096, generator=torch.Generator().manual_seed(1))]
    runs = shuffled.reshape(64, 64, 3)
    assert float((runs.max(dim=1).values - runs.min(dim=1).values).max(dim=1).values.mean()) > 0.9
    face = torch.cat([x[:, :2], torch.zeros(4096, 1, dtype=x.dtype)], dim=1)
    runs = face[spatial_order(face, 64)].reshape(64, 64, 3)
    assert float((runs.max(dim=1).values - runs.min(dim=1).values).max(dim=1).values.mean()) < 0.6


def test_gram_by_groups_equals_the_sparse_product():
    import numpy as np
    import scipy.sparse as sp

    from pinn_gmnm.training.sparse import _gershgorin, _gram, _stack

    J = sp.random(3000, 200, density=0.05, format="csr", random_state=0)
    G = _gram(J).numpy()
    assert np.allclose(G, np.triu((J.T @ J).toarray()), rtol=1e-13, atol=1e-13)
    assert not G[np.tril_indices(200, -1)].any()
    parts = [J[:1000], J[1000:1001], J[1001:]]
    stacked = _stack(parts)
    assert (stacked != sp.vstack(parts, format="csr")).nnz == 0 and stacked.shape == J.shape
    full = (J.T @ J).toarray()
    assert _gershgorin(_gram(J)) == pytest.approx(np.abs(full).sum(axis=1).max(), rel=1e-12)


def test_sparse_solver_matches_dense_with_narrow_gaussians():
    """poisson, 400 Gaussians of 1 x their spacing, truncated at rounding level: J is 20 %
    nonzero and the solution's error equals the dense solve's to 1e-3 relative."""
    from pinn_gmnm.training.sparse import Sparse, sparse_blocks

    p = get_problem("poisson")
    torch.manual_seed(0)
    model = GMNM(2, components=400, bounds=p.geometry.bbox, width_factor=1.0)
    runs = [solve(p, copy.deepcopy(model), stages=[LeastSquares(solver=s)],
                  collocation=Collocation(2000, 400)) for s in ("dense", "sparse")]
    a, b = (r.metrics["rel_l2"] for r in runs)
    assert a < 1e-2 and abs(a - b) <= 1e-3 * a
    _, model, loss, head = _system("poisson", 400, Collocation(2000, 400), width_factor=1.0)
    nnz = sum(b.nnz for parts, _ in sparse_blocks(loss, model, head, 2.2e-16) for b in parts)
    assert nnz < 0.3 * 2400 * 401
    assert Sparse().row_sums(loss, model, head)[0] > 0


def test_sparse_solver_refuses_models_without_gaussians():
    from pinn_gmnm import MLP
    from pinn_gmnm.training.sparse import Sparse

    p = get_problem("poisson-1d")
    model = MLP(1, bounds=p.geometry.bbox).double()
    loss = Loss(p, sample_batch(p, Collocation(20, 2), seed=0).to(torch.float64, "cpu"))
    with pytest.raises(GMNMError, match="sparse least-squares solver needs a GMNM model"):
        Sparse().solve(loss, model, linear_head(model), None)


def test_solver_options_round_trip_through_a_config():
    from pinn_gmnm.training.registry import stage_from_dict
    from pinn_gmnm.training.solvers import solver_from

    stage = LeastSquares(solver=Streamed(rows=97))
    data = stage.to_dict()
    assert data["solver"] == {"name": "streamed", "rows": 97}
    assert solver_from(stage_from_dict(data).solver) == Streamed(rows=97)
    assert LeastSquares(solver="dense").to_dict()["solver"] == "dense"
    with pytest.raises(GMNMError, match="unknown option for the least-squares solver 'streamed': row"):
        LeastSquares(solver={"name": "streamed", "row": 3})


def test_a_run_names_its_least_squares_solver():
    """--solver reaches the least-squares stage; auto's choice for a GMNM becomes lstsq
    (growth re-solves densely), an explicit grow refuses a named solver, an unknown name
    is refused with the known ones."""
    from pinn_gmnm.config import RunConfig
    from pinn_gmnm.run import stages_for

    p = get_problem("poisson")
    model = GMNM(2, components=30, bounds=p.geometry.bbox)
    method, stages = stages_for(RunConfig(solver="streamed"), p, model)
    assert method == "lstsq" and [s.solver for s in stages] == ["streamed"]
    method, stages = stages_for(RunConfig(), p, model)
    assert method == "grow"
    method, stages = stages_for(RunConfig(method="varpro", solver="sparse"), p, model)
    assert method == "varpro" and stages[0].solver == "sparse"
    with pytest.raises(GMNMError, match="method 'grow' re-solves every round with the dense"):
        stages_for(RunConfig(method="grow", solver="dense"), p, model)
    with pytest.raises(GMNMError, match="unknown least-squares solver 'qr'; known: auto, dense"):
        RunConfig(solver="qr")


def test_solver_names_match_the_registry():
    from pinn_gmnm.methods import SOLVER_NAMES
    from pinn_gmnm.training.solvers import SOLVERS

    assert tuple(SOLVERS) == SOLVER_NAMES


@pytest.mark.parametrize("name", ["poisson", "heat-1d", "advection-1d"])
def test_loss_in_pieces_equals_the_whole_loss(name: str):
    """Evaluated piece by piece (paired periodic points kept together), the loss and its
    terms equal the loss on the whole batch."""
    _, model, loss, _ = _system(name, 30, Collocation(700, 300))
    total, parts = loss(model)
    total_p, parts_p = loss.in_pieces(model, 128)
    assert float(total_p) == pytest.approx(float(total), rel=1e-12)
    assert parts_p.keys() == parts.keys()
    for k in parts:
        assert float(parts_p[k]) == pytest.approx(float(parts[k]), rel=1e-12, abs=1e-300)


def test_a_large_batch_records_its_loss_in_pieces(monkeypatch):
    """A run on more than LOSS_PIECE points records the loss evaluated in pieces: the
    same as on the whole batch."""
    from pinn_gmnm.training import task as task_module

    p = get_problem("poisson")
    losses = []
    original = Loss.in_pieces
    for piece in (10**9, 256):
        monkeypatch.setattr(task_module, "LOSS_PIECE", piece)
        called = []
        monkeypatch.setattr(Loss, "in_pieces",
                            lambda self, *a: called.append(1) or original(self, *a))
        torch.manual_seed(0)
        s = solve(p, GMNM(2, components=40, bounds=p.geometry.bbox), stages=[LeastSquares()],
                  collocation=Collocation(900, 200))
        losses.append(s.history[-1]["loss"])
        assert bool(called) == (piece == 256)
    assert losses[1] == pytest.approx(losses[0], rel=1e-10)


def test_a_slab_s_carried_state_survives_a_loss_in_pieces():
    """A later slab's initial condition carries the previous slab's values for all its
    points, in order, so it is never split: the pieces without it must not evaluate it
    (a march whose grown model evaluated its loss in pieces crashed there)."""
    import dataclasses

    from pinn_gmnm import Initial
    from pinn_gmnm.training.march import Carried

    p = get_problem("heat-1d")
    x = torch.rand(40, 2, dtype=torch.float64)
    x[:, 1] = 0.0
    conditions = [Carried(points=x, values=torch.sin(x[:, 0]), order=c.order, output=c.output,
                          name=c.label) if isinstance(c, Initial) else c for c in p.conditions]
    slab = dataclasses.replace(p, conditions=conditions)
    model = GMNM(2, components=30, bounds=p.geometry.bbox).double()
    loss = Loss(slab, sample_batch(slab, Collocation(700, 300), seed=3).to(torch.float64, "cpu"))
    total, parts = loss(model)
    total_p, parts_p = loss.in_pieces(model, 128)
    assert float(total_p) == pytest.approx(float(total), rel=1e-12)
    for k in parts:
        assert float(parts_p[k]) == pytest.approx(float(parts[k]), rel=1e-12, abs=1e-300)
