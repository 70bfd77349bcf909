"""Stopping a run cleanly on Ctrl-C (SIGINT) or SIGTERM.

    with StopOnSignal() as stop:
        solution = solve(problem, model, stop=stop)
    if solution.status == "interrupted":
        ...  # save solution.state; solve(..., resume=state) continues exactly

While the context is active the first SIGINT or SIGTERM only *requests* a stop: training
ends at its next safe point (after the current step, or the current group of L-BFGS
iterations) with a consistent, resumable state. A second signal raises
:class:`KeyboardInterrupt` at once, for when a step takes too long. The previous handlers
are restored on exit. Outside the main thread (where Python cannot install handlers) the
context does nothing.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignal:
    """A stop request set by SIGINT/SIGTERM; call it (``stop()``) to ask whether a stop
    was requested, ``signal_name`` says which signal asked. ``also`` is another source of
    stop requests (e.g. a parent process's ``Event.is_set``), polled with the signals."""

    def __init__(self, also: Callable[[], bool] | None = None) -> None:
        self.signal_name: str | None = None
        self.also = also
        self._previous: dict[int, Any] = {}

    def __call__(self) -> bool:
        return self.signal_name is not None or (self.also is not None and self.also())

    def request(self, name: str = "request") -> None:
        """Ask for a stop as a signal would (for tests and other front ends)."""
        self.signal_name = name

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal_name is not None:
            raise KeyboardInterrupt  # second signal: stop now
        self.signal_name = signal.Signals(signum).name

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


class StopAfter:
    """A stop request that fires once training has reached ``step`` steps: pass it both
    as ``stop`` and as a callback, ``solve(..., stop=s, callbacks=[s])``, to split a long
    run into sessions (continue with ``resume=solution.state``)."""

    def __init__(self, step: int) -> None:
        self.step, self._task = step, None

    def on_record(self, row: dict[str, Any], task: Any) -> None:
        self._task = task

    def __call__(self) -> bool:
        return self._task is not None and self._task.step >= self.step
