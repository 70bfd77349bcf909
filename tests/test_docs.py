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
