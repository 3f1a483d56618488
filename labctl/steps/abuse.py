"""Thermal-abuse step types: `dsc_ramp`, `arc_hws` and `overcharge` (need an abuse chamber).

Every step writes what the abuse chamber measured to the record table
``thermal`` (one row a sample: test_time_s, cell_temperature_c,
chamber_temperature_c, heat_flow_w, heater_on, mode, phase, soc, test,
heat_capacity_j_per_k) and is read back with ``open_run(path).records("thermal")``.

A hard interlock of the chamber (over-temperature, door open, emergency stop,
lost communication) stops the step at the sample where it tripped: the
chamber has already switched its heaters off, and `run.stop_reason()` hands the
fault to the engine, which makes every output safe and marks the run faulted.
A cell temperature above the procedure's safety limit ends the step `safety`.

Going past the cell's limits (a DSC ramp to 450 °C, an overcharge to 5 V)
needs the procedure's abuse permission (`abuse:` in the procedure file, see
docs/abuse.md); the steps' checks use the normal limit checks, which let an
allowed limit go up to the procedure's own `safety:` value only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labctl.capabilities.cycler import EndKind, StepEnd
from labctl.capabilities.limits import violation_text
from labctl.capabilities.steps import (
    ElectricalStep,
    EndCondition,
    LoggingPolicy,
    Mode,
    Quantity,
    SourceRef,
)
from labctl.errors import LabctlError
from labctl.units import CURRENT, TEMPERATURE, TEMPERATURE_RATE, TIME, VOLTAGE

TABLE = "thermal"
ARC_THRESHOLD_C_PER_MIN = 0.02
CHUNK_SAMPLES = 200  # samples per read: the run's abort/pause requests are seen this often


def _calorimeter(run: Any) -> Any:
    cal = run.instrument("chamber")
    if not callable(getattr(cal, "advance", None)) or not callable(getattr(cal, "set_adiabatic", None)):
        raise LabctlError(f"step {run.step.text!r} needs an abuse chamber that measures the cell "
                          f"(e.g. driver sim-calorimeter); the station's chamber is "
                          f"{type(cal).__name__}")
    return cal


def _check_chamber(checker: Any, top_c: float, rate_c_per_min: float | None) -> None:
    """The chamber's ranges from the station file."""
    ranges = checker.ranges("chamber")
    if not ranges:
        return
    hi = ranges.get("max_temperature_c")
    if hi is not None and top_c > hi:
        checker.add(f"{top_c:g} °C is above the chamber's max_temperature_c {hi:g} °C in the "
                    f"station file; allowed: up to {hi:g} °C")
    ramp = ranges.get("max_ramp_c_per_min")
    if rate_c_per_min is not None and ramp is not None and rate_c_per_min > ramp:
        checker.add(f"heating rate {rate_c_per_min:g} °C/min is faster than the chamber's "
                    f"max_ramp_c_per_min {ramp:g}; allowed: up to {ramp:g} °C/min")


class _Recorder:
    """Reads the abuse chamber in chunks, journals the samples, watches safety and interlocks."""

    def __init__(self, run: Any, cal: Any, test: str, period_s: float, delta_c: float | None):
        self.run, self.cal, self.test = run, cal, test
        self.period_s = period_s
        cal.set_logging(period_s, delta_c)
        self.origin = run.clock.now() - run.test_time()
        self.heat_capacity = float(getattr(cal, "sample_heat_capacity_j_per_k", float("nan")))
        self.safety_max = run.safety.max_temperature_c if run.safety is not None else math.inf

    def measure(self, until_s: float, phase: str, stop_above_c: float | None = None,
                stop_rate: float | None = None) -> tuple[Any, StepEnd | None]:
        """Read until clock time `until_s` or a stop; a StepEnd when the step must end now."""
        stop_t = self.safety_max if stop_above_c is None else min(stop_above_c, self.safety_max)
        all_t, all_c = [], []
        while True:
            now = self.run.clock.now()
            chunk_end = min(until_s, now + CHUNK_SAMPLES * self.period_s)
            s = self.cal.advance(chunk_end, stop_above_c=stop_t if math.isfinite(stop_t) else None,
                                 stop_rate_above_c_per_min=stop_rate)
            self.record(s, phase)
            all_t.append(s.time_s)
            all_c.append(s.cell_temperature_c)
            reason = self.run.stop_reason()  # raises when an interlock tripped
            if s.stop == "fault":  # the interlock did not answer through stop_reason: still a fault
                raise LabctlError(f"interlock: chamber: {s.stop_reason}")
            if reason is not None:
                self.cal.heaters_off()
                return s, StepEnd(EndKind.ABORTED, reason)
            if len(s) and s.cell_temperature_c[-1] >= self.safety_max - 1e-9:
                self.cal.heaters_off()
                msg = violation_text("cell temperature", float(s.cell_temperature_c[-1]), "°C",
                                     ">", self.safety_max)
                self.run.log("warning", msg + "; heaters off")
                return s, StepEnd(EndKind.SAFETY, msg)
            if s.stop != "time" or self.run.clock.now() >= until_s - 1e-9:
                s.time_s = np.concatenate(all_t)
                s.cell_temperature_c = np.concatenate(all_c)
                return s, None

    def record(self, s: Any, phase: str) -> None:
        n = len(s)
        if n == 0:
            return
        self.run.record(TABLE, {
            "test_time_s": np.asarray(s.time_s) - self.origin,
            "cell_temperature_c": s.cell_temperature_c,
            "chamber_temperature_c": s.chamber_temperature_c,
            "heat_flow_w": s.heat_flow_w,
            "heater_on": s.heater_on,
            "mode": s.mode,
            "soc": s.soc,
            "phase": [phase] * n,
            "test": [self.test] * n,
            "heat_capacity_j_per_k": [self.heat_capacity] * n,
        })


def _equilibrate(rec: _Recorder, target_c: float, ramp: float | None, tol_c: float = 0.5,
                 timeout_s: float = 6 * 3600.0) -> StepEnd | None:
    """Bring the cell to `target_c` with the chamber heaters (a normal set-point)."""
    cal, clock = rec.cal, rec.run.clock
    cal.set_temperature(target_c, ramp)
    deadline = clock.now() + timeout_s
    while clock.now() < deadline:
        s, end = rec.measure(min(deadline, clock.now() + 20 * rec.period_s), "equilibrate")
        if end is not None:
            return end
        if len(s) and abs(s.cell_temperature_c[-1] - target_c) <= tol_c:
            return None
    return StepEnd(EndKind.FAULT, f"the cell did not reach {target_c:g} °C within "
                                  f"{timeout_s / 3600:g} h")


# -- dsc_ramp -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class DscRamp:
    """Constant heating rate from `start_c` (or where the cell is) to `end_c`."""

    end_c: float
    rate_c_per_min: float = 10.0
    start_c: float | None = None
    period_s: float = 2.0
    delta_c: float | None = 0.5
    text: str = ""
    source: SourceRef = field(default_factory=SourceRef)
    kind: str = "dsc"
    roles: tuple = ("chamber",)

    def check(self, checker: Any) -> None:
        checker.temperature(self.end_c, "DSC end temperature", None)
        if self.start_c is not None:
            checker.temperature(self.start_c, "DSC start temperature", None)
            if self.start_c >= self.end_c:
                checker.add(f"from {self.start_c:g} °C must be below to {self.end_c:g} °C")
        _check_chamber(checker, self.end_c, self.rate_c_per_min)

    def execute(self, run: Any) -> StepEnd:
        cal = _calorimeter(run)
        rec = _Recorder(run, cal, "dsc", self.period_s, self.delta_c)
        if self.start_c is not None:
            end = _equilibrate(rec, self.start_c, None)
            if end is not None:
                return end
        start = cal.cell_temperature_c()
        if start >= self.end_c:
            return StepEnd(EndKind.CONDITION, f"the cell is already at {start:.1f} °C")
        run.log("info", f"DSC ramp {start:.1f} -> {self.end_c:g} °C at {self.rate_c_per_min:g} °C/min")
        cal.set_dsc_ramp(self.end_c, self.rate_c_per_min)
        until = run.clock.now() + (self.end_c - start) / self.rate_c_per_min * 60.0
        _, end = rec.measure(until, "ramp")
        if end is not None:
            return end
        cal.heaters_off()
        return StepEnd(EndKind.CONDITION, f"DSC ramp reached {self.end_c:g} °C; heaters off")


def compile_dsc(spec: Any) -> DscRamp | None:
    if not spec.mapping(("from", "to", "rate", "log", "delta"), required=("to",)):
        return None
    end = spec.quantity("to", TEMPERATURE)
    start = spec.quantity("from", TEMPERATURE)
    rate = spec.quantity("rate", TEMPERATURE_RATE, default=10.0, positive=True)
    delta = spec.quantity("delta", TEMPERATURE, default=0.5, positive=True)
    period = spec.logging().period_s
    if not spec.ok or end is None or rate is None:
        return None
    text = (f"DSC ramp {'from ' + format(start, 'g') + ' °C ' if start is not None else ''}"
            f"to {end:g} °C at {rate:g} °C/min")
    return DscRamp(end, rate, start, period, delta, text=text, source=spec.source())


# -- arc_hws ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ArcHws:
    """Heat-wait-seek: heat in steps, wait, seek self-heating; follow an exotherm adiabatically."""

    end_c: float
    start_c: float = 50.0
    step_c: float = 5.0
    wait_s: float = 15 * 60.0
    seek_s: float = 10 * 60.0
    threshold_c_per_min: float = ARC_THRESHOLD_C_PER_MIN
    heat_rate_c_per_min: float = 2.0
    rate_limit_c_per_min: float = 500.0
    max_time_s: float = 7 * 86400.0
    period_s: float = 10.0
    delta_c: float | None = 1.0
    text: str = ""
    source: SourceRef = field(default_factory=SourceRef)
    kind: str = "arc"
    roles: tuple = ("chamber",)

    def check(self, checker: Any) -> None:
        checker.temperature(self.end_c, "ARC end temperature", None)
        checker.temperature(self.start_c, "ARC start temperature", None)
        if self.start_c >= self.end_c:
            checker.add(f"start {self.start_c:g} °C must be below end {self.end_c:g} °C")
        _check_chamber(checker, self.end_c, self.heat_rate_c_per_min)

    def execute(self, run: Any) -> StepEnd:
        cal = _calorimeter(run)
        clock = run.clock
        rec = _Recorder(run, cal, "arc", self.period_s, self.delta_c)
        deadline = clock.now() + self.max_time_s
        target = self.start_c
        while clock.now() < deadline:
            if target > self.end_c + 1e-9:
                cal.heaters_off()
                return StepEnd(EndKind.CONDITION, f"no self-heating up to {self.end_c:g} °C")
            if cal.cell_temperature_c() < target - 0.2:  # heat
                cal.set_temperature(min(target, self.end_c), self.heat_rate_c_per_min)
                _, end = rec.measure(clock.now() + 6 * 3600.0, "heat", stop_above_c=target - 0.2)
                if end is not None:
                    return end
            cal.set_adiabatic()  # wait, then seek, with no heat exchange
            _, end = rec.measure(clock.now() + self.wait_s, "wait")
            if end is not None:
                return end
            s, end = rec.measure(clock.now() + self.seek_s, "seek")
            if end is not None:
                return end
            rate = _rate_c_per_min(s.time_s, s.cell_temperature_c)
            if rate < self.threshold_c_per_min:
                target += self.step_c
                continue
            t_now = cal.cell_temperature_c()
            run.log("info", f"exotherm: self-heating {rate:.3g} °C/min at {t_now:.1f} °C; "
                            "following adiabatically")
            end = self._track(run, rec, deadline)
            if end is not None:
                return end
            target = cal.cell_temperature_c() + self.step_c
        cal.heaters_off()
        return StepEnd(EndKind.LIMIT, f"ARC time limit {self.max_time_s / 3600:g} h reached")

    def _track(self, run: Any, rec: _Recorder, deadline: float) -> StepEnd | None:
        """Adiabatic until the end temperature, the rate limit or the exotherm dies out (None)."""
        clock, cal = run.clock, rec.cal
        window = self.seek_s
        times: list[np.ndarray] = []
        temps: list[np.ndarray] = []
        started = clock.now()
        while clock.now() < deadline:
            s, end = rec.measure(min(deadline, clock.now() + window), "track",
                                 stop_above_c=self.end_c, stop_rate=self.rate_limit_c_per_min)
            if end is not None:
                return end
            if s.stop == "temperature":
                cal.heaters_off()
                return StepEnd(EndKind.CONDITION, f"end temperature {self.end_c:g} °C reached")
            if s.stop == "rate":
                cal.heaters_off()
                return StepEnd(EndKind.CONDITION, f"self-heating rate above "
                                                  f"{self.rate_limit_c_per_min:g} °C/min")
            times.append(s.time_s)
            temps.append(s.cell_temperature_c)
            t = np.concatenate(times)
            c = np.concatenate(temps)
            recent = t >= t[-1] - window
            if clock.now() - started >= window and _rate_c_per_min(t[recent], c[recent]) < \
                    self.threshold_c_per_min:
                run.log("info", f"exotherm over at {c[-1]:.1f} °C; heat-wait-seek again")
                return None
        return StepEnd(EndKind.LIMIT, f"ARC time limit {self.max_time_s / 3600:g} h reached")


def _rate_c_per_min(t: np.ndarray, c: np.ndarray) -> float:
    if len(t) < 2 or t[-1] <= t[0]:
        return 0.0
    return float((c[-1] - c[0]) / (t[-1] - t[0]) * 60.0)


def compile_arc(spec: Any) -> ArcHws | None:
    keys = ("start", "end", "step", "wait", "seek", "threshold", "heat_rate", "rate_limit",
            "max_time", "log", "delta")
    if not spec.mapping(keys, required=("end",)):
        return None
    d = ArcHws.__dataclass_fields__
    end = spec.quantity("end", TEMPERATURE)
    start = spec.quantity("start", TEMPERATURE, default=d["start_c"].default)
    step = spec.quantity("step", TEMPERATURE, default=d["step_c"].default, positive=True)
    wait = spec.quantity("wait", TIME, default=d["wait_s"].default, positive=True)
    seek = spec.quantity("seek", TIME, default=d["seek_s"].default, positive=True)
    threshold = spec.quantity("threshold", TEMPERATURE_RATE,
                              default=d["threshold_c_per_min"].default, positive=True)
    heat = spec.quantity("heat_rate", TEMPERATURE_RATE, default=d["heat_rate_c_per_min"].default,
                         positive=True)
    limit = spec.quantity("rate_limit", TEMPERATURE_RATE,
                          default=d["rate_limit_c_per_min"].default, positive=True)
    max_time = spec.quantity("max_time", TIME, default=d["max_time_s"].default, positive=True)
    delta = spec.quantity("delta", TEMPERATURE, default=d["delta_c"].default, positive=True)
    raw_log = spec.raw("log")
    period = spec.logging().period_s if raw_log is not None else d["period_s"].default
    values = (end, start, step, wait, seek, threshold, heat, limit, max_time)
    if not spec.ok or any(v is None for v in values):
        return None
    text = (f"ARC heat-wait-seek {start:g} -> {end:g} °C in {step:g} °C steps, "
            f"seek > {threshold:g} °C/min")
    return ArcHws(end, start, step, wait, seek, threshold, heat, limit, max_time, period, delta,
                  text=text, source=spec.source())


# -- overcharge ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Overcharge:
    """Charge at constant current past the cell's limit, in the abuse chamber, one sample at a time."""

    current_a: float
    until_v: float
    duration_s: float
    stop_temperature_c: float | None = None
    chamber: str = "adiabatic"  # adiabatic | hold | off
    follow_s: float = 0.0
    follow_end_c: float | None = None
    period_s: float = 5.0
    text: str = ""
    source: SourceRef = field(default_factory=SourceRef)
    kind: str = "overcharge"
    roles: tuple = ("cycler", "chamber")

    def check(self, checker: Any) -> None:
        if not self.current_a > 0:
            checker.add(f"overcharge current must be a charge current > 0, got {self.current_a:g} A")
        else:
            checker.current(self.current_a, "overcharge current", None)
        checker.voltage(self.until_v, "overcharge cut-off", None)
        for value, what in ((self.stop_temperature_c, "stop temperature"),
                            (self.follow_end_c, "follow end temperature")):
            if value is not None:
                checker.temperature(value, what, None)

    def execute(self, run: Any) -> StepEnd:
        cal = _calorimeter(run)
        clock = run.clock
        rec = _Recorder(run, cal, "overcharge", self.period_s, 1.0)
        if self.chamber == "adiabatic":
            cal.set_adiabatic()
        elif self.chamber == "off":
            cal.heaters_off()
        else:
            cal.set_temperature(cal.temperature_c())
        stop_c = self.stop_temperature_c if self.stop_temperature_c is not None else math.inf
        until = (EndCondition(Quantity.VOLTAGE, ">=", self.until_v, f"{self.until_v:g} V"),)
        t_end = clock.now() + self.duration_s
        voltage = run.last_sample().get("voltage_v") or run.cell.nominal_voltage_v
        result = StepEnd(EndKind.TIME, f"overcharged for {self.duration_s:g} s")
        while clock.now() < t_end - 1e-9:
            cal.set_electrical_input(self.current_a, voltage)
            chunk = ElectricalStep(Mode.CURRENT, self.current_a,
                                   duration_s=min(self.period_s, t_end - clock.now()), until=until,
                                   logging=LoggingPolicy(self.period_s), text=self.text,
                                   source=self.source)
            sub = run.run_electrical(chunk)
            if sub.kind is not EndKind.TIME:
                cal.set_electrical_input(0.0, 0.0)
            s, end = rec.measure(clock.now(), "overcharge")
            if end is not None:
                cal.set_electrical_input(0.0, 0.0)
                return end
            voltage = run.last_sample().get("voltage_v") or voltage
            if sub.kind is not EndKind.TIME:
                if sub.kind is not EndKind.CONDITION:
                    return sub
                result = sub
                break
            if len(s) and float(np.max(s.cell_temperature_c)) >= stop_c:
                result = StepEnd(EndKind.CONDITION, f"cell reached {stop_c:g} °C; current off")
                break
        cal.set_electrical_input(0.0, 0.0)
        run.log("info", f"overcharge ended: {result.reason}; cell at {cal.cell_temperature_c():.1f} °C")
        if self.follow_s > 0:
            s, end = rec.measure(clock.now() + self.follow_s, "follow",
                                 stop_above_c=self.follow_end_c)
            if end is not None:
                return end
            if s.stop == "temperature":
                result = StepEnd(EndKind.CONDITION, f"{result.reason}; followed to "
                                                    f"{self.follow_end_c:g} °C")
        cal.heaters_off()
        return result


def compile_overcharge(spec: Any) -> Overcharge | None:
    keys = ("current", "until", "duration", "stop_temperature", "chamber", "follow", "follow_end",
            "log")
    if not spec.mapping(keys, required=("current", "until", "duration")):
        return None
    current = spec.quantity("current", CURRENT)
    until = spec.quantity("until", VOLTAGE)
    duration = spec.quantity("duration", TIME, positive=True)
    stop = spec.quantity("stop_temperature", TEMPERATURE)
    chamber = spec.choice("chamber", ("adiabatic", "hold", "off"), default="adiabatic")
    follow = spec.quantity("follow", TIME, default=0.0, minimum=0.0)
    follow_end = spec.quantity("follow_end", TEMPERATURE)
    raw_log = spec.raw("log")
    period = spec.logging().period_s if raw_log is not None else 5.0
    if not spec.ok or None in (current, until, duration, chamber, follow):
        return None
    text = f"Overcharge at {current:g} A until {until:g} V or {duration:g} s"
    return Overcharge(current, until, duration, stop, chamber, follow, follow_end, period, text=text,
                      source=spec.source())
