"""Keithley 2281S-20-6 in its battery-TEST function as a cycler channel.

The 2281S's battery-test function charges and discharges a real cell towards a
"V-set": above the cell's voltage it sources (charges), below it sinks
(discharges), limited by a current limit. It has no step program of its own that
labctl could use, so steps run in labctl's software loop
(`software_loop.run_software_step`), as for the Keithley SMUs:

- CC charge at I with the cell's maximum voltage as limit = V-set at the voltage
  limit, current limit I: the instrument is in CC until the cell reaches V-set,
  then CV (a hardware second guard, like an SMU's compliance);
- CV at V with current limit I = V-set V, current limit I;
- CC discharge at I (|I| <= 1 A, the 2281S's sink) = V-set at the discharge floor
  (the cell's minimum voltage), current limit |I|;
- rest = output off (the terminal voltage is still read).

The instrument class is PyMeasure's `Keithley2281S` (its `bt` channel: V-set,
end current, output; `function_mode` for `:ENTR:FUNC`). Sources for each command
are cited where it is used. Reference manual = Keithley "Model 2281S-20-6 DC Power
Supply and Battery Simulator Reference Manual", 077114601 / March 2019 (read
through manualshive.com's page images, section 7).

CONFIRMED from the reference manual: `:BATT:TEST:VOLT` (V-set, 0-20 V, p. 7-63),
`:BATT:TEST:CURR:END` (0-0.1 A, p. 7-58), `:BATT:TEST:CURR:PROT` (0.1-6.1 A,
p. 7-60), `:BATT:TEST:VOLT:PROT` (0.5-21 V, p. 7-65), `:BATT:OUTP` (p. 7-76),
`:BATT:DATA:DATA? "<elements>"` with VOLT, CURR, AH (test function only) and REL
(pp. 7-23, 7-24). `:ENTR:FUNC TEST` and `:SYST:LFR?` come from PyMeasure's class.

NOT CONFIRMED (the manual page that defines it, 7-59, was not available):
- the battery-test current-limit command. This driver sends
  `:BATT:TEST:CURR:LIM:SOUR <A>` (TEST_CURRENT_LIMIT below), the spelling used by
  independent user scripts; check it on hardware (`SYST:ERR?` after it reports
  -113 if it is wrong, and the driver then raises InstrumentError, so a wrong
  spelling cannot run a step silently);
- whether that limit also sets the sink (discharge) current, or the sink runs at
  the instrument's fixed ~1 A;
- the sign of CURR in the buffer (this driver assumes + = sourced = charge);
- whether the buffer takes readings while the output is off (rest steps);
- the sample interval of the battery-test buffer (readings arrive at the
  instrument's own pace; `read()` waits up to `timeout_s` for a new one).
The cell's safety limits still end any step whose measured current or voltage is
outside them, whatever the instrument does.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

from labctl.capabilities.cycler import CyclerRanges, SampleBatch, StepEnd
from labctl.capabilities.limits import SafetyLimits
from labctl.capabilities.steps import ElectricalStep, LoggingPolicy, Mode
from labctl.drivers.keithley_smu import SmuCyclerChannel, loop_settings, smu_ranges
from labctl.drivers.software_loop import Reading
from labctl.drivers.visa_link import (
    VISA_SETTINGS,
    check_settings,
    guarded,
    number,
    open_pymeasure,
    parse_idn,
    scpi_error,
)
from labctl.errors import InstrumentError, InstrumentTimeout
from labctl.stations.spec import InstrumentSpec

# Source side: 20 V, 6.1 A (manual: V-set 0-20 V, p. 7-63; current protection up to
# 6.1 A, p. 7-60). The sink (discharge) side is ~1 A, which CyclerRanges cannot
# express (one symmetric current), so the channel refuses larger discharges itself.
HARDWARE = CyclerRanges(max_current_a=6.1, max_voltage_v=20.0, min_voltage_v=0.0)
MAX_SINK_A = 1.0
TEST_CURRENT_LIMIT = ":BATT:TEST:CURR:LIM:SOUR"  # NOT CONFIRMED, see the module docstring
READ = ':BATT:DATA:DATA? "VOLT,CURR,AH,REL"'  # manual pp. 7-23/7-24
SETTINGS = VISA_SETTINGS | {"poll_period_s", "time_source", "name"}


class Keithley2281SLink:
    """The 2281S's battery-test function behind labctl's `SmuLink` interface."""

    def __init__(self, inst: Any, name: str = "keithley-2281s", *,
                 current_protection_a: float = 6.1, voltage_protection_v: float = 21.0,
                 read_wait_s: float = 5.0):
        self.inst = inst
        self.name = name
        self.read_wait_s = read_wait_s
        self.discharge_floor_v = 0.0  # V-set for CC discharge; the channel sets it per step
        self.last_capacity_ah: float | None = None  # the instrument's own A-H element
        self._mode: tuple[str, float, float] | None = None
        self._adapter = inst.adapter
        with guarded(name):
            inst.function_mode = "TEST"  # :ENTR:FUNC TEST (PyMeasure)
            # End current 0: the instrument must not end a charge on its own; the software
            # loop ends steps on their conditions (manual p. 7-58: range 0-0.1 A).
            inst.bt.termination_current = 0
            # Hardware second guards (manual pp. 7-60, 7-65).
            inst.write(f":BATT:TEST:CURR:PROT {current_protection_a:g}")
            inst.write(f":BATT:TEST:VOLT:PROT {voltage_protection_v:g}")
            self._check()

    def _check(self) -> None:
        code, message = scpi_error(self.inst.ask("SYST:ERR?"))
        if code != 0:
            raise InstrumentError(f"{self.name}: instrument error {code}: {message}")

    def identify(self) -> dict[str, str]:
        with guarded(self.name):
            return parse_idn(self.inst.ask("*IDN?"))

    def _set(self, v_set: float, current_limit_a: float) -> None:
        with guarded(self.name):
            self.inst.bt.charge_voltage_setpoint = v_set  # :BATT:TEST:VOLT (p. 7-63)
            self.inst.write(f"{TEST_CURRENT_LIMIT} {current_limit_a:g}")
            self.inst.bt.output_enabled = True  # :BATT:OUTP 1 (p. 7-76)
            self._check()

    def source_current(self, current_a: float, voltage_limit_v: float) -> None:
        if current_a == 0.0:  # rest: nothing flows with the output off
            self._mode = ("rest", 0.0, voltage_limit_v)
            self.output_off()
            return
        if current_a < 0:
            if -current_a > MAX_SINK_A * (1 + 1e-9):
                raise InstrumentError(f"{self.name}: {-current_a:g} A discharge is beyond the "
                                      f"2281S's {MAX_SINK_A:g} A sink")
            self._set(self.discharge_floor_v, -current_a)
        else:
            self._set(voltage_limit_v, current_a)
        self._mode = ("current", current_a, voltage_limit_v)

    def source_voltage(self, voltage_v: float, current_limit_a: float) -> None:
        self._set(voltage_v, current_limit_a)
        self._mode = ("voltage", voltage_v, current_limit_a)

    def set_current(self, current_a: float) -> None:
        v_lim = self._mode[2] if self._mode else HARDWARE.max_voltage_v
        self.source_current(current_a, v_lim)

    def read(self) -> Reading:
        """The newest buffer point; waits (up to `read_wait_s`) for one to arrive, since
        `:BATT:DATA:DATA?` returns only the points stored since the previous query."""
        deadline = time.monotonic() + self.read_wait_s
        while True:
            with guarded(self.name):
                self._adapter.write(READ)
                answer = self._adapter.read().strip()
                values = [float(x) for x in answer.split(",")] if answer else []
                if len(values) % 4:
                    raise InstrumentError(f"{self.name}: buffer answer is not VOLT,CURR,AH,REL "
                                          f"points: {answer[:80]!r}")
            if values:
                v, i, ah, rel = values[-4:]
                self.last_capacity_ah = ah
                return Reading(v, i, rel)
            if time.monotonic() >= deadline:
                raise InstrumentTimeout(f"{self.name}: no new reading in the battery-test "
                                        f"buffer within {self.read_wait_s:g} s")
            time.sleep(0.05)

    def read_voltage(self) -> float:
        return self.read().voltage_v

    def output_off(self) -> None:
        with guarded(self.name):
            self.inst.bt.output_enabled = False  # :BATT:OUTP 0

    def close(self) -> None:
        with guarded(self.name):
            self._adapter.close()


class Keithley2281SChannel(SmuCyclerChannel):
    """The SMU channel plus the 2281S's one-sided current: discharge at most 1 A."""

    def run_step(self, step: ElectricalStep, limits: SafetyLimits, logging: LoggingPolicy
                 ) -> Generator[SampleBatch, None, StepEnd]:
        sink = 0.0
        if step.mode is Mode.CURRENT:
            sink = -step.value
        elif step.mode is Mode.CURRENT_PROFILE and step.profile is not None and step.profile.value:
            sink = -min(step.profile.value)
        elif step.mode is Mode.POWER and step.value < 0:
            sink = MAX_SINK_A + 1  # I = P / V can need any current; refuse rather than guess
        if sink > MAX_SINK_A * (1 + 1e-9):
            raise InstrumentError(f"{self.name}: step {step.text or step.mode.value!r} needs more "
                                  f"discharge current than the 2281S's {MAX_SINK_A:g} A sink")
        # CC discharge holds V-set at the floor the cell may reach (a hardware guard).
        self.link.discharge_floor_v = max(self.ranges.min_voltage_v, limits.min_voltage_v, 0.0)
        return super().run_step(step, limits, logging)


def make_keithley_2281s(binding: InstrumentSpec, context: Any) -> Keithley2281SChannel:
    from pymeasure.instruments.keithley import Keithley2281S

    check_settings(binding, SETTINGS)
    ranges = smu_ranges(binding, HARDWARE)
    poll, source = loop_settings(binding)
    timeout = number(binding, "timeout_s", 5.0, 0.001) or 5.0
    inst = open_pymeasure(Keithley2281S, binding, context.station.source)
    name = str(binding.settings.get(
        "name", f"{binding.role} (keithley-2281s at {binding.settings.get('address')})"))
    try:
        link = Keithley2281SLink(
            inst, name=name, read_wait_s=timeout,
            current_protection_a=min(6.1, max(0.1, 1.1 * ranges.max_current_a)),
            voltage_protection_v=min(21.0, max(0.5, ranges.max_voltage_v + 0.2)))
    except Exception:
        inst.adapter.close()
        raise
    channel = Keithley2281SChannel(link, context.clock, ranges, name=name, poll_period_s=poll,
                                   time_source=source, calibration_due=binding.calibration_due,
                                   driver="keithley-2281s")
    channel.safe_state()
    return channel
