"""Thermotron 3800 chamber controller (PyMeasure's `Thermotron3800`) as a thermal chamber.

Manual mode: `SETP1,<°C>` then `RUNM` starts forcing to the set-point; `PVAR1?` reads the
chamber air. The controller ramps at its own rate in manual mode, so a procedure's ramp
request is not applied (the station's `max_ramp_c_per_min` range still validates it).
Safe state: forcing to the station's `safe_setpoint_c` (default 25 °C), not STOP, so
the workspace returns to room temperature instead of drifting. PyMeasure waits 1 s after
every write, as the manufacturer asks.
"""

from __future__ import annotations

from typing import Any

from labctl.capabilities.chamber import ChamberRanges
from labctl.drivers.visa_link import VISA_SETTINGS, check_settings, guarded, number, open_pymeasure
from labctl.errors import InstrumentError, LabctlError
from labctl.stations.spec import InstrumentSpec

HARDWARE = ChamberRanges(min_temperature_c=-55.0, max_temperature_c=150.0)  # PyMeasure's range
SETTINGS = VISA_SETTINGS | {"safe_setpoint_c", "name"}


class ThermotronChamber:
    def __init__(self, inst: Any, ranges: ChamberRanges, *, name: str = "thermotron-3800",
                 safe_setpoint_c: float = 25.0, calibration_due: str | None = None):
        self.inst = inst
        self.ranges = ranges
        self.name = name
        self.safe_setpoint_c = safe_setpoint_c
        self.calibration_due = calibration_due

    def identify(self) -> dict[str, str]:
        with guarded(self.name):
            idn = str(self.inst.id).strip()
        out = {"idn": idn, "make": "Thermotron", "model": "3800", "serial": "", "firmware": idn}
        if self.calibration_due:
            out["calibration_due"] = self.calibration_due
        return out

    def set_temperature(self, setpoint_c: float, ramp_c_per_min: float | None = None) -> None:
        r = self.ranges
        if not r.min_temperature_c <= setpoint_c <= r.max_temperature_c:
            raise InstrumentError(f"{self.name}: set-point {setpoint_c:g} °C is outside "
                                  f"{r.min_temperature_c:g}..{r.max_temperature_c:g} °C")
        with guarded(self.name):
            self.inst.setpoint = setpoint_c
            self.inst.run()

    def temperature_c(self) -> float:
        with guarded(self.name):
            return float(self.inst.temperature)

    def safe_state(self) -> None:
        with guarded(self.name):
            self.inst.setpoint = self.safe_setpoint_c
            self.inst.run()

    def close(self) -> None:
        try:
            self.safe_state()
        finally:
            with guarded(self.name):
                self.inst.adapter.close()


def make_thermotron_3800(binding: InstrumentSpec, context: Any) -> ThermotronChamber:
    from pymeasure.instruments.thermotron import Thermotron3800

    check_settings(binding, SETTINGS)
    r = binding.ranges
    ranges = ChamberRanges(
        min_temperature_c=r.get("min_temperature_c", HARDWARE.min_temperature_c),
        max_temperature_c=r.get("max_temperature_c", HARDWARE.max_temperature_c),
        max_ramp_c_per_min=r.get("max_ramp_c_per_min"))
    if ranges.min_temperature_c < HARDWARE.min_temperature_c or \
            ranges.max_temperature_c > HARDWARE.max_temperature_c:
        raise LabctlError(f"{binding.role}: ranges exceed the Thermotron 3800's "
                          f"{HARDWARE.min_temperature_c:g}..{HARDWARE.max_temperature_c:g} °C")
    safe = number(binding, "safe_setpoint_c", 25.0, -55.0)
    inst = open_pymeasure(Thermotron3800, binding, context.station.source)
    return ThermotronChamber(inst, ranges, name=str(binding.settings.get("name", binding.role)),
                             safe_setpoint_c=safe, calibration_due=binding.calibration_due)
