"""Errors users see, written to name the bad value, the allowed values and the fix."""

from __future__ import annotations

import difflib
import math
import sysconfig
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType


class GMNMError(ValueError):
    """A problem with what the user asked for (bad option, bad problem definition, ...).

    The CLI prints the message on one line and exits non-zero; a traceback is shown only
    with ``--debug``.
    """


class GMNMWarning(UserWarning):
    """Something the user should know that does not stop the run (a problem without
    conditions, a reference with missing values); the CLI prints it on one line."""


def did_you_mean(value: str, allowed: Iterable[str]) -> str:
    """Return `` (did you mean 'x'?)`` for the closest allowed value, or an empty string."""
    close = difflib.get_close_matches(value, list(allowed), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown(kind: str, value: str, allowed: Iterable[str]) -> GMNMError:
    """The standard error for a name that is not one of ``allowed``."""
    allowed = sorted(allowed)
    return GMNMError(
        f"unknown {kind} '{value}'; known: {', '.join(allowed)}{did_you_mean(value, allowed)}"
    )


def require_positive(name: str, value: float, *, integer: bool = False) -> None:
    """Raise a GMNMError unless ``value`` is a positive number (an int when ``integer``)."""
    if integer and (isinstance(value, bool) or not isinstance(value, int)):
        raise GMNMError(f"{name} must be a positive integer, got {value!r}")
    if not value > 0:
        raise GMNMError(f"{name} must be positive, got {value!r}")
    if not math.isfinite(value):
        raise GMNMError(f"{name} must be a finite number, got {value!r}")


def user_location(exc: BaseException) -> str:
    """`` (path line N)`` for the deepest traceback frame outside torch, numpy, the
    standard library and this library's own code (the built-in problem catalogue counts
    as user code), or an empty string."""
    import numpy
    import torch

    here = Path(__file__).resolve().parent
    library = [Path(torch.__file__).resolve().parent, Path(numpy.__file__).resolve().parent,
               here, Path(sysconfig.get_paths()["stdlib"]).resolve()]
    catalogue = here / "problems"
    found = ""
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        path = Path(tb.tb_frame.f_code.co_filename).resolve()
        inside = any(path.is_relative_to(d) for d in library) and not path.is_relative_to(catalogue)
        if not inside and not path.name.startswith("<"):
            found = f" ({path} line {tb.tb_lineno})"
        tb = tb.tb_next
    return found
