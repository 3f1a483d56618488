"""Clocks: virtual time for simulation, wall time for real benches.

The engine and the simulated instruments share one clock. In virtual time a
wait is a jump; with `speed` set, virtual time is paced against the wall clock
(speed = virtual seconds per wall second), which makes a simulated run
watchable and lets tests interrupt it mid-step.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the clock started."""
        ...

    def sleep_until(self, t: float) -> None:
        """Return when the clock reads `t` (at once if it already does)."""
        ...

    @property
    def is_virtual(self) -> bool: ...


class VirtualClock:
    """Virtual seconds; optionally paced at `speed` virtual seconds per wall second."""

    def __init__(self, start: float = 0.0, speed: float | None = None):
        if speed is not None and not speed > 0:
            raise ValueError("speed must be > 0")
        self._t = float(start)
        self.speed = speed
        self._lock = threading.Lock()
        self._wall0 = time.monotonic()
        self._virt0 = self._t

    @property
    def is_virtual(self) -> bool:
        return True

    def now(self) -> float:
        return self._t

    def sleep_until(self, t: float) -> None:
        if self.speed is not None:
            wall_target = self._wall0 + (t - self._virt0) / self.speed
            delay = wall_target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        with self._lock:
            if t > self._t:
                self._t = float(t)

    def reset_pacing(self) -> None:
        """Re-anchor pacing to the wall clock (after a resume or a pause)."""
        self._wall0 = time.monotonic()
        self._virt0 = self._t


class WallClock:
    """Real time (monotonic), for real instruments."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    @property
    def is_virtual(self) -> bool:
        return False

    def now(self) -> float:
        return time.monotonic() - self._t0

    def sleep_until(self, t: float) -> None:
        delay = t - self.now()
        if delay > 0:
            time.sleep(delay)
