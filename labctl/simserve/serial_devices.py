"""Simulated line-based serial devices on a pseudo-terminal, for testing serial drivers.

`PtyDevice(responder)` opens a pty pair; a thread answers each line written to the
slave end (`.port`, e.g. /dev/pts/7, which a driver opens like a serial port) with
`responder(line)`. The simulated controllers below keep just enough state to
answer the commands of labctl's drivers (docs/drivers.md).
"""

from __future__ import annotations

import os
import threading
import tty
from collections.abc import Callable


class PtyDevice:
    def __init__(self, responder: Callable[[str], str | None], eol: bytes = b"\r\n"):
        self.responder = responder
        self.eol = eol
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no line editing: bytes as sent
        self.port = os.ttyname(self.slave)
        self.lines: list[str] = []  # every command received, for tests
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True, name="pty-device")
        self._thread.start()

    def _serve(self) -> None:
        buffer = b""
        while not self._stop:
            try:
                chunk = os.read(self.master, 1024)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while self.eol[-1:] in buffer:
                raw, _, buffer = buffer.partition(self.eol[-1:])
                line = raw.decode("ascii", errors="replace").strip()
                self.lines.append(line)
                answer = self.responder(line)
                if answer is not None:
                    os.write(self.master, answer.encode("ascii") + self.eol)

    def close(self) -> None:
        self._stop = True
        for fd in (self.slave, self.master):
            try:
                os.close(fd)
            except OSError:
                pass


class SimEspecController:
    """ESPEC-style controller: first-order approach to the set-point per TEMP? read."""

    def __init__(self, temperature_c: float = 25.0, step_fraction: float = 0.5):
        self.temperature_c = temperature_c
        self.setpoint_c = temperature_c
        self.mode = "STANDBY"
        self.alarms = 0
        self.step_fraction = step_fraction

    def __call__(self, line: str) -> str | None:
        cmd = line.upper()
        if cmd == "ROM?":
            return "SCP-220 Ver 2.00"
        if cmd == "TEMP?":
            if self.mode == "CONSTANT":
                self.temperature_c += (self.setpoint_c - self.temperature_c) * self.step_fraction
            return f"{self.temperature_c:.1f},{self.setpoint_c:.1f},150.0,-40.0"
        if cmd == "MON?":
            return f"{self.temperature_c:.1f},,{self.mode},{self.alarms}"
        if cmd.startswith("TEMP, S"):
            try:
                value = float(cmd[7:])
            except ValueError:
                return "NA:DATA NOT READY"
            if not -40.0 <= value <= 150.0:
                return "NA:DATA OUT OF RANGE"
            self.setpoint_c = value
            return f"OK:TEMP, S{value:.1f}"
        if cmd in ("MODE, CONSTANT", "MODE, STANDBY", "MODE, OFF"):
            self.mode = cmd.split(", ")[1]
            return f"OK:{line}"
        return "NA:COMMAND ERROR"


class SimForceController:
    """Load-cell force controller: the force jumps to the set-point (ramps are the rig's)."""

    def __init__(self, force_n: float = 0.0, max_force_n: float = 10000.0):
        self.force_n = force_n
        self.setpoint_n = force_n
        self.rate_n_per_s = None
        self.max_force_n = max_force_n
        self.held = False

    def __call__(self, line: str) -> str | None:
        head, _, arg = line.partition(" ")
        if line == "*IDN?":
            return "LABCTL-SIM,LC-10K,SIM-LC-0001,1.0"
        if line == "F?":
            return f"F {self.force_n:.1f}"
        if head in ("FSET", "RATE"):
            try:
                value = float(arg)
            except ValueError:
                return "ERR 2 BAD NUMBER"
            if not 0 <= value <= self.max_force_n:
                return "ERR 3 OUT OF RANGE"
            if head == "FSET":
                self.setpoint_n = self.force_n = value
                self.held = False
            else:
                self.rate_n_per_s = value
            return "OK"
        if line == "HOLD":
            self.held = True
            return "OK"
        return "ERR 1 UNKNOWN COMMAND"


class SimTcLogger:
    """Thermocouple logger reading in kelvin; `temperatures_c` holds the truth (None = open)."""

    def __init__(self, temperatures_c: list[float | None], unit: str = "K"):
        self.temperatures_c = temperatures_c
        self.unit = unit

    def __call__(self, line: str) -> str | None:
        if line == "*IDN?":
            return "LABCTL-SIM,TC-8,SIM-TC-0001,1.0"
        if line == "UNIT?":
            return self.unit
        if line == "TYPE?":
            return ",".join("K" for _ in self.temperatures_c)
        if line == "READ?":
            off = 273.15 if self.unit == "K" else 0.0
            return ",".join("OPEN" if t is None else f"{t + off:.2f}" for t in self.temperatures_c)
        return None  # unknown: silence, as such loggers do
