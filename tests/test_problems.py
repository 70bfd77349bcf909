"""Every registered problem: its exact solution satisfies its PDE and conditions."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pinn_gmnm import (PROBLEMS, Data, Dirichlet, GMNMError, Initial, Periodic, Problem, Rectangle,
                       get_problem, register)
from pinn_gmnm.problem import problem_parameters
from pinn_gmnm.training import Collocation, sample_batch


class Exact(nn.Module):
    """A 'model' that returns a problem's exact solution, to test residuals with."""

    def __init__(self, problem: Problem) -> None:
        super().__init__()
        self.problem = problem

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.problem.exact_values(x)


def exact_residuals(problem: Problem) -> tuple[float, float]:
    """Max |PDE residual| and max |condition residual| of the exact solution (with any
    unknown coefficients at their true values)."""
    for k in problem.unknowns:
        k.assign(k.true)
    batch = sample_batch(problem, Collocation(512, 256), seed=0)
    model = Exact(problem)
    u = problem.field(model, batch.interior, closed_form=False)
    pde = max(float(r.detach().abs().max()) for r in problem.residuals(u, batch.interior))
    cond = 0.0
    for c, x in zip(problem.conditions, batch.conditions):
        r = c.residual(problem.field(model, x, closed_form=False), x, problem.geometry)
        cond = max(cond, float(r.detach().abs().max()))
    return pde, cond


NOISE_FREE = {"poisson-inverse": {"noise": 0.0}}


EXACT_PROBLEMS = [e.name for e in PROBLEMS
                  if e.obj is not None and get_problem(e.name).exact is not None]
REFERENCE_PROBLEMS = [e.name for e in PROBLEMS if get_problem(e.name).reference is not None]


@pytest.mark.parametrize("name", EXACT_PROBLEMS)
def test_exact_solution_satisfies_problem(name):
    pde, cond = exact_residuals(get_problem(name, **NOISE_FREE.get(name, {})))
    assert pde < 1e-9 and cond < 1e-9, (pde, cond)


def test_every_problem_has_an_exact_or_a_reference_solution_that_is_checked():
    unchecked = {e.name for e in PROBLEMS} - set(EXACT_PROBLEMS) - set(REFERENCE_PROBLEMS)
    assert not unchecked, f"no exact or reference solution to check: {sorted(unchecked)}"


def test_catalogue_has_references_for_the_problems_without_closed_forms():
    assert set(REFERENCE_PROBLEMS) >= {"poisson-lshape", "poisson-holes", "heat-2d", "allen-cahn"}


@pytest.mark.parametrize("name", REFERENCE_PROBLEMS)
def test_reference_solution_meets_the_conditions(name):
    """At the reference's own nodes the value conditions hold (to 1e-9): boundary values,
    initial values and periodicity. (Each solver's accuracy on the PDE itself is checked
    in test_references.py: refinement, a published value, a series solution.)"""
    problem = get_problem(name)
    ref = problem.reference_solution()
    assert ref.dim == problem.dim and ref.n_outputs == problem.n_outputs
    x, v = ref.known()
    assert len(x) > 1000 and torch.isfinite(v).all()
    g = problem.geometry
    checked = 0
    for c in problem.conditions:
        if isinstance(c, Dirichlet):
            sel = g.on_boundary(x)
        elif isinstance(c, Initial) and c.order == 0:
            sel = (x[:, -1] - g.bbox[0][-1]).abs() < 1e-12
        elif isinstance(c, Periodic) and c.order == 0:
            axis = problem.variables.index(c.variable)
            lo, hi = g.bbox[0][axis], g.bbox[1][axis]
            low, high = (x[:, axis] - lo).abs() < 1e-12, (x[:, axis] - hi).abs() < 1e-12
            assert low.sum() == high.sum() > 0
            torch.testing.assert_close(v[low], v[high], atol=1e-9, rtol=0)
            checked += 1
            continue
        else:
            continue
        if c.on is not None:
            sel &= c.on(x)
        if sel.sum() == 0:
            continue  # no grid node lies on this (curved) piece
        xs = x[sel]
        r = c.residual(problem.field(Lookup(v[sel]), xs, closed_form=False), xs, g)
        assert float(r.abs().max()) < 1e-9, (c.label, float(r.abs().max()))
        checked += 1
    assert checked >= 1


class Lookup(nn.Module):
    """A 'model' that returns given values at the points they belong to (no derivatives)."""

    def __init__(self, values: torch.Tensor) -> None:
        super().__init__()
        self.values = values

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert len(x) == len(self.values)
        return self.values


@pytest.mark.parametrize("name", [e.name for e in PROBLEMS])
def test_every_problem_documents_its_mathematics(name):
    entry = PROBLEMS.entry(name)
    assert entry.summary, "needs a one-line summary"
    doc = entry.obj.__doc__ or ""
    for word in ("PDE", "Solution"):
        assert word in doc, f"{name}: docstring should state the {word}"
    problem = get_problem(name)
    if problem.geometry.time_dependent:
        assert "Initial" in doc, f"{name}: docstring should state the initial condition"


def test_inverse_problem_data_and_unknowns():
    p = get_problem("poisson-inverse")
    (k,) = p.unknowns
    assert k.name == "a" and k.true == 2.0 and float(k) == 1.0
    data = next(c for c in p.conditions if isinstance(c, Data))
    noise = data.values - p.exact_values(data.points)[:, 0]
    assert 0.005 < float(noise.std()) < 0.015  # the stated noise level, 0.01
    again = next(c for c in get_problem("poisson-inverse").conditions if isinstance(c, Data))
    torch.testing.assert_close(again.values, data.values)  # fixed by the seed


def test_parameters_are_set_and_checked():
    p = get_problem("poisson", k=2)
    assert p.params == {"k": 2.0}
    x = torch.tensor([[0.25, 0.25]], dtype=torch.float64)
    torch.testing.assert_close(p.exact_values(x), torch.ones(1, 1, dtype=torch.float64))
    assert get_problem("poisson", k="3").params["k"] == 3.0  # strings from --set convert
    with pytest.raises(GMNMError, match="unknown parameter of problem 'poisson' 'q'"):
        get_problem("poisson", q=1)
    with pytest.raises(GMNMError, match="not a valid float"):
        get_problem("poisson", k="abc")
    assert problem_parameters("poisson") == {"k": 1.0}


@pytest.mark.parametrize("groups, message", [
    ({"velocity": ("u", "w")}, "group 'velocity': unknown output\\(s\\) 'w'; outputs: u, v, p"),
    ({"u": ("u", "v")}, "group 'u' is named like an output"),
    ({"velocity": ("u",)}, "must name two or more distinct outputs"),
    ({"velocity": ("u", "u")}, "must name two or more distinct outputs"),
    ({"two words": ("u", "v")}, "must be a word"),
    ([("velocity", ("u", "v"))], "groups must map a name to outputs"),
])
def test_output_groups_are_checked(groups, message):
    with pytest.raises(GMNMError, match=message):
        Problem(Rectangle((0, 0), (1, 1)), lambda f, x: [f["u"](), f["v"](), f["p"]()],
                outputs=("u", "v", "p"), groups=groups)


def test_unknown_problem_suggests_a_name():
    with pytest.raises(GMNMError, match="did you mean 'poisson'"):
        get_problem("poison")


def test_registering_twice_needs_replace():
    @register("dup-test-problem", replace=True)
    def first() -> Problem:
        """Test. PDE: none. Solution: none."""
        return Problem(Rectangle((0, 0), (1, 1)), lambda u, x: u.laplacian(), [Dirichlet(0.0)])

    with pytest.raises(GMNMError, match="already registered"):
        register("dup-test-problem")(first)


def test_condition_selecting_no_points_is_an_error():
    p = Problem(Rectangle((0, 0), (1, 1)), lambda u, x: u.laplacian(),
                [Dirichlet(0.0, on=lambda x: x[:, 0] > 5, name="nowhere")], name="t")
    with pytest.raises(GMNMError, match="condition 'nowhere' selects none"):
        sample_batch(p, Collocation(64, 64), 0)


def test_residual_of_wrong_shape_is_reported():
    p = Problem(Rectangle((0, 0), (1, 1)), lambda u, x: u.grad(), [Dirichlet(0.0)], name="bad")
    x = torch.rand(10, 2, dtype=torch.float64)
    from pinn_gmnm import MLP
    u = p.field(MLP(2).double(), x)
    with pytest.raises(GMNMError, match=r"residual has shape \(10, 2\), expected \(10,\)"):
        p.residuals(u, x)


@pytest.mark.parametrize("name", REFERENCE_PROBLEMS)
def test_problems_with_references_are_measured_against_them(name):
    from pinn_gmnm import MLP
    from pinn_gmnm.evaluation import EVAL_POINTS, Evaluator

    p = get_problem(name)
    ev = Evaluator.for_problem(p, n=2000)
    assert ev.against.startswith("reference") and len(ev.points) <= 2 * 2000 < EVAL_POINTS
    assert p.geometry.inside(ev.points).float().mean() > 0.99
    model = MLP(p.dim, p.n_outputs, 4, 1, bounds=p.geometry.bbox).double()
    m = ev.metrics(model)
    # the errors are those against the reference's own values at the evaluation points
    x, v = p.reference_solution().known()
    at = {tuple(row) for row in ev.points.tolist()}
    keep = torch.tensor([tuple(row) in at for row in x.tolist()])
    assert int(keep.sum()) == len(ev.points)
    with torch.no_grad():
        err = model(x[keep]) - v[keep]
    assert m["rel_l2"] == pytest.approx(float(err.norm() / v[keep].norm()), rel=1e-10)
    assert m["max_abs"] == pytest.approx(float(err.abs().max()), rel=1e-10)
    assert math.isfinite(m["residual_rms"]) and m["residual_rms"] > 0
