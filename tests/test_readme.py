"""The README's code runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_define_your_own_pde_example_runs(capsys):
    blocks = [b for b in python_blocks() if '@register("hot-edge")' in b]
    assert blocks, "the README should have a Python example"
    from pinn_gmnm.problem import PROBLEMS

    namespace: dict = {}
    try:
        exec(compile(blocks[0], str(README), "exec"), namespace)
        out = capsys.readouterr().out
        err = float(re.search(r"relative L2 error: (\S+)", out).group(1))
        assert err < 1e-4
    finally:
        PROBLEMS._entries.pop("hot-edge", None)


def test_quick_start_commands_are_the_ci_commands():
    text = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    assert "gmnm-pde solve poisson" in text
    assert "pip install torch==2.13.0 \".[test]\" && pytest" in text
    assert "pytest -ra" in ci and "pip install -q torch==2.13.0 \".[test]\"" in ci


@pytest.mark.parametrize("file", ["README.md"])
def test_readme_mentions_paper_caveat(file):
    assert "full text was not available" in (README.parent / file).read_text()


def test_using_a_result_example_runs(tmp_path, capsys):
    """The load_solution example, pointed at a run made here."""
    from pinn_gmnm.config import RunConfig
    from pinn_gmnm.run import run

    (block,) = [b for b in python_blocks() if "load_solution" in b]
    config = RunConfig(problem="poisson", model_options={"components": 60}, method="lstsq",
                       interior=256, boundary=64, device="cpu")
    directory = run(config, out=tmp_path).directory
    example = block.replace("runs/poisson-gmnm-20261128-185030", str(directory))
    assert example != block
    exec(compile(example, str(README), "exec"), {})
    out = capsys.readouterr().out
    assert "('x', 'y') ('u',)" in out
