"""python-can buses from station-file settings, and `CanPort`: what labctl does on a bus.

```yaml
    bus: {interface: virtual, channel: bms0, bitrate: 500000}   # or socketcan/can0, pcan/PCAN_USBBUS1...
```

Any python-can interface works; the keys besides interface/channel/bitrate that
python-can accepts for it (`fd`, `data_bitrate`, `serial`, `app_name`...) are passed
through. `CanPort` adds receive filters, recording of every frame in both
directions (for the run's frame log) and periodic transmit. Periodic transmit uses
python-can's `send_periodic` on a real clock; in virtual time its threads would run
on the wall clock, so the port keeps its own schedule and sends due frames when the
simulation advances (`pump`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from labctl.errors import InstrumentError, LabctlError

BUS_KEYS = {"interface", "channel", "bitrate", "fd", "data_bitrate", "serial", "app_name",
            "receive_own_messages", "poll_interval", "state", "tseg1_abr", "tseg2_abr", "sjw_abr"}
_unique = itertools.count(1)


def open_bus(settings: dict | None, *, unique_virtual: bool = False) -> Any:
    """A python-can bus from a `bus:` mapping. A virtual channel keeps the frames' timestamps."""
    import can

    s = dict(settings or {})
    unknown = sorted(set(s) - BUS_KEYS)
    if unknown:
        raise LabctlError(f"bus: unknown setting(s) {', '.join(unknown)}; allowed: "
                          f"{', '.join(sorted(BUS_KEYS))}")
    interface = str(s.pop("interface", "virtual"))
    channel = s.pop("channel", "labctl-bms")
    if interface == "virtual":
        s["preserve_timestamps"] = True  # frames carry virtual time, not the wall clock
        if unique_virtual:  # several simulated runs in one process must not hear each other
            channel = f"{channel}#{next(_unique)}"
    try:
        return can.Bus(interface=interface, channel=channel, **s)
    except (can.CanError, OSError, ImportError, ValueError, TypeError) as exc:
        raise InstrumentError(f"cannot open CAN bus interface={interface!r} channel={channel!r}: "
                              f"{exc}") from exc


@dataclass
class _Periodic:
    arbitration_id: int
    extended: bool
    period_s: float
    make_data: Callable[[], bytes]
    next_s: float
    task: Any = None  # python-can task on a real clock

    def message(self, t: float) -> Any:
        import can

        return can.Message(timestamp=t, arbitration_id=self.arbitration_id,
                           is_extended_id=self.extended, data=self.make_data(), is_rx=False)


class CanPort:
    """labctl's end of a CAN bus: send, periodic send, receive (filtered), record."""

    def __init__(self, bus: Any, clock: Any, *, virtual: bool | None = None):
        self.bus = bus
        self.clock = clock
        self.virtual = clock.is_virtual if virtual is None else virtual
        self.recording = False
        self.recorded: list[Any] = []
        self._periodic: list[_Periodic] = []
        # Real interfaces stamp frames in Unix time; labctl works in the clock's test time.
        import time

        self._rx_offset = 0.0 if self.virtual else time.time() - clock.now()

    def identify(self) -> dict[str, str]:
        return {"bus": str(getattr(self.bus, "channel_info", type(self.bus).__name__))}

    def set_filters(self, filters: list[dict] | None) -> None:
        """python-can filters: [{"can_id": 0x200, "can_mask": 0x7FF, "extended": False}, ...]."""
        self.bus.set_filters(filters)

    def send(self, arbitration_id: int, data: bytes, is_extended_id: bool = False) -> None:
        import can

        msg = can.Message(timestamp=self.clock.now(), arbitration_id=arbitration_id,
                          is_extended_id=is_extended_id, data=data, is_rx=False)
        self._send(msg)

    def _send(self, msg: Any) -> None:
        import can

        try:
            self.bus.send(msg)
        except can.CanError as exc:
            raise InstrumentError(f"CAN send failed: {exc}") from exc
        if self.recording:
            self.recorded.append(msg)

    def send_periodic(self, arbitration_id: int, make_data: Callable[[], bytes], period_s: float,
                      is_extended_id: bool = False) -> None:
        """Send `make_data()` every `period_s` (fresh data each time: counters, commands)."""
        task = _Periodic(arbitration_id, is_extended_id, period_s, make_data,
                         self.clock.now())
        if not self.virtual:
            msg = task.message(0.0)

            def modify(m: Any) -> None:
                m.data = bytearray(make_data())
                if self.recording:
                    self.recorded.append(m)

            task.task = self.bus.send_periodic(msg, period_s, modifier_callback=modify)
        self._periodic.append(task)

    def stop_periodic(self) -> None:
        for task in self._periodic:
            if task.task is not None:
                task.task.stop()
        self._periodic.clear()

    def pump(self, t: float) -> None:
        """Virtual time: send every periodic frame due at or before `t`, in time order."""
        if not self.virtual:
            return
        while self._periodic:
            task = min(self._periodic, key=lambda p: p.next_s)
            if task.next_s > t + 1e-12:
                return
            self._send(task.message(task.next_s))
            task.next_s += task.period_s

    def receive(self, timeout_s: float = 0.0) -> list[Any]:
        """Every frame waiting now (and, on a real clock, arriving within `timeout_s`)."""
        import time

        out = []
        deadline = time.monotonic() + timeout_s
        while True:
            left = max(0.0, deadline - time.monotonic()) if not self.virtual else 0.0
            msg = self.bus.recv(timeout=left)
            if msg is None:
                if self.virtual or time.monotonic() >= deadline:
                    break
                continue
            if not self.virtual:
                msg.timestamp -= self._rx_offset
            out.append(msg)
        if self.recording:
            self.recorded.extend(out)
        return out

    def take_recording(self) -> list[Any]:
        out, self.recorded = self.recorded, []
        return out

    def close(self) -> None:
        self.stop_periodic()
        try:
            self.bus.shutdown()
        except Exception:  # closing is best effort
            pass
