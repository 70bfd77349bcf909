"""The run directory: config, metrics, history, checkpoint and figures, written atomically."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import secrets
import stat
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from .errors import GMNMError

CHECKPOINT_FORMAT = "gmnm-pde/checkpoint-v1"


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "w") -> None:
    """Write ``path`` through a temporary file in the same folder, then rename it into
    place: readers see the old file or the new one, never half of one.

    The file gets the permissions an ordinary ``open(path, "w")`` would give it: those of
    the file it replaces, or for a new file 0o666 less the user's umask (so that
    collaborators can read results where the umask allows it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temporary(path)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _temporary(path: Path) -> tuple[int, Path]:
    """A new temporary file next to ``path``, open for writing, created as ``open`` would
    create ``path`` (``tempfile.mkstemp`` would make it private, mode 0o600)."""
    try:
        keep: int | None = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        keep = None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)  # the kernel applies the umask
        except FileExistsError:
            continue
        if keep is not None:
            os.chmod(tmp, keep)
        return fd, tmp


def _clean(value: Any) -> Any:
    """JSON-safe values: NaN and infinities become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda f: json.dump(_clean(data), f, indent=2, sort_keys=False))


def write_history(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, lambda f: f.write(buf.getvalue()))


def save_checkpoint(path: Path, model: torch.nn.Module, extra: dict[str, Any] | None = None) -> None:
    payload = {"format": CHECKPOINT_FORMAT,
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
               **(extra or {})}
    atomic_write(path, lambda f: torch.save(payload, f), mode="wb")


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; refuses anything else.

    Loading uses ``torch.load(weights_only=True)``, which never runs code from the file.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise GMNMError(f"checkpoint not found: {path}") from None
    except IsADirectoryError:
        raise GMNMError(f"{path} is a directory, not a checkpoint file") from None
    except Exception as exc:
        raise GMNMError(
            f"{path} is not a gmnm-pde checkpoint: it cannot be read as one safely "
            f"({type(exc).__name__}); it may be damaged or come from another program"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise GMNMError(
            f"{path} is not a gmnm-pde checkpoint (no '{CHECKPOINT_FORMAT}' marker); "
            "checkpoints are the model.pt files of run directories"
        )
    return payload


def slug(text: str) -> str:
    """A file-name-safe version of a problem or model name."""
    text = re.sub(r"\.py:", "-", Path(text).name if ".py:" in text else text)
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "run"


def check_out_folder(path: Path, option: str = "--out") -> None:
    """Refuse, before any training, a folder that cannot hold run directories: a file, a
    path through a file, a place where folders cannot be created or written. Folders made
    to find out are removed again. Under torchrun only the main process checks (it alone
    writes run directories): two ranks making and removing the same probe folder raced,
    one removing it while the other wrote in it."""
    from . import distributed

    if not distributed.is_main_process():
        return
    path = Path(path)
    missing, existing = [], path
    while not existing.exists() and existing != existing.parent:
        missing.append(existing)
        existing = existing.parent
    if not existing.is_dir():
        where = "" if existing == path else f": {existing}"
        raise GMNMError(f"{option} {path}{where} is a file, not a folder; give a folder for the "
                        "run directories")
    made: list[Path] = []
    doing = "create a folder"
    try:
        for folder in reversed(missing):
            folder.mkdir()
            made.append(folder)
        doing = "write"
        fd, probe = tempfile.mkstemp(dir=path, prefix=".gmnm-pde-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise GMNMError(f"{option} {path}: cannot {doing} there ({exc.strerror or exc}); choose a "
                        "folder you can write to") from None
    finally:
        for folder in reversed(made):
            folder.rmdir()


def new_run_dir(root: Path, name: str, overwrite: bool = False) -> Path:
    """A new, empty ``root/name-YYYYmmdd-HHMMSS`` (``-2``, ``-3``… appended when taken).

    The directory is claimed with an exclusive ``mkdir``, so runs started at the same
    moment (in parallel processes too) never share one. Only ``overwrite=True`` reuses
    an existing directory of that name.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = root / f"{slug(name)}-{stamp}"
    root.mkdir(parents=True, exist_ok=True)
    path, i = base, 1
    while True:
        try:
            path.mkdir(exist_ok=overwrite)
            return path
        except FileExistsError:
            i += 1
            path = base.with_name(f"{base.name}-{i}")
