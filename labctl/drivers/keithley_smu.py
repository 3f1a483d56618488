"""Keithley source-measure units (2400 family, 2450) as cycler channels.

The SMU has no onboard battery steps, so steps run in labctl's software loop
(`software_loop.run_software_step`): source, poll V and I, integrate, end on
conditions and safety limits. The instrument classes are PyMeasure's
(`Keithley2400`, `Keithley2450`); this module only adds the few commands they
lack for reading voltage, current and the instrument's timestamp in one query.

Wiring and sign: cell + on HI, cell - on LO; the SMU's positive current flows
into the cell's + terminal, which is labctl's charge direction, so no sign flip.
Safe state: output off. Rest steps source 0 A with the output on (the voltage
is measured at zero current).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

from labctl.capabilities.cycler import CyclerRanges, SampleBatch, StepEnd
from labctl.capabilities.limits import SafetyLimits
from labctl.capabilities.steps import ElectricalStep, LoggingPolicy
from labctl.drivers.software_loop import Reading, run_software_step
from labctl.drivers.visa_link import (
    VISA_SETTINGS,
    check_settings,
    guarded,
    number,
    open_pymeasure,
    parse_idn,
    scpi_error,
)
from labctl.errors import InstrumentError, LabctlError
from labctl.stations.spec import InstrumentSpec

OVERFLOW = 9.9e37  # SCPI "overflow/not a number" answer (9.91e37)

# What the hardware can do at most (battery use: the 20 V / 1 A source ranges).
HARDWARE = {
    "keithley-2400": CyclerRanges(max_current_a=1.05, max_voltage_v=21.0, min_voltage_v=0.0),
    "keithley-2450": CyclerRanges(max_current_a=1.05, max_voltage_v=21.0, min_voltage_v=0.0),
}
SMU_SETTINGS = VISA_SETTINGS | {"nplc", "poll_period_s", "time_source", "name"}


def _error_check(inst: Any, name: str) -> None:
    code, message = scpi_error(inst.ask("SYST:ERR?"))
    if code != 0:
        raise InstrumentError(f"{name}: instrument error {code}: {message}")


def _number_or_nan(x: Any) -> float:
    x = float(x)
    return math.nan if abs(x) >= OVERFLOW else x


class Keithley2400Link:
    """2400 family (2400, 2401, 2420, 2440 ...) through PyMeasure's `Keithley2400`.

    The class sets `:FORMAT:ELEMENTS VOLTAGE, CURRENT, RESISTANCE, TIME, STATUS`
    when it opens; with voltage and current sensed concurrently one `:READ?`
    gives V, I and the instrument's timestamp.
    """

    def __init__(self, inst: Any, name: str = "keithley-2400", nplc: float | None = None):
        self.inst = inst
        self.name = name
        self._adapter = inst.adapter  # the hot path skips the Instrument's attribute machinery
        with guarded(name):
            inst.write(":SENSE:FUNCTION:CONCURRENT 1")
            inst.write(":SENSE:FUNCTION 'VOLTAGE','CURRENT'")
            inst.source_current_range_auto_enabled = True
            inst.voltage_range_auto_enabled = True
            inst.current_range_auto_enabled = True
            if nplc is not None:
                inst.current_nplc = nplc  # global on the 2400 (voltage too)
            _error_check(inst, name)

    def identify(self) -> dict[str, str]:
        with guarded(self.name):
            return parse_idn(self.inst.id)

    def source_current(self, current_a: float, voltage_limit_v: float) -> None:
        with guarded(self.name):
            self.inst.source_mode = "current"
            self.inst.compliance_voltage = voltage_limit_v
            self.inst.source_current = current_a
            self.inst.source_enabled = True
            _error_check(self.inst, self.name)

    def source_voltage(self, voltage_v: float, current_limit_a: float) -> None:
        with guarded(self.name):
            self.inst.source_mode = "voltage"
            self.inst.compliance_current = current_limit_a
            self.inst.source_voltage = voltage_v
            self.inst.source_enabled = True
            _error_check(self.inst, self.name)

    def set_current(self, current_a: float) -> None:
        with guarded(self.name):
            self.inst.source_current = current_a

    def read(self) -> Reading:
        with guarded(self.name):
            self._adapter.write(":READ?")
            values = self._adapter.read().split(",")
            return Reading(_number_or_nan(values[0]), _number_or_nan(values[1]), float(values[3]))

    def read_voltage(self) -> float:
        """One voltage reading (what bench/driver_overhead.py times)."""
        return self.read().voltage_v

    def output_off(self) -> None:
        with guarded(self.name):
            self.inst.source_enabled = False

    def close(self) -> None:
        with guarded(self.name):
            self.inst.adapter.close()


class Keithley2450Link:
    """2450 in its native SCPI command set through PyMeasure's `Keithley2450`.

    Source readback on: the buffer's SOURce element is the measured source value,
    so `:READ? "defbuffer1", READ, SOUR, REL` gives the sensed quantity, the
    measured sourced quantity and the relative timestamp in one query.
    """

    READ = ':READ? "defbuffer1", READ, SOUR, REL'

    def __init__(self, inst: Any, name: str = "keithley-2450", nplc: float | None = None):
        self.inst = inst
        self.name = name
        self._adapter = inst.adapter
        self.sensing = "VOLT"
        with guarded(name):
            inst.write(":SOUR:CURR:READ:BACK ON")
            inst.write(":SOUR:VOLT:READ:BACK ON")
            if nplc is not None:
                inst.voltage_nplc = nplc
                inst.current_nplc = nplc
            _error_check(inst, name)

    def identify(self) -> dict[str, str]:
        with guarded(self.name):
            return parse_idn(self.inst.id)

    def source_current(self, current_a: float, voltage_limit_v: float) -> None:
        with guarded(self.name):
            self.inst.write(':SENS:FUNC "VOLT"')
            self.sensing = "VOLT"
            self.inst.source_mode = "current"
            self.inst.compliance_voltage = voltage_limit_v
            self.inst.source_current = current_a
            self.inst.enable_source()
            _error_check(self.inst, self.name)

    def source_voltage(self, voltage_v: float, current_limit_a: float) -> None:
        with guarded(self.name):
            self.inst.write(':SENS:FUNC "CURR"')
            self.sensing = "CURR"
            self.inst.source_mode = "voltage"
            self.inst.compliance_current = current_limit_a
            self.inst.source_voltage = voltage_v
            self.inst.enable_source()
            _error_check(self.inst, self.name)

    def set_current(self, current_a: float) -> None:
        with guarded(self.name):
            self.inst.source_current = current_a

    def read(self) -> Reading:
        with guarded(self.name):
            self._adapter.write(self.READ)
            sensed, sourced, t = self._adapter.read().split(",")[:3]
            if self.sensing == "VOLT":
                return Reading(_number_or_nan(sensed), _number_or_nan(sourced), float(t))
            return Reading(_number_or_nan(sourced), _number_or_nan(sensed), float(t))

    def read_voltage(self) -> float:
        return self.read().voltage_v

    def output_off(self) -> None:
        with guarded(self.name):
            self.inst.disable_source()

    def close(self) -> None:
        with guarded(self.name):
            self.inst.adapter.close()


class SmuCyclerChannel:
    """A cycler channel on any `SmuLink` with software step execution."""

    def __init__(self, link: Any, clock: Any, ranges: CyclerRanges, *, name: str,
                 poll_period_s: float = 0.1, time_source: str = "instrument",
                 calibration_due: str | None = None, driver: str = ""):
        self.link = link
        self.clock = clock
        self.ranges = ranges
        self.name = name
        self.poll_period_s = poll_period_s
        self.time_source = time_source
        self.calibration_due = calibration_due
        self.driver = driver
        self._identity: dict[str, str] | None = None

    def identify(self) -> dict[str, str]:
        if self._identity is None:
            self._identity = dict(self.link.identify())
            if self.calibration_due:
                self._identity["calibration_due"] = self.calibration_due
        return dict(self._identity)

    def run_step(self, step: ElectricalStep, limits: SafetyLimits, logging: LoggingPolicy
                 ) -> Generator[SampleBatch, None, StepEnd]:
        return run_software_step(self.link, self.clock, step, limits, logging, ranges=self.ranges,
                                 name=self.name, poll_period_s=self.poll_period_s,
                                 time_source=self.time_source)

    def read(self) -> Reading:
        """One reading now (qualification suites and benchmarks)."""
        return self.link.read()

    def safe_state(self) -> None:
        self.link.output_off()

    def close(self) -> None:
        try:
            self.safe_state()
        finally:
            close = getattr(self.link, "close", None)
            if close is not None:
                close()


def smu_ranges(binding: InstrumentSpec, hardware: CyclerRanges) -> CyclerRanges:
    """The binding's ranges, checked against what the instrument can do at most."""
    r = binding.ranges
    ranges = CyclerRanges(
        max_current_a=r.get("max_current_a", hardware.max_current_a),
        max_voltage_v=r.get("max_voltage_v", hardware.max_voltage_v),
        min_voltage_v=r.get("min_voltage_v", hardware.min_voltage_v),
        max_power_w=r.get("max_power_w"),
    )
    if ranges.max_current_a > hardware.max_current_a or ranges.max_voltage_v > hardware.max_voltage_v:
        raise LabctlError(
            f"{binding.role}: ranges exceed what a {binding.driver} can do; allowed: "
            f"max_current_a <= {hardware.max_current_a:g}, max_voltage_v <= {hardware.max_voltage_v:g}")
    return ranges


def loop_settings(binding: InstrumentSpec) -> tuple[float, str]:
    poll = number(binding, "poll_period_s", 0.1, 1e-4)
    source = binding.settings.get("time_source", "instrument")
    if source not in ("instrument", "clock"):
        raise LabctlError(f"{binding.role}: time_source must be 'instrument' or 'clock', "
                          f"got {source!r}")
    return float(poll), source


def _make(binding: InstrumentSpec, context: Any, family: str) -> SmuCyclerChannel:
    from pymeasure.instruments.keithley import Keithley2400, Keithley2450

    check_settings(binding, SMU_SETTINGS)
    ranges = smu_ranges(binding, HARDWARE[family])
    poll, source = loop_settings(binding)
    nplc = number(binding, "nplc", None, 0.01)
    cls, link_cls = ((Keithley2400, Keithley2400Link) if family == "keithley-2400"
                     else (Keithley2450, Keithley2450Link))
    inst = open_pymeasure(cls, binding, context.station.source)
    name = str(binding.settings.get(
        "name", f"{binding.role} ({family} at {binding.settings.get('address')})"))
    try:
        link = link_cls(inst, name=name, nplc=nplc)
    except Exception:
        inst.adapter.close()
        raise
    channel = SmuCyclerChannel(link, context.clock, ranges, name=name, poll_period_s=poll,
                               time_source=source, calibration_due=binding.calibration_due,
                               driver=family)
    channel.safe_state()  # whatever the instrument was doing before, start from output off
    return channel


def make_keithley_2400(binding: InstrumentSpec, context: Any) -> SmuCyclerChannel:
    return _make(binding, context, "keithley-2400")


def make_keithley_2450(binding: InstrumentSpec, context: Any) -> SmuCyclerChannel:
    return _make(binding, context, "keithley-2450")
