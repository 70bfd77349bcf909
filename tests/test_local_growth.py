"""Local growth of a PDE's GMNM: points under the new Gaussians, and a held-out measure
that the scale of an operator's rows does not change."""

from __future__ import annotations

import dataclasses
import math

import torch

from pinn_gmnm import GMNM, Collocation, Dirichlet, Problem, Rectangle, get_problem, solve
from pinn_gmnm.training.batch import sample_batch
from pinn_gmnm.training.growth import Grow, local_points, preferred_width
from pinn_gmnm.training.heldout import HeldOut


class Keep:
    """Keeps the task a run trained with (its batch is what growth changed)."""

    task = None

    def on_stage_end(self, stage, task):
        self.task = task


def _lshape(steps=1, problem=None, corners=False, **kw):
    """The L-shape (re-entrant corner at the origin) with 100 Gaussians and few points:
    no uniform refinement, ``steps`` rounds of local growth (graded at the corner first
    with ``corners``); the solution, with the task that trained it as ``.task``."""
    p = problem or get_problem("poisson-lshape")
    torch.manual_seed(0)
    model = GMNM(2, components=100, bounds=p.geometry.bbox)
    keep = Keep()
    s = solve(p, model, stages=[Grow(steps=steps, refinements=0, patience=10, corners=corners)],
              collocation=Collocation(300, 120), callbacks=[*kw.pop("callbacks", []), keep], **kw)
    s.task = keep.task
    return s


def test_local_growth_adds_points_under_its_new_gaussians_in_the_domain():
    s = _lshape(1)
    grew = [e for e in s.events if e["event"] == "grew"]
    assert len(grew) == 1 and grew[0]["points_added"] > 0
    g = s.problem.geometry
    A, mu = (t.detach() for t in s.model.physical())
    new, width = mu[100:], (2 / A[100:].diagonal(dim1=1, dim2=2).sum(1)).sqrt()
    first = sample_batch(s.problem, Collocation(300, 120), seed=0)
    batch = s.task.loss.batch
    interior = batch.interior[len(first.interior):]
    (edge,) = (c[len(f):] for c, f in zip(batch.conditions, first.conditions))
    assert len(interior) + len(edge) == grew[0]["points_added"]
    assert bool(g.inside(interior).all()) and bool(g.on_boundary(edge).all())
    x = torch.cat([interior, edge])
    box = ((x[:, None, :] - new[None]).abs() <= width[None, :, None] * (1 + 1e-9)).all(2)
    assert bool(box.any(dim=1).all())  # each point lies under one of the new Gaussians


def test_the_per_row_held_out_measure_does_not_see_an_operator_scale():
    """−100 Δu = 100 f is the same problem as −Δu = f: the per-row held-out value is the
    same, the plain one 10⁴ times larger on the PDE term."""
    p = get_problem("poisson-lshape")
    louder = dataclasses.replace(p, residual=lambda u, x: 100.0 * p.residual(u, x))
    values = []
    for problem in (p, louder):
        task = _lshape(0, problem).task
        values.append((HeldOut(task, task.params, per_row=True).terms(task)[0],
                       HeldOut(task, task.params).terms(task)[0]))
    (row_a, plain_a), (row_b, plain_b) = values
    assert abs(row_b / row_a - 1) < 1e-9 and abs(plain_b / plain_a / 1e4 - 1) < 1e-9


def test_a_resumed_local_growth_ends_equal_to_an_uninterrupted_one(stop_and_resume):
    full, _, resumed = stop_and_resume(lambda **kw: _lshape(3, corners=True, **kw), 2)
    assert resumed.model.layer.components == full.model.layer.components


def test_local_points_keep_to_the_domain_and_the_conditions_pieces():
    task = _lshape(0).task
    centres = torch.tensor([[0.0, 0.0], [-0.99, 0.5]], dtype=torch.float64)  # the corner, an edge
    widths = torch.tensor([0.05, 0.05], dtype=torch.float64)
    interior, conditions = local_points(task, centres, widths, seed=1)
    g = task.loss.problem.geometry
    assert len(interior) > 0 and bool(g.inside(interior).all())
    (edge,) = conditions
    assert len(edge) > 0 and bool(g.on_boundary(edge).all())
    assert bool(((edge[:, None] - centres[None]).abs() <= 0.05 + 1e-12).all(2).any(1).all())


def test_local_boundary_points_keep_their_spacing_on_a_thin_domain():
    """On a strip 100 times longer than wide the draw's spacing follows the thin axis; the
    points kept under new Gaussians are thinned to what a face across their boxes holds
    (4 per Gaussian in 2D), not the thousands the dense draw puts along the long edges."""
    strip = Problem(Rectangle((0, 0), (1, 0.01)), lambda u, x: -u.laplacian() - 1.0,
                    [Dirichlet(0.0)])
    task = _lshape(0, strip).task
    centres = torch.tensor([[-0.5, -1.0], [0.0, 1.0], [0.5, -1.0]], dtype=torch.float64)
    widths = torch.full((3,), 0.2, dtype=torch.float64)
    _, (edge,) = local_points(task, centres, widths, seed=1)
    assert 0 < len(edge) <= 3 * 4
    assert bool(task.loss.problem.geometry.on_boundary(edge).all())


def test_a_refinement_keeps_a_narrower_width_only_when_it_halves_the_residual():
    assert preferred_width([1.6e-2, 1.5e-2]) == 0  # lshape-like: a tie keeps the broad one
    assert preferred_width([4e-3, 1e-4]) == 1  # holes-like: 40 times lower
    assert preferred_width([1.0, 0.4, 0.3]) == 1  # 0.3 is not below half of 0.4
    assert preferred_width([math.inf, 2.0]) == 1  # a failed broad solve


def test_growth_stops_before_a_round_whose_system_would_not_fit_in_memory(monkeypatch):
    """Local growth adds rows with every round and, without a budget, only the held-out
    check would stop it: a round whose system would take more than half the free memory
    is not started."""
    from pinn_gmnm import memory

    monkeypatch.setattr(memory, "available_memory", lambda device: (10**6, "test"))
    s = _lshape(3)
    assert not [e for e in s.events if e["event"] == "grew"]
    (stop,) = [e for e in s.events if e["event"] == "grow stop"]
    assert stop["reason"] == "the next solve would not fit in memory"
