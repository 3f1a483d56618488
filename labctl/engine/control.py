"""Run control: abort and pause requests, from signals or from other processes.

Signals and queued commands only set flags; the engine acts on them between
sample batches, so an interrupt never lands in the middle of a journal write.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from labctl.fileio import read_regular_bytes


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
def signals_abort(*controls: RunControl):
    """Ctrl-C / SIGTERM ask every engine to stop safely; a third Ctrl-C raises at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    count = [0]

    def handler(signum, frame):
        count[0] += 1
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        for control in controls:
            control.interrupts = count[0]
            control.request_abort(f"stopped by user ({name})")
        if count[0] >= 3:
            raise KeyboardInterrupt

    old_int = signal.signal(signal.SIGINT, handler)
    old_term = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)


COMMANDS = ("stop", "pause", "continue")
INBOX = "control"
POLL_INTERVAL_S = 0.2


def send_command(run_dir: Path, command: str, reason: str = "") -> Path:
    """Queue a command for a running run (used by `labctl stop/pause/continue`).

    Commands are small JSON files in RUN_DIR/control/, written atomically; the
    engine reads and deletes them between sample batches. Only someone who can
    write to the run directory can command the run.
    """
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}; allowed: {', '.join(COMMANDS)}")
    inbox = Path(run_dir) / INBOX
    inbox.mkdir(exist_ok=True)
    stamp = f"{time.time_ns():020d}-{os.getpid()}"
    final = inbox / f"{stamp}-{command}.json"
    tmp = inbox / f".{stamp}.tmp"
    tmp.write_text(json.dumps({"command": command, "reason": reason, "sent_unix_s": time.time()}))
    os.replace(tmp, final)
    return final


MAX_COMMAND_BYTES = 64 * 1024
MAX_COMMANDS_PER_POLL = 100


def _read_command(path: Path) -> dict:
    """One queued command; anything but a small regular JSON file is ignored.

    A FIFO or device dropped into the inbox must never block the engine (it may be
    mid-step with the current on), so it is opened non-blocking and refused.
    """
    try:
        message = json.loads(read_regular_bytes(path, MAX_COMMAND_BYTES))
    except (OSError, ValueError):
        return {}
    return message if isinstance(message, dict) else {}


class CommandInbox:
    """Applies queued commands (files in RUN_DIR/control/) to a RunControl."""

    def __init__(self, run_dir: Path, control: RunControl, on_command=None):
        self.folder = Path(run_dir) / INBOX
        self.control = control
        self.on_command = on_command  # called with (command, reason) for the log
        self._next_poll = 0.0

    def discard_pending(self, before_unix_s: float) -> list[str]:
        """Drop commands queued before `before_unix_s` (a `stop` sent to a run that had
        already crashed must not end the resumed run at once); returns what was dropped."""
        dropped: list[str] = []
        try:
            entries = sorted(p for p in self.folder.iterdir() if p.suffix == ".json")
        except OSError:
            return dropped
        for path in entries:
            message = _read_command(path)
            sent = message.get("sent_unix_s")
            if not isinstance(sent, int | float):
                try:
                    sent = path.stat().st_mtime
                except OSError:
                    continue
            if sent >= before_unix_s:
                continue
            command = message.get("command")
            try:
                path.unlink()
            except OSError:
                continue
            dropped.append(str(command or path.name))
        return dropped

    def poll(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next_poll:
            return
        self._next_poll = now + POLL_INTERVAL_S
        try:
            entries = sorted(p for p in self.folder.iterdir() if p.suffix == ".json")
        except OSError:
            return
        for path in entries[:MAX_COMMANDS_PER_POLL]:
            message = _read_command(path)
            try:
                path.unlink()
            except OSError:
                pass
            command = message.get("command")
            reason = message.get("reason") or ""
            if command == "stop":
                self.control.request_abort(reason or "stopped by labctl stop")
            elif command == "pause":
                self.control.request_pause()
            elif command == "continue":
                self.control.request_continue()
            else:
                continue
            if self.on_command:
                self.on_command(command, reason)
