"""bms_protection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from labctl.capabilities.cycler import StepEnd
from labctl.steps.bms.session import BmsSession, BmsStep, stimulus
from labctl.units import CURRENT, PRESSURE, TEMPERATURE, TIME, VOLTAGE

# protection -> (fault role, unit kind, unit, stimulus, direction: +1 trips rising, -1 falling).
# Current levels are magnitudes; a discharge protection applies them as negative currents.
PROTECTIONS = {
    "over_voltage": ("fault_over_voltage", VOLTAGE, "V", "cell_voltage", 1),
    "under_voltage": ("fault_under_voltage", VOLTAGE, "V", "cell_voltage", -1),
    "over_current_charge": ("fault_over_current_charge", CURRENT, "A", "current", 1),
    "over_current_discharge": ("fault_over_current_discharge", CURRENT, "A", "current", 1),
    "over_temperature": ("fault_over_temperature", TEMPERATURE, "degC", "temperature", 1),
    "under_temperature": ("fault_under_temperature", TEMPERATURE, "degC", "temperature", -1),
    "over_pressure": ("fault_pressure", PRESSURE, "MPa", "pressure", 1),
    "under_pressure": ("fault_pressure", PRESSURE, "MPa", "pressure", -1),
}


# ------------------------------------------------------------------------------------------------
# bms_protection


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

    def execute(self, run: Any) -> StepEnd:
        s = BmsSession(run)
        stim = stimulus(s)
        role, _, unit, kind, direction = PROTECTIONS[self.protection]
        fault_msg = s.smap.refs(role)[0].message
        period = s.smap.period_s(fault_msg) or 0.1
        status_period = s.smap.period_s(s.smap.refs("contactor_closed")[0].message) or 0.1
        name = self.protection

        def apply(level: float | None) -> None:
            if kind == "cell_voltage":
                stim.force_cell_voltage(self.cell, level)
            elif kind == "temperature":
                stim.force_temperature(self.cell, level)
            elif kind == "pressure":
                stim.set_pressure(level if level is not None else self._nominal_pressure(s))
            else:
                sign = -1.0 if self.protection.endswith("discharge") else 1.0
                stim.set_current(0.0 if level is None else sign * level)

        if not s.close_contactors(1.0):
            s.check(f"{name}.contactor_closed_before", 0.0, "", 1, 1, "contactors did not close")
            return s.finish(self.text)
        n_steps = int(np.floor(abs(self.stop - self.start) / self.step + 1e-9)) + 1
        trip_level = trip_time = open_time = None
        sign = 1.0 if self.stop >= self.start else -1.0
        for j in range(n_steps):
            level = round(self.start + sign * j * self.step, 9)
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
                break
            if s.stopped:
                break
        s.check(f"{name}.threshold", trip_level, unit, self.threshold - self.tolerance,
                self.threshold + self.tolerance,
                f"staircase {self.start:g} to {self.stop:g} {unit} by {self.step:g}; "
                f"spec {self.threshold:g} {unit}")
        s.check(f"{name}.trip_delay", trip_time, "s", self.delay_s - period, self.delay_s + period,
                f"spec {self.delay_s:g} s +- one {fault_msg} period ({period:g} s)")
        s.check(f"{name}.contactor_open", open_time, "s", None, self.delay_s + period + status_period,
                "from the tripping level's onset to the first frame with the contactors open")
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

    @staticmethod
    def _nominal_pressure(s: BmsSession) -> float:
        cfg = getattr(s.bms, "cfg", None)
        p = getattr(getattr(cfg, "pack", None), "stack_pressure_mpa", None)
        return float(p) if p is not None else 0.0


def compile_protection(spec: Any) -> ProtectionStep | None:
    keys = ("protection", "threshold", "tolerance", "delay", "start", "step", "stop", "dwell",
            "cell", "recovery", "recovery_delay")
    if not spec.mapping(keys, required=("protection", "threshold", "delay", "start", "step")):
        return None
    prot = spec.choice("protection", tuple(PROTECTIONS))
    if prot is None:
        return None
    role, kind, unit, _, direction = PROTECTIONS[prot]
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
    if not spec.ok:
        return None
    if (stop - start) * direction <= 0 or (threshold - start) * direction < 0:
        spec.error("start", f"the staircase must run from start towards and past the threshold "
                            f"({'up' if direction > 0 else 'down'} for {prot})")
        return None
    if dwell <= delay:
        spec.error("dwell", f"dwell {dwell:g} s must be longer than the delay {delay:g} s")
        return None
    roles = (role, "contactor_closed", "cmd_contactor_close")
    if prot.startswith(("over_v", "under_v")):
        roles += ("cell_voltage_v",)
    return ProtectionStep(f"bms_protection {prot} {threshold:g} {unit}", spec.source(), roles,
                          "bms_protection", protection=prot, threshold=threshold, tolerance=tol,
                          delay_s=delay, start=start, step=step, stop=stop, dwell_s=dwell,
                          cell=cell, recovery=recovery, recovery_delay_s=rdelay)

