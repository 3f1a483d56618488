"""bms_protection: a staircase through a protection's threshold; threshold, trip delay,
contactor opening, recovery, and what the BMS reported at the tripping level.

The condition is applied by the bench (the cell emulator for voltages, the load for
currents, a sensor's temperature, the stack-pressure rig). The fault flag may be the
protection's own or, for over-current, the one flag a BMS raises for both directions
(`fault_over_current`). The BMS's own reading of the condition at the tripping level is
judged against what the bench applied: the forced cell's own voltage where the bus
carries per-cell values, else the maximum (minimum) cell voltage or temperature the BMS
reports; the pack current; the stack pressure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from labctl.capabilities.cycler import StepEnd
from labctl.steps.bms.session import BmsSession, BmsStep, stimulus
from labctl.units import CURRENT, PRESSURE, TEMPERATURE, TIME, VOLTAGE

# protection -> (fault roles (alternatives), unit kind, unit, stimulus, direction: +1 trips
# rising, -1 falling, reading roles (alternatives: per-cell first)). Current levels are
# magnitudes; a discharge protection applies them as negative currents.
PROTECTIONS = {
    "over_voltage": (("fault_over_voltage",), VOLTAGE, "V", "cell_voltage", 1,
                     ("cell_voltage_v", "max_cell_voltage_v")),
    "under_voltage": (("fault_under_voltage",), VOLTAGE, "V", "cell_voltage", -1,
                      ("cell_voltage_v", "min_cell_voltage_v")),
    "over_current_charge": (("fault_over_current_charge", "fault_over_current"), CURRENT, "A",
                            "current", 1, ("pack_current_a",)),
    "over_current_discharge": (("fault_over_current_discharge", "fault_over_current"), CURRENT,
                               "A", "current", 1, ("pack_current_a",)),
    "over_temperature": (("fault_over_temperature",), TEMPERATURE, "degC", "temperature", 1,
                         ("cell_temperature_c", "max_cell_temperature_c")),
    "under_temperature": (("fault_under_temperature",), TEMPERATURE, "degC", "temperature", -1,
                          ("cell_temperature_c", "min_cell_temperature_c")),
    "over_pressure": (("fault_pressure",), PRESSURE, "MPa", "pressure", 1, ("stack_pressure_mpa",)),
    "under_pressure": (("fault_pressure",), PRESSURE, "MPa", "pressure", -1, ("stack_pressure_mpa",)),
}


@dataclass(frozen=True)
class ProtectionStep(BmsStep):
    protection: str = "over_voltage"
    threshold: float = 0.0
    tolerance: float = 0.0
    delay_s: float = 1.0
    start: float = 0.0
    step: float = 0.0
    stop: float = 0.0
    dwell_s: float = 3.0
    cell: int = 1
    recovery: float | None = None
    recovery_delay_s: float | None = None
    reading_tolerance: float | None = None

    def execute(self, run: Any) -> StepEnd:
        s = BmsSession(run)
        stim = stimulus(s)
        faults, _, unit, kind, direction, readings = PROTECTIONS[self.protection]
        role = s.smap.first(*faults)
        fault_msg = s.smap.refs(role)[0].message
        period = s.period(role)
        status_period = s.period("contactor_closed")
        name = self.protection
        sign = -1.0 if self.protection.endswith("discharge") else 1.0

        def apply(level: float | None) -> None:
            if kind == "cell_voltage":
                stim.force_cell_voltage(self.cell, level)
            elif kind == "temperature":
                stim.force_temperature(self.cell, level)
            elif kind == "pressure":
                stim.set_pressure(level if level is not None else self._nominal_pressure(s))
            else:
                stim.set_current(0.0 if level is None else sign * level)

        if not s.close_contactors(1.0):
            s.check(f"{name}.contactor_closed_before", 0.0, "", 1, 1, "contactors did not close")
            return s.finish(self.text)
        n_steps = int(np.floor(abs(self.stop - self.start) / self.step + 1e-9)) + 1
        trip_level = trip_time = open_time = reading = None
        up = 1.0 if self.stop >= self.start else -1.0
        for j in range(n_steps):
            level = round(self.start + up * j * self.step, 9)
            apply(level)
            t_on = s.now
            batch = s.observe(self.dwell_s)
            first, before = s.first_true(batch, role, t_on)
            if first is not None:
                trip_level = level
                # The flag rose between the previous frame and this one: take the middle.
                prev = before if before is not None else first - period
                trip_time = 0.5 * (first + prev) - t_on
                t_open, _ = s.first_true(batch, "contactor_closed", t_on, value=False)
                open_time = None if t_open is None else t_open - t_on
                reading = self._reading(s, batch, readings, t_on, first)
                break
            if s.stopped:
                break
        s.check(f"{name}.threshold", trip_level, unit, self.threshold - self.tolerance,
                self.threshold + self.tolerance,
                f"staircase {self.start:g} to {self.stop:g} {unit} by {self.step:g}; "
                f"spec {self.threshold:g} {unit}")
        s.check(f"{name}.trip_delay", trip_time, "s", self.delay_s - period, self.delay_s + period,
                f"spec {self.delay_s:g} s +- one {fault_msg} period ({period:g} s, "
                f"{s.smap.period_source(fault_msg)}); flag {role}")
        s.check(f"{name}.contactor_open", open_time, "s", None, self.delay_s + period + status_period,
                "from the tripping level's onset to the first frame with the contactors open")
        if reading is not None and trip_level is not None:
            value, what, resolution = reading
            tol = (self.reading_tolerance if self.reading_tolerance is not None
                   else self.step + resolution)
            s.check(f"{name}.reported_value", sign * value, unit, trip_level - tol, trip_level + tol,
                    f"{what} in the last frame before the trip, against the {trip_level:g} {unit} "
                    f"the bench applied (+- {tol:g} {unit})")
        if self.recovery is not None and trip_level is not None:
            apply(self.recovery - direction * self.step)
            t_rec = s.now
            batch = s.observe((self.recovery_delay_s or 0.0) + 3.0)
            cleared, before = s.first_true(batch, role, t_rec, value=False)
            rec_time = None
            if cleared is not None:
                prev = before if before is not None else cleared - period
                rec_time = 0.5 * (cleared + prev) - t_rec
            rd = self.recovery_delay_s or 0.0
            s.check(f"{name}.recovery_delay", rec_time, "s", rd - period, rd + period,
                    f"back past the recovery level {self.recovery:g} {unit}")
        apply(None)
        s.observe(2.0 + (self.recovery_delay_s or 0.0))
        return s.finish(self.text)

    def _reading(self, s: BmsSession, batch: Any, roles: tuple[str, ...], t_on: float,
                 t_trip: float) -> tuple[float, str, float] | None:
        """The BMS's reading of the condition in its last frame before the trip frame:
        (value, what it is, the signal's resolution in labctl units)."""
        role = s.smap.first(*roles)
        if role is None:
            return None
        index = self.cell - 1 if role in ("cell_voltage_v", "cell_temperature_c") else 0
        t, v = s.series(batch, role, index)
        sel = np.flatnonzero((t >= t_on) & (t < t_trip))
        if not len(sel):
            return None
        ref = s.smap.refs(role)[index]
        sig = s.smap.message(ref.message).get_signal_by_name(ref.signal)
        what = f"{role}[cell {self.cell}]" if index or role.startswith("cell_") else role
        return float(v[sel[-1]]), what, abs(float(sig.scale) * ref.factor * ref.scale)

    @staticmethod
    def _nominal_pressure(s: BmsSession) -> float:
        cfg = getattr(s.bms, "cfg", None)
        p = getattr(getattr(cfg, "pack", None), "stack_pressure_mpa", None)
        return float(p) if p is not None else 0.0


def compile_protection(spec: Any) -> ProtectionStep | None:
    keys = ("protection", "threshold", "tolerance", "delay", "start", "step", "stop", "dwell",
            "cell", "recovery", "recovery_delay", "reading_tolerance")
    if not spec.mapping(keys, required=("protection", "threshold", "delay", "start", "step")):
        return None
    prot = spec.choice("protection", tuple(PROTECTIONS))
    if prot is None:
        return None
    faults, kind, unit, stim, direction, readings = PROTECTIONS[prot]
    threshold = spec.quantity("threshold", kind, required=True)
    step = spec.quantity("step", kind, required=True, positive=True)
    delay = spec.quantity("delay", TIME, required=True, minimum=0.0)
    start = spec.quantity("start", kind, required=True)
    if None in (threshold, step, delay, start):
        return None
    stop = spec.quantity("stop", kind, threshold + direction * 10 * step)
    tol = spec.quantity("tolerance", kind, step, minimum=0.0)
    dwell = spec.quantity("dwell", TIME, delay + 2.0, positive=True)
    cell = spec.integer("cell", 1)
    recovery = spec.quantity("recovery", kind)
    rdelay = spec.quantity("recovery_delay", TIME, 0.0, minimum=0.0)
    rtol = spec.quantity("reading_tolerance", kind, None, minimum=0.0)
    if not spec.ok:
        return None
    if (stop - start) * direction <= 0 or (threshold - start) * direction < 0:
        spec.error("start", f"the staircase must run from start towards and past the threshold "
                            f"({'up' if direction > 0 else 'down'} for {prot})")
        return None
    if dwell <= delay:
        spec.error("dwell", f"dwell {dwell:g} s must be longer than the delay {delay:g} s")
        return None
    fault: Any = faults[0] if len(faults) == 1 else faults
    roles: tuple = (fault, "contactor_closed", "cmd_contactor_close")
    if stim == "cell_voltage":  # the bench's level is judged against the BMS's own reading
        roles += (readings,)
    on_cell = stim in ("cell_voltage", "temperature")
    return ProtectionStep(f"bms_protection {prot} {threshold:g} {unit}", spec.source(), roles,
                          "bms_protection", cells_used=(cell,) if on_cell else (),
                          period_roles=(fault, "contactor_closed"), protection=prot,
                          threshold=threshold, tolerance=tol, delay_s=delay, start=start,
                          step=step, stop=stop, dwell_s=dwell, cell=cell, recovery=recovery,
                          recovery_delay_s=rdelay, reading_tolerance=rtol)
