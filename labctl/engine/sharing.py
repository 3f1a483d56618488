"""A thermal chamber shared by several channels: who holds it, at which set-point.

The channels started together by one `labctl run --channel ... / --batch` on the
same station file, or on station files naming the same chamber address, sit in the
same chamber. A channel's chamber step *claims*
the chamber at its set-point; the claim lasts until the channel's next chamber
step or the end of its run. Claims at the same set-point coexist. A step whose
set-point differs from another channel's claim either waits until that claim
is released (`if_busy: wait`, the default; the outputs stay off meanwhile and
the wait is logged) or ends the run at once (`if_busy: reject`), as the
procedure says. The claims live in one process: `labctl run` puts the channels of one
chamber in the same worker process (`engine/multi.py`); channels run by separate `labctl`
commands are not arbitrated.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from labctl.stations.spec import StationSpec

SAME_SETPOINT_C = 0.05  # claims closer than this are the same set-point


class SharedChamber:
    """The claims on one physical chamber, safe to use from every channel's thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.claims: dict[str, float] = {}  # channel -> set-point °C

    def holder(self, channel: str, setpoint_c: float) -> tuple[str, float] | None:
        """Another channel whose claim conflicts with `setpoint_c`, if any."""
        for other, sp in sorted(self.claims.items()):
            if other != channel and abs(sp - setpoint_c) > SAME_SETPOINT_C:
                return other, sp
        return None

    def claim(self, channel: str, setpoint_c: float, *, wait: bool, timeout_s: float,
              should_stop: Callable[[], bool], on_wait: Callable[[str, float], None]
              ) -> str | None:
        """Claim the chamber; None when granted, else why not (rejected, timed out, stopped)."""
        deadline = time.monotonic() + timeout_s
        announced = False
        with self._cond:
            self.claims.pop(channel, None)  # a channel's new step replaces its old claim
            self._cond.notify_all()
            while True:
                busy = self.holder(channel, setpoint_c)
                if busy is None:
                    self.claims[channel] = setpoint_c
                    return None
                other, sp = busy
                why = f"the chamber is held at {sp:g} °C by channel {other}"
                if not wait:
                    return why
                if not announced:
                    on_wait(other, sp)
                    announced = True
                left = deadline - time.monotonic()
                if left <= 0:
                    return f"{why}, still after waiting {timeout_s:g} s"
                if should_stop():
                    return "stopped while waiting for the chamber"
                self._cond.wait(timeout=min(left, 0.1))

    def release(self, channel: str) -> None:
        with self._cond:
            if self.claims.pop(channel, None) is not None:
                self._cond.notify_all()


_LOCK = threading.Lock()
_CHAMBERS: dict[tuple, SharedChamber] = {}


# Settings that name the physical instrument a driver talks to.
ADDRESS_SETTINGS = ("address", "host", "port")


def chamber_key(station: StationSpec) -> tuple | None:
    """Which physical chamber this station's runs share, or None without a chamber: the
    instrument at its address (whichever station file names it), else the station file,
    driver and settings (a simulated chamber)."""
    binding = station.instruments.get("chamber")
    if binding is None:
        return None
    address = tuple((k, repr(binding.settings[k])) for k in ADDRESS_SETTINGS
                    if k in binding.settings)
    if address and "plan_twin" not in binding.settings:  # a plan's twin: claims of its own
        return ("instrument", binding.driver, address)
    settings = tuple(sorted((str(k), repr(v)) for k, v in binding.settings.items()))
    source = str(Path(station.source).resolve()) if station.source else station.name
    return (source, binding.driver, settings)


def shared_chamber(station: StationSpec) -> SharedChamber:
    """The claims on the chamber of this station file (one object per process and chamber:
    `engine/multi.py` keeps the channels of one chamber in one worker process)."""
    key = chamber_key(station)
    if key is None:
        raise KeyError("chamber")  # as station.instruments["chamber"] did
    with _LOCK:
        return _CHAMBERS.setdefault(key, SharedChamber())


def channel_of(station: StationSpec) -> str:
    """This run's channel (`labctl run --channel N` binds the cycler's `channel` setting)."""
    cycler = station.instruments.get("cycler")
    return str(cycler.settings.get("channel", "1")) if cycler is not None else "1"
