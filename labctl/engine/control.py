"""Run control: abort and pause requests, from signals or from other processes.

Signals only set flags; the engine acts on them between sample batches, so
an interrupt never lands in the middle of a journal write.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


class RunControl:
    def __init__(self) -> None:
        self._abort_reason: str | None = None
        self._paused = threading.Event()
        self._lock = threading.Lock()
        self.interrupts = 0

    def request_abort(self, reason: str) -> None:
        with self._lock:
            if self._abort_reason is None:
                self._abort_reason = reason
        self._paused.clear()

    @property
    def abort_reason(self) -> str | None:
        return self._abort_reason

    def request_pause(self) -> None:
        self._paused.set()

    def request_continue(self) -> None:
        self._paused.clear()

    @property
    def pause_requested(self) -> bool:
        return self._paused.is_set()


@contextmanager
def signals_abort(control: RunControl):
    """Ctrl-C / SIGTERM ask the engine to stop safely; a third Ctrl-C raises at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        control.interrupts += 1
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        control.request_abort(f"stopped by user ({name})")
        if control.interrupts >= 3:
            raise KeyboardInterrupt

    old_int = signal.signal(signal.SIGINT, handler)
    old_term = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
