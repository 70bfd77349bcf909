"""What every benchmark output starts with: date, machine, torch, threads and settings."""

from __future__ import annotations

import platform
from datetime import date

import torch


def header(threads: int, *settings: str) -> str:
    """``date · host · arch · torch version · threads · settings…`` on one line."""
    parts = [str(date.today()), platform.node(), platform.machine(), f"torch {torch.__version__}",
             f"{threads} thread(s)", *settings]
    return " · ".join(p for p in parts if p)
