"""Check one leaf step against the cell's limits, the station's ranges and the safety limits.

Run for every step of a YAML procedure before anything starts, and by the
engine right before each step (the only check a Python procedure gets before
its steps run). Messages say which limit, where it comes from (cell or station
file) and what is allowed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from labctl.capabilities.limits import SafetyLimits
from labctl.capabilities.steps import (
    ChamberStep,
    ElectricalStep,
    LeafStep,
    Mode,
    Quantity,
    is_plugin_step,
)
from labctl.cells.spec import CellSpec
from labctl.errors import Problem
from labctl.stations.spec import StationSpec

# Tiny slack so that a value equal to a limit after float arithmetic (1C of 2.2 Ah) passes.
_REL = 1e-9

Locate = Callable[[int], int | None]  # 0-based offset in step.text -> 1-based file column


def _g(x: float) -> str:
    return f"{x:.6g}"


def cell_label(cell: CellSpec) -> str:
    return f"cell {cell.name!r}" + (f" ({cell.source})" if cell.source else "")


def station_label(station: StationSpec) -> str:
    return f"station {station.name!r}" + (f" ({station.source})" if station.source else "")


def _above(x: float, limit: float) -> bool:
    return x > limit + abs(limit) * _REL + 1e-12


def _below(x: float, limit: float) -> bool:
    return x < limit - abs(limit) * _REL - 1e-12


class StepChecker:
    """Collects the problems of one step; plugin steps get it in `check(checker)`.

    Useful to them: `cell`, `station` (a StationSpec or None), `safety`,
    `ranges(role)` (the station file's ranges for a role, None without a station),
    `need_role(role)` and `add(message)`.
    """

    def __init__(
        self,
        step: LeafStep,
        cell: CellSpec,
        station: StationSpec | None,
        safety: SafetyLimits | None,
        locate: Locate | None,
    ):
        self.step = step
        self.cell = cell
        self.station = station
        self.safety = safety
        self.problems: list[Problem] = []
        src = step.source
        self.locate = locate or (lambda off: (src.column + off) if src.column is not None else None)
        self.lower = step.text.lower()

    def add(self, offset: int | None, message: str | None = None) -> None:
        if message is None:  # add(message): plugin steps have no text offsets
            offset, message = None, offset  # type: ignore[assignment]
        src = self.step.source
        column = self.locate(offset) if offset is not None else src.column
        self.problems.append(Problem(src.file, src.line, column, src.field, message))

    def allowed(self, limit: str) -> bool:
        """The procedure's abuse permission lets steps cross the cell's `limit` (up to its safety value)."""
        return self.safety is not None and limit in self.safety.abuse_allow

    # where things are inside the step text (best effort; None = the step's start)
    def setpoint_offset(self) -> int | None:
        m = re.search(r"\bat\s+", self.lower)
        return m.end() if m else None

    def fragment_offset(self, fragment: str) -> int | None:
        if not fragment:
            return None
        start = self.setpoint_offset() or 0
        i = self.lower.find(fragment.lower(), start)
        return i if i >= 0 else None

    def ranges(self, role: str) -> dict[str, float] | None:
        if self.station is None:
            return None
        inst = self.station.instruments.get(role)
        return inst.ranges if inst is not None else {}

    def need_role(self, role: str) -> bool:
        if self.station is None or self.station.has_role(role):
            return True
        bound = ", ".join(sorted(self.station.instruments)) or "nothing"
        self.add(
            None,
            f"this step needs a {role}, and {station_label(self.station)} binds none "
            f"(it binds: {bound}); add a '{role}:' instrument to the station file",
        )
        return False

    # -- electrical ------------------------------------------------------------------------------
    def electrical(self, step: ElectricalStep) -> None:
        self.need_role("cycler")
        if step.duration_s is not None and not (
            math.isfinite(step.duration_s) and step.duration_s > 0
        ):
            self.add(
                self.fragment_offset("for"),
                f"duration must be a positive finite time, got {step.duration_s}",
            )
        if not math.isfinite(step.value):
            self.add(self.setpoint_offset(), "set-point must be a finite number")
            return
        if step.mode is Mode.CURRENT:
            self.current(step.value, "current", self.setpoint_offset())
        elif step.mode is Mode.POWER:
            self.power(step.value, self.setpoint_offset())
        elif step.mode is Mode.VOLTAGE:
            self.voltage(step.value, "hold voltage", self.setpoint_offset())
        elif step.mode in (Mode.CURRENT_PROFILE, Mode.POWER_PROFILE) and step.profile is not None:
            values = [v for v in step.profile.value if math.isfinite(v)]
            for v in (max(values, default=0.0), min(values, default=0.0)):
                if v == 0:
                    continue
                if step.mode is Mode.CURRENT_PROFILE:
                    self.current(v, "profile current", None)
                else:
                    self.power(v, None)
        if step.current_limit_a is not None and step.mode in (Mode.VOLTAGE, Mode.POWER):
            self.current_limit(step)
        for cond in step.until:
            self.condition(step, cond)

    def current(self, current_a: float, what: str, offset: int | None, note: str = "") -> None:
        lim, cell = self.cell.limits, cell_label(self.cell)
        mag = abs(current_a)
        before = len(self.problems)
        if current_a > 0 and _above(mag, lim.max_charge_current_a) and not self.allowed(
            "max_charge_current_a"
        ):
            self.add(
                offset,
                f"charge {what} {_g(mag)} A{note} is above the max charge current "
                f"{_g(lim.max_charge_current_a)} A of {cell}; allowed: up to "
                f"{_g(lim.max_charge_current_a)} A "
                f"({_g(lim.max_charge_current_a / self.cell.capacity_ah)}C)",
            )
        if (
            current_a < 0
            and _above(mag, lim.max_discharge_current_a)
            and not self.allowed("max_discharge_current_a")
        ):
            self.add(
                offset,
                f"discharge {what} {_g(mag)} A{note} is above the max discharge current "
                f"{_g(lim.max_discharge_current_a)} A of {cell}; allowed: up to "
                f"{_g(lim.max_discharge_current_a)} A "
                f"({_g(lim.max_discharge_current_a / self.cell.capacity_ah)}C)",
            )
        cell_failed = len(self.problems) > before
        self.instrument_current(mag, what, offset, note, discharge=current_a < 0)
        if self.safety is not None and not cell_failed:
            limit = (
                self.safety.max_charge_current_a
                if current_a > 0
                else self.safety.max_discharge_current_a
            )
            name = "max_charge_current_a" if current_a > 0 else "max_discharge_current_a"
            if _above(mag, limit):
                self.add(
                    offset,
                    f"{what} {_g(mag)} A{note} is above the procedure's safety limit "
                    f"{name} = {_g(limit)} A; allowed: up to {_g(limit)} A",
                )

    def instrument_current(self, mag: float, what: str, offset: int | None, note: str = "",
                           discharge: bool = False) -> None:
        ranges = self.ranges("cycler")
        # One-sided instruments (a battery tester that sinks less than it sources) declare
        # max_discharge_current_a besides max_current_a.
        if (discharge and ranges and "max_discharge_current_a" in ranges
                and _above(mag, ranges["max_discharge_current_a"])):
            assert self.station is not None
            top = ranges["max_discharge_current_a"]
            self.add(
                offset,
                f"discharge {what} {_g(mag)} A{note} is above the cycler's range: "
                f"max_discharge_current_a {_g(top)} A in {station_label(self.station)}; "
                f"allowed: up to {_g(top)} A",
            )
            return
        if ranges and "max_current_a" in ranges and _above(mag, ranges["max_current_a"]):
            assert self.station is not None
            self.add(
                offset,
                f"{what} {_g(mag)} A{note} is above the cycler's range: max_current_a "
                f"{_g(ranges['max_current_a'])} A in {station_label(self.station)}; "
                f"allowed: up to {_g(ranges['max_current_a'])} A",
            )

    def power(self, power_w: float, offset: int | None) -> None:
        v_min = self.cell.limits.min_voltage_v
        if v_min <= 0:
            self.add(
                offset,
                f"cannot bound the current of a power step: {cell_label(self.cell)} "
                "has a min voltage <= 0 V",
            )
            return
        worst = power_w / v_min
        note = f" (= {_g(abs(power_w))} W / the cell's min voltage {_g(v_min)} V)"
        self.current(worst, "worst-case current", offset, note)
        ranges = self.ranges("cycler")
        if (
            ranges
            and ranges.get("max_power_w") is not None
            and _above(abs(power_w), ranges["max_power_w"])
        ):
            assert self.station is not None
            self.add(
                offset,
                f"power {_g(abs(power_w))} W is above the cycler's max_power_w "
                f"{_g(ranges['max_power_w'])} W in {station_label(self.station)}",
            )

    def current_limit(self, step: ElectricalStep) -> None:
        limit = step.current_limit_a
        assert limit is not None
        lim = self.cell.limits
        if not (math.isfinite(limit) and limit > 0):
            self.add(None, f"current limit must be a positive number, got {limit}")
            return
        allowed = min(lim.max_charge_current_a, lim.max_discharge_current_a)
        if step.mode is Mode.POWER:
            allowed = lim.max_charge_current_a if step.value > 0 else lim.max_discharge_current_a
        if _above(limit, allowed):
            self.add(
                None,
                f"current limit {_g(limit)} A is above what {cell_label(self.cell)} allows "
                f"({_g(allowed)} A)",
            )
        self.instrument_current(limit, "current limit", None)

    def voltage(self, voltage_v: float, what: str, offset: int | None) -> None:
        lim, cell = self.cell.limits, cell_label(self.cell)
        allowed = f"allowed: {_g(lim.min_voltage_v)} V to {_g(lim.max_voltage_v)} V"
        before = len(self.problems)
        if _above(voltage_v, lim.max_voltage_v) and not self.allowed("max_voltage_v"):
            self.add(
                offset,
                f"{what} {_g(voltage_v)} V is above the max voltage "
                f"{_g(lim.max_voltage_v)} V of {cell}; {allowed}",
            )
        elif _below(voltage_v, lim.min_voltage_v) and not self.allowed("min_voltage_v"):
            self.add(
                offset,
                f"{what} {_g(voltage_v)} V is below the min voltage "
                f"{_g(lim.min_voltage_v)} V of {cell}; {allowed}",
            )
        cell_failed = len(self.problems) > before
        ranges = self.ranges("cycler")
        if ranges and self.station is not None:
            hi, lo = ranges.get("max_voltage_v"), ranges.get("min_voltage_v")
            if hi is not None and _above(voltage_v, hi):
                self.add(
                    offset,
                    f"{what} {_g(voltage_v)} V is above the cycler's max_voltage_v "
                    f"{_g(hi)} V in {station_label(self.station)}",
                )
            if lo is not None and _below(voltage_v, lo):
                self.add(
                    offset,
                    f"{what} {_g(voltage_v)} V is below the cycler's min_voltage_v "
                    f"{_g(lo)} V in {station_label(self.station)}",
                )
        s = self.safety
        if s is not None and not cell_failed:
            if _above(voltage_v, s.max_voltage_v):
                self.add(
                    offset,
                    f"{what} {_g(voltage_v)} V is above the procedure's safety limit "
                    f"max_voltage_v = {_g(s.max_voltage_v)} V",
                )
            if _below(voltage_v, s.min_voltage_v):
                self.add(
                    offset,
                    f"{what} {_g(voltage_v)} V is below the procedure's safety limit "
                    f"min_voltage_v = {_g(s.min_voltage_v)} V",
                )

    def temperature(self, temperature_c: float, what: str, offset: int | None) -> None:
        lim, cell = self.cell.limits, cell_label(self.cell)
        allowed = f"allowed: {_g(lim.min_temperature_c)} °C to {_g(lim.max_temperature_c)} °C"
        before = len(self.problems)
        if _above(temperature_c, lim.max_temperature_c) and not self.allowed("max_temperature_c"):
            self.add(
                offset,
                f"{what} {_g(temperature_c)} °C is above the max temperature "
                f"{_g(lim.max_temperature_c)} °C of {cell}; {allowed}",
            )
        elif _below(temperature_c, lim.min_temperature_c) and not self.allowed(
            "min_temperature_c"
        ):
            self.add(
                offset,
                f"{what} {_g(temperature_c)} °C is below the min temperature "
                f"{_g(lim.min_temperature_c)} °C of {cell}; {allowed}",
            )
        s = self.safety
        if s is not None and len(self.problems) == before:
            if _above(temperature_c, s.max_temperature_c):
                self.add(
                    offset,
                    f"{what} {_g(temperature_c)} °C is above the procedure's safety "
                    f"limit max_temperature_c = {_g(s.max_temperature_c)} °C",
                )
            if _below(temperature_c, s.min_temperature_c):
                self.add(
                    offset,
                    f"{what} {_g(temperature_c)} °C is below the procedure's safety "
                    f"limit min_temperature_c = {_g(s.min_temperature_c)} °C",
                )

    def condition(self, step: ElectricalStep, cond) -> None:
        offset = self.fragment_offset(cond.text)
        if not math.isfinite(cond.value):
            self.add(offset, f"condition {cond.describe()!r} must be a finite number")
            return
        if cond.quantity is Quantity.VOLTAGE:
            verb = {">=": "charging to", "<=": "discharging to"}.get(cond.op, "ending at")
            if step.mode is Mode.REST:
                verb = "waiting for"
            self.voltage(cond.value, verb, offset)
        elif cond.quantity is Quantity.TEMPERATURE:
            self.temperature(cond.value, "end temperature", offset)
        elif cond.value <= 0:
            self.add(offset, f"condition {cond.describe()!r} must be greater than zero")

    # -- chamber ---------------------------------------------------------------------------------
    def chamber(self, step: ChamberStep) -> None:
        if not math.isfinite(step.setpoint_c):
            self.add(None, "set-point must be a finite temperature")
            return
        self.temperature(step.setpoint_c, "chamber set-point", None)
        if self.need_role("chamber"):
            ranges = self.ranges("chamber")
            if ranges and self.station is not None:
                where = station_label(self.station)
                hi, lo = ranges.get("max_temperature_c"), ranges.get("min_temperature_c")
                span = (
                    f"allowed: {_g(lo) if lo is not None else '-inf'} °C to "
                    f"{_g(hi) if hi is not None else 'inf'} °C"
                )
                if hi is not None and _above(step.setpoint_c, hi):
                    self.add(
                        None,
                        f"chamber set-point {_g(step.setpoint_c)} °C is above the "
                        f"chamber's max_temperature_c {_g(hi)} °C in {where}; {span}",
                    )
                if lo is not None and _below(step.setpoint_c, lo):
                    self.add(
                        None,
                        f"chamber set-point {_g(step.setpoint_c)} °C is below the "
                        f"chamber's min_temperature_c {_g(lo)} °C in {where}; {span}",
                    )
                ramp_max = ranges.get("max_ramp_c_per_min")
                if (
                    step.ramp_c_per_min is not None
                    and ramp_max is not None
                    and _above(step.ramp_c_per_min, ramp_max)
                ):
                    self.add(
                        None,
                        f"ramp {_g(step.ramp_c_per_min)} °C/min is faster than the "
                        f"chamber's max_ramp_c_per_min {_g(ramp_max)} in {where}",
                    )
        if step.ramp_c_per_min is not None and not (
            math.isfinite(step.ramp_c_per_min) and step.ramp_c_per_min > 0
        ):
            self.add(None, "ramp_c_per_min must be a positive number")
        if not (math.isfinite(step.tolerance_c) and step.tolerance_c > 0):
            self.add(None, "tolerance_c must be a positive number")
        if not (math.isfinite(step.stable_for_s) and step.stable_for_s >= 0):
            self.add(None, "stable_for must be zero or a positive time")
        if not (math.isfinite(step.timeout_s) and step.timeout_s > 0):
            self.add(None, "timeout must be a positive time")
        if step.stabilise_on not in ("cell", "chamber"):
            self.add(None, f"'on' must be cell or chamber, got {step.stabilise_on!r}")


def check_leaf(
    step: LeafStep,
    *,
    cell: CellSpec,
    station: StationSpec | None,
    safety: SafetyLimits | None = None,
    locate: Locate | None = None,
) -> list[Problem]:
    """`check_step` with a custom offset -> column map (the compiler's substitution map)."""
    checker = StepChecker(step, cell, station, safety, locate)
    if isinstance(step, ElectricalStep):
        checker.electrical(step)
    elif isinstance(step, ChamberStep):
        checker.chamber(step)
    elif is_plugin_step(step):
        if all(checker.need_role(role) for role in getattr(step, "roles", ())):
            step.check(checker)
    return checker.problems


def check_step(
    step: LeafStep,
    *,
    cell: CellSpec,
    station: StationSpec | None,
    safety: SafetyLimits | None = None,
) -> list[Problem]:
    """Every way `step` would leave the cell's limits, the station's ranges or `safety`."""
    return check_leaf(step, cell=cell, station=station, safety=safety)
