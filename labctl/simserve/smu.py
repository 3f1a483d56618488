"""A simulated source-measure unit with a simulated cell on its terminals.

The SMU's state (output, source function, level, compliance) becomes a labctl
step for the simulated cycler channel, which computes the cell's response in
closed form:

- output off, or 0 A sourced: rest;
- current I > 0 with voltage compliance Vlim: CC at I, then CV at Vlim (compliance);
- current I < 0: CC discharge (the compliance voltage is never reached by a cell);
- voltage V with current compliance Ilim: CV at V, current limited to Ilim.

Time: the instrument's clock advances only when it measures. `time_per_read_s`
set: every reading advances virtual time by that much (lock-step, deterministic:
a reading "takes" that long). `speed` set instead: virtual time runs at `speed`
times the wall clock. A change of the source first brings the cell up to the
present instant under the old setting.

Calibration errors (`gain_error` g, `offset_v`, `offset_a`) make a self-consistent but
wrong instrument, as a drifted one is: it reports what it was told to source
(reading = (1 + g) x true + offset), while the cell really gets
(programmed - offset) / (1 + g). `true_reading()` is what an ideal reference meter
sees; comparing the two reveals the error.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from labctl.capabilities.cycler import CyclerRanges
from labctl.capabilities.limits import SafetyLimits
from labctl.capabilities.steps import ElectricalStep, LoggingPolicy, Mode
from labctl.cells.spec import CellSpec
from labctl.errors import LabctlError

MAX_CURRENT_A = 1.05
MAX_VOLTAGE_V = 21.0
MIN_ADVANCE_S = 1e-3  # paced mode: two commands in the same instant still move time this much


@dataclass
class SmuReading:
    voltage_v: float
    current_a: float
    time_s: float
    compliance: bool = False


class SimSmu:
    """A 2400/2450-like SMU (±1.05 A, ±21 V) on a simulated cell."""

    def __init__(self, world: Any, cell: CellSpec, *, time_per_read_s: float | None = 0.1,
                 speed: float | None = None, noise: dict | None = None,
                 resolution: dict | None = None, seed: int = 0,
                 initial_soc: float | None = None, gain_error: float = 0.0,
                 offset_v: float = 0.0, offset_a: float = 0.0):
        from labctl.sim.cycler import SimCyclerChannel

        if (time_per_read_s is None) == (speed is None):
            raise LabctlError("a simulated SMU needs exactly one of time_per_read_s and speed")
        if time_per_read_s is not None and not time_per_read_s > 0:
            raise LabctlError(f"time per reading must be > 0 s, got {time_per_read_s}")
        if speed is not None and not speed > 0:
            raise LabctlError(f"speed must be > 0, got {speed}")
        self.world = world
        self.clock = world.clock
        self.channel = SimCyclerChannel(
            world, cell, ranges=CyclerRanges(MAX_CURRENT_A, MAX_VOLTAGE_V, 0.0),
            noise=noise, resolution=resolution or {"voltage_v": 1e-6, "current_a": 1e-7},
            seed=seed, initial_soc=initial_soc, name="sim-smu")
        world.cell_channel = self.channel
        self.time_per_read_s = time_per_read_s
        self.speed = speed
        self.gain_error = float(gain_error)
        self.offset_v = float(offset_v)
        self.offset_a = float(offset_a)
        self.lock = threading.RLock()  # one cell, several client connections
        self._wall0 = time.monotonic()
        self._virt0 = self.clock.now()
        self.t0 = self.clock.now()
        self.output_on = False
        self.function = "CURR"  # what is sourced: CURR or VOLT
        self.current_level_a = 0.0
        self.voltage_level_v = 0.0
        self.voltage_limit_v = MAX_VOLTAGE_V
        self.current_limit_a = 1.05e-4  # the instrument's power-on default
        self._true = SmuReading(math.nan, 0.0, 0.0)
        self._true_set = False

    # -- the source ---------------------------------------------------------------------------
    def set_output(self, on: bool) -> None:
        with self.lock:
            self._sync()
            self.output_on = bool(on)

    def set_function(self, function: str) -> None:
        with self.lock:
            self._sync()
            self.function = function

    def set_current_level(self, current_a: float) -> None:
        with self.lock:
            self._check(abs(current_a) <= MAX_CURRENT_A, "current level")
            self._sync()
            self.current_level_a = float(current_a)

    def set_voltage_level(self, voltage_v: float) -> None:
        with self.lock:
            self._check(abs(voltage_v) <= MAX_VOLTAGE_V, "voltage level")
            self._sync()
            self.voltage_level_v = float(voltage_v)

    def set_voltage_limit(self, voltage_v: float) -> None:
        with self.lock:
            self._check(0 < abs(voltage_v) <= MAX_VOLTAGE_V, "voltage limit")
            self._sync()
            self.voltage_limit_v = abs(float(voltage_v))

    def set_current_limit(self, current_a: float) -> None:
        with self.lock:
            self._check(0 < abs(current_a) <= MAX_CURRENT_A, "current limit")
            self._sync()
            self.current_limit_a = abs(float(current_a))

    @staticmethod
    def _check(ok: bool, what: str) -> None:
        if not ok:
            raise ValueError(f"{what} out of range")

    # -- measuring ----------------------------------------------------------------------------
    def read(self) -> SmuReading:
        """One reading as the (possibly mis-calibrated) instrument reports it."""
        with self.lock:
            if self.time_per_read_s is not None:
                true = self._advance(self.clock.now() + self.time_per_read_s)
            else:
                true = self._advance(max(self._paced_now(), self.clock.now() + MIN_ADVANCE_S))
            g = 1.0 + self.gain_error
            return SmuReading(true.voltage_v * g + self.offset_v, true.current_a * g + self.offset_a,
                              true.time_s - self.t0, true.compliance)

    def true_reading(self) -> SmuReading:
        """The cell's voltage and current at the last reading, as an ideal meter sees them."""
        with self.lock:
            if not self._true_set:
                self._advance(self.clock.now() + MIN_ADVANCE_S)
            return self._true

    def _paced_now(self) -> float:
        return self._virt0 + (time.monotonic() - self._wall0) * self.speed

    def _sync(self) -> None:
        """Bring the cell to the present instant under the present setting (paced mode)."""
        if self.speed is not None:
            target = self._paced_now()
            if target > self.clock.now() + 1e-9:
                self._advance(target)

    def _true_v(self, programmed_v: float) -> float:
        return (programmed_v - self.offset_v) / (1.0 + self.gain_error)

    def _true_i(self, programmed_a: float) -> float:
        return (programmed_a - self.offset_a) / (1.0 + self.gain_error) if programmed_a else 0.0

    def _step(self, duration_s: float) -> ElectricalStep:
        log = LoggingPolicy(period_s=duration_s)
        if not self.output_on:
            return ElectricalStep(Mode.REST, 0.0, duration_s=duration_s, logging=log)
        if self.function == "VOLT":
            return ElectricalStep(Mode.VOLTAGE, self._true_v(self.voltage_level_v),
                                  duration_s=duration_s,
                                  current_limit_a=abs(self._true_i(self.current_limit_a)),
                                  logging=log)
        i = self._true_i(self.current_level_a)
        if i > 0:  # charging into the compliance voltage: CC, then CV at the limit
            return ElectricalStep(Mode.VOLTAGE, self._true_v(self.voltage_limit_v),
                                  duration_s=duration_s, current_limit_a=i, logging=log)
        if i < 0:
            return ElectricalStep(Mode.CURRENT, i, duration_s=duration_s, logging=log)
        return ElectricalStep(Mode.REST, 0.0, duration_s=duration_s, logging=log)

    def _advance(self, until: float) -> SmuReading:
        duration = until - self.clock.now()
        step = self._step(duration)
        gen = self.channel.run_step(step, SafetyLimits(), step.logging)
        last = None
        try:
            while True:
                last = next(gen)
        except StopIteration:
            pass
        v, i = float(last.voltage_v[-1]), float(last.current_a[-1])
        compliance = (self.output_on and (
            (self.function == "CURR" and abs(i) < abs(self._true_i(self.current_level_a)) * (1 - 1e-6))
            or (self.function == "VOLT"
                and abs(i) >= abs(self._true_i(self.current_limit_a)) * (1 - 1e-6))))
        self._true = SmuReading(v, i, self.clock.now(), bool(compliance))
        self._true_set = True
        return self._true
