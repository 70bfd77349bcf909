"""One writer per run directory: a lock file naming the process that writes it.

The process that writes a run directory — a run from its start, or a resumed run —
holds ``run.lock`` in it and removes it when done. Exclusion comes from ``flock`` on that
file, which the kernel releases however the holder ends (even killed); the file's content
(pid, host, since when) is for the messages. A lock file whose process no longer holds it
is stale: the next writer takes it over and says whose it was.

Where ``flock`` is not available (Windows) or not supported by the file system, the lock
records the writer but cannot exclude another one, and says so.
"""

from __future__ import annotations

import json
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any

from .errors import GMNMError, GMNMWarning

try:
    import fcntl
except ImportError:  # pragma: no cover  (Windows)
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = "run.lock"


class RunLock:
    """The lock of the run directory ``directory``; ``with RunLock(d):`` holds it."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock, or raise a GMNMError naming the process that holds it."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                _exclusive(fd)
            except BlockingIOError:
                holder = _read(fd)
                os.close(fd)
                raise GMNMError(
                    f"run {self.path.parent} is being written by {_who(holder)}; wait until it "
                    f"ends (or stop it), then try again"
                ) from None
            try:
                current = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
            if current:
                break
            os.close(fd)  # its holder released and removed it meanwhile: take the new one
        previous = _read(fd)
        if previous is not None:
            warnings.warn(f"took over the stale lock of {_who(previous)}, which no longer holds "
                          "it (the process ended without releasing it)", GMNMWarning, stacklevel=2)
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(me).encode())
        self._fd = fd

    def release(self) -> None:
        """Remove the lock file and let go (nothing when not held)."""
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


def _exclusive(fd: int) -> None:
    """flock the file, without waiting; BlockingIOError when another process holds it."""
    if fcntl is None:
        warnings.warn("run directories cannot be locked on this system: make sure no two "
                      "processes write the same one", GMNMWarning, stacklevel=3)
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise
    except OSError as exc:  # a file system without flock (some network file systems)
        warnings.warn(f"the run directory cannot be locked ({exc.strerror}): make sure no two "
                      "processes write it", GMNMWarning, stacklevel=3)


def _read(fd: int) -> dict[str, Any] | None:
    """The holder recorded in the lock file; None when it is empty, {} when unreadable."""
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 4096).decode(errors="replace").strip()
    if not text:
        return None
    try:
        holder = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _who(holder: dict[str, Any] | None) -> str:
    """``process 123 on host (since 2026-11-29 17:18:11)``."""
    if not holder or "pid" not in holder:
        return "another process (its lock file names none)"
    return f"process {holder['pid']} on {holder.get('host', '?')} (since {holder.get('since', '?')})"
