"""What every benchmark output starts with (date, machine, torch, threads and settings),
and how a rerun of some of a dashboard's problems is merged into it."""

from __future__ import annotations

import platform
from datetime import date

import torch


def header(threads: int, *settings: str) -> str:
    """``date · host · arch · torch version · threads · settings…`` on one line."""
    parts = [str(date.today()), platform.node(), platform.machine(), f"torch {torch.__version__}",
             f"{threads} thread(s)", *settings]
    return " · ".join(p for p in parts if p)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def merge_tables(old: str, new: str) -> str:
    """``old`` (a dashboard's markdown) with the rows of ``new``'s table in place of those
    of the same problem and model, and rows it did not have appended to its table: what a
    rerun of some problems (``--only``) writes, so that the other rows and the notes above
    the table are kept."""
    def table(lines: list[str]) -> tuple[int, int, int]:
        start = next(i for i, line in enumerate(lines) if line.startswith("| problem |"))
        if start + 1 >= len(lines) or not set(_cells(lines[start + 1])) <= {"---"}:
            raise SystemExit(f"the table's header is not followed by its '| --- |' line: "
                             f"{lines[start + 1] if start + 1 < len(lines) else 'nothing'!r}")
        end = start + 2
        while end < len(lines) and lines[end].startswith("|"):
            end += 1
        return start, end, _cells(lines[start]).index("model")

    old_lines, new_lines = old.splitlines(), new.splitlines()
    o0, o1, om = table(old_lines)
    n0, n1, nm = table(new_lines)
    if _cells(old_lines[o0]) != _cells(new_lines[n0]):
        raise SystemExit("the existing table has other columns: rerun every problem, or "
                         "write elsewhere with --out")
    fresh = {(c[0], c[nm]): line for line in new_lines[n0 + 2:n1] for c in [_cells(line)]}
    rows = []
    for line in old_lines[o0 + 2:o1]:
        c = _cells(line)
        rows.append(fresh.pop((c[0], c[om]), line))
    rows += list(fresh.values())
    return "\n".join(old_lines[:o0 + 2] + rows + old_lines[o1:]) + "\n"
