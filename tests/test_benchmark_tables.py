"""The dashboards' partial reruns (``--only``) replace their rows and keep the others."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from common import merge_tables  # noqa: E402

OLD = """# Dashboard

a note someone wrote

| problem | model | rel. L2 |
| --- | --- | --- |
| a | gmnm | 1e-3 |
| a | pinn | 2e-3 |
| b | gmnm | 3e-3 |

after the table
"""


def test_a_rerun_replaces_its_rows_and_keeps_the_others_and_the_notes():
    new = "# Dashboard\n\n| problem | model | rel. L2 |\n| --- | --- | --- |\n" \
          "| a | gmnm | 5e-4 |\n| c | gmnm | 7e-3 |\n"
    merged = merge_tables(OLD, new).splitlines()
    assert merged[2] == "a note someone wrote" and merged[-1] == "after the table"
    assert merged[6:10] == ["| a | gmnm | 5e-4 |", "| a | pinn | 2e-3 |", "| b | gmnm | 3e-3 |",
                            "| c | gmnm | 7e-3 |"]


def test_a_table_with_other_columns_is_not_merged_into():
    new = "| problem | model | max error |\n| --- | --- | --- |\n| a | gmnm | 1 |\n"
    with pytest.raises(SystemExit, match="other columns"):
        merge_tables(OLD, new)


def test_a_table_without_its_separator_line_is_refused_not_misread():
    new = "| problem | model | rel. L2 |\n| a | gmnm | 5e-4 |\n"  # its first row would be lost
    with pytest.raises(SystemExit, match="not followed by"):
        merge_tables(OLD, new)
