"""The examples of docs/writing-problems.md run as written and reach stated accuracies."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "writing-problems.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_page_has_the_three_examples():
    assert len(blocks()) == 3


@pytest.mark.parametrize("index,pattern,limit", [
    (0, r"cooling rod: relative L2 error (\S+)", 1e-5),
    (1, r"two holes: relative L2 error (\S+)", 1e-4),
    (2, r"relative error (\S+)", 5e-3),
])
def test_example_runs(index, pattern, limit, capsys):
    exec(compile(blocks()[index], f"{DOC}#example{index + 1}", "exec"), {})
    out = capsys.readouterr().out
    value = float(re.search(pattern, out).group(1))
    assert value < limit, out


ARCHITECTURE = DOC.with_name("architecture.md")


def test_architecture_examples_run_and_plug_in():
    """The model, stage, method, shape and condition of docs/architecture.md work as
    shown: registered where the page says, used by solve, and removed again."""
    import torch

    from pinn_gmnm import Problem, Sobol, get_problem, solve
    from pinn_gmnm.methods import METHODS, Steps
    from pinn_gmnm.models import MODELS, build_model

    code = re.findall(r"```python\n(.*?)```", ARCHITECTURE.read_text(), flags=re.S)
    assert len(code) == 5
    ns: dict = {}
    try:
        for block in code:
            exec(compile(block, str(ARCHITECTURE), "exec"), ns)
        problem = get_problem("poisson")
        model = build_model("siren", 2, 1, bounds=problem.geometry.bbox, width=16)
        stages = METHODS.get("adam").build(problem, model, Steps(adam_steps=20, lr=1e-3))
        stages = [*stages, ns["SGD"](steps=5)]
        sol = solve(problem, model, stages=stages, eval_every=5)
        assert sol.metrics["steps"] == 25 and [r["stage"] for r in sol.history][-1] == "sgd"
        ring = ns["Annulus"](0.5, 1.0)
        x = ring.sample_boundary(64, Sobol(), 0)
        assert ring.on_boundary(x).all() and ring.sample_interior(64, Sobol(), 0).shape == (64, 2)
        # u = r²: ∂u/∂n + h u is 2 + 2·1 = 4 on the outer rim and −1 + 2·¼ = −½ on the
        # inner one (its normal points into the hole).
        cooling = ns["Cooling"](h=2.0)
        heat = Problem(ring, lambda u, x: -u.laplacian() + 4, [cooling], name="ring")

        class Square(torch.nn.Module):
            def forward(self, x):
                return x.square().sum(1, keepdim=True)

        r = cooling.residual(heat.field(Square(), x), x, ring)
        outer = (x.norm(dim=1) - 1).abs() < 1e-9
        assert torch.allclose(r[outer], torch.tensor(4.0, dtype=r.dtype))
        assert torch.allclose(r[~outer], torch.tensor(-0.5, dtype=r.dtype))
    finally:
        for registry, name in ((MODELS, "siren"), (METHODS, "adam")):
            if name in registry:
                registry.remove(name)
