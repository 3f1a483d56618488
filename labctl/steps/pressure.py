"""The `pressure` step: move the stack pressure to a set-point, wait until it is there, hold it.

    - pressure: {setpoint: 10 MPa, ramp: 0.5 MPa/s, tolerance: 0.2 MPa, hold: 10 min}

Keys: setpoint (required), ramp ('0.5 MPa/s', '2 MPa/min', or a number of MPa/s;
default: the rig's), tolerance (default 0.1 MPa), hold (time to stay at the
set-point once reached, default 0), timeout (how long reaching it may take,
default 30 min), poll (how often the pressure is read and logged, default 5 s),
wait (false: set it and move on at once).

While it waits the cell rests on the cycler (the timeseries goes on). Every
reading becomes a row of the record table `pressure` (test_time_s,
pressure_mpa, setpoint_mpa, phase = ramp | hold). Validation checks the set-point
and ramp against the press's ranges in the station file and the cell's
`max_stack_pressure_mpa` (impedance section of the cell file).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from labctl.capabilities.cycler import EndKind, StepEnd
from labctl.capabilities.pressure import PressureRanges
from labctl.capabilities.steps import SourceRef
from labctl.errors import Problem
from labctl.units import PRESSURE, TIME, UnitError, parse_quantity

KEYS = ("setpoint", "ramp", "tolerance", "hold", "timeout", "poll", "wait")
TABLE = "pressure"
_RATE = re.compile(r"^\s*(?P<amount>.+?)\s*/\s*(?P<per>[A-Za-z]+)\s*$")


@dataclass(frozen=True)
class PressureStep:
    setpoint_mpa: float
    ramp_mpa_per_s: float | None = None
    tolerance_mpa: float = 0.1
    hold_s: float = 0.0
    timeout_s: float = 1800.0
    poll_s: float = 5.0
    wait: bool = True
    text: str = "pressure"
    source: SourceRef = field(default_factory=SourceRef)
    sources: tuple[tuple[str, SourceRef], ...] = ()
    kind: str = "pressure"
    roles: tuple[str, ...] = ("press",)

    def check(self, checker: Any) -> None:
        def add(key: str, message: str) -> None:
            src = dict(self.sources).get(key, self.source)
            checker.problems.append(Problem(src.file, src.line, src.column, src.field, message))

        ranges = checker.ranges("press")
        if ranges is not None:
            r = PressureRanges.from_mapping(ranges)
            where = f"the press's range in station {checker.station.name!r}"
            if not r.min_pressure_mpa <= self.setpoint_mpa <= r.max_pressure_mpa:
                add("setpoint", f"set-point {self.setpoint_mpa:g} MPa is outside {where}: "
                                f"allowed {r.min_pressure_mpa:g} to {r.max_pressure_mpa:g} MPa")
            if (self.ramp_mpa_per_s is not None and r.max_ramp_mpa_per_s is not None
                    and self.ramp_mpa_per_s > r.max_ramp_mpa_per_s * (1 + 1e-9)):
                add("ramp", f"ramp {self.ramp_mpa_per_s:g} MPa/s is faster than {where}: "
                            f"max_ramp_mpa_per_s {r.max_ramp_mpa_per_s:g}")
        imp = checker.cell.extra.get("impedance")
        cell_max = getattr(imp, "max_stack_pressure_mpa", None)
        if cell_max is not None and self.setpoint_mpa > cell_max:
            add("setpoint", f"set-point {self.setpoint_mpa:g} MPa is above the max stack pressure "
                            f"{cell_max:g} MPa of cell {checker.cell.name!r}; allowed: up to "
                            f"{cell_max:g} MPa")

    def execute(self, run: Any) -> StepEnd:
        rig = run.instrument("press")
        rig.set_pressure(self.setpoint_mpa, self.ramp_mpa_per_s)
        run.log("info", f"pressure set-point {self.setpoint_mpa:g} MPa")
        start = run.test_time()
        if not self.wait:
            self._log(run, rig, "ramp")
            return StepEnd(EndKind.CONDITION, f"set-point {self.setpoint_mpa:g} MPa (not waiting)")
        while True:
            p = self._log(run, rig, "ramp")
            if abs(p - self.setpoint_mpa) <= self.tolerance_mpa:
                break
            if run.test_time() - start >= self.timeout_s:
                return StepEnd(EndKind.FAULT, f"stack pressure did not reach {self.setpoint_mpa:g} "
                                              f"MPa within {self.timeout_s:g} s (at {p:.3g} MPa)")
            end = run.wait(min(self.poll_s, self.timeout_s))
            if end.kind is not EndKind.TIME:
                return end
        reached = run.test_time() - start
        held = 0.0
        while held < self.hold_s:
            chunk = min(self.poll_s, self.hold_s - held)
            end = run.wait(chunk)
            if end.kind is not EndKind.TIME:
                return end
            held += chunk
            p = self._log(run, rig, "hold")
            if abs(p - self.setpoint_mpa) > self.tolerance_mpa:
                run.log("warning", f"stack pressure {p:.3g} MPa left {self.setpoint_mpa:g} "
                                   f"+- {self.tolerance_mpa:g} MPa while holding")
        return StepEnd(EndKind.CONDITION, f"at {self.setpoint_mpa:g} MPa after {reached:.0f} s"
                       + (f", held {self.hold_s:g} s" if self.hold_s else ""))

    def _log(self, run: Any, rig: Any, phase: str) -> float:
        p = float(rig.pressure_mpa())
        run.record(TABLE, {"pressure_mpa": [p], "setpoint_mpa": [self.setpoint_mpa],
                           "phase": [phase]})
        return p


def _ramp(spec: Any) -> float | None:
    """'0.5 MPa/s', '2 MPa/min' or a bare number (MPa/s) -> MPa/s; None (reported) when bad."""
    raw = spec.raw("ramp")
    if raw is None:
        return None
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        value = float(raw)
    else:
        text = spec.text("ramp")
        if text is None:
            return None
        m = _RATE.match(text)
        try:
            if m is None:
                raise UnitError("no '/'")
            amount = parse_quantity(m["amount"], PRESSURE).value
            per = parse_quantity(f"1 {m['per']}", TIME).value
            value = amount / per
        except (UnitError, TypeError, ValueError):
            spec.error("ramp", f"ramp must be a pressure per time such as '0.5 MPa/s' or "
                               f"'2 MPa/min', got {text!r}")
            return math.nan
    if not (math.isfinite(value) and value > 0):
        spec.error("ramp", f"ramp must be greater than zero, got {value:g}")
        return math.nan
    return value


def compile_pressure(spec: Any) -> PressureStep | None:
    """`StepTypeInfo.compile` for `pressure:`."""
    if not spec.mapping(KEYS, required=("setpoint",)):
        return None
    setpoint = spec.quantity("setpoint", PRESSURE, minimum=0.0, required=True)
    ramp = _ramp(spec)
    tolerance = spec.quantity("tolerance", PRESSURE, 0.1, positive=True)
    hold = spec.quantity("hold", TIME, 0.0, minimum=0.0)
    timeout = spec.quantity("timeout", TIME, 1800.0, positive=True)
    poll = spec.quantity("poll", TIME, 5.0, positive=True)
    wait = spec.boolean("wait", True)
    if not spec.ok or None in (setpoint, tolerance, hold, timeout, poll):
        return None
    sources = tuple((key, spec.source(key)) for key in KEYS if spec.raw(key) is not None)
    text = f"pressure {setpoint:g} MPa" + (f", hold {hold:g} s" if hold else "")
    return PressureStep(setpoint, ramp, tolerance, hold, timeout, poll, wait, text=text,
                        source=spec.source(), sources=sources)
