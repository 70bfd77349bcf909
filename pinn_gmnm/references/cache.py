"""A disk cache for computed reference solutions.

References are stored as ``.npz`` files in ``$GMNM_PDE_CACHE`` (default
``~/.cache/gmnm-pde``, or ``$XDG_CACHE_HOME/gmnm-pde``), named by the problem and a
hash of its parameters, the solver's resolution and the cache format version, so a
changed parameter never returns a stale solution. Delete the folder to clear it.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

from .base import Reference

CACHE_VERSION = 2
"""Raised when what a cached file holds changes (2: sources state their accuracy)."""


def cache_dir() -> Path:
    """Where references are cached (read from the environment on every call)."""
    if os.environ.get("GMNM_PDE_CACHE"):
        return Path(os.environ["GMNM_PDE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "gmnm-pde"


def cache_key(name: str, params: Mapping[str, object]) -> str:
    """``name-<hash>``: a file name for these parameters (and the cache version)."""
    text = json.dumps({"name": name, "params": dict(params), "version": CACHE_VERSION},
                      sort_keys=True, default=repr)
    return f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def cached(name: str, params: Mapping[str, object], compute: Callable[[], Reference]) -> Reference:
    """The reference for (name, params) from the cache, computed and stored on a miss.

    ``params`` must hold everything the result depends on (problem parameters and the
    solver's resolution). A cache that cannot be written only costs recomputation.
    """
    from ..artifacts import atomic_write

    path = cache_dir() / f"{cache_key(name, params)}.npz"
    if path.is_file():
        try:
            return Reference.from_npz(path)
        except Exception:  # a damaged file: recompute and replace it
            pass
    ref = compute()
    try:
        atomic_write(path, ref.to_npz, "wb")
    except OSError as exc:
        warnings.warn(f"could not cache the reference solution in {path.parent}: {exc}",
                      RuntimeWarning, stacklevel=2)
    return ref
