"""ESPEC-style chamber controller (SCP-220 family command style) over serial or TCP.

Commands (one per line, CR LF):

| command | answer | meaning |
| --- | --- | --- |
| `ROM?` | `SCP-220 Ver 2.00` | controller and firmware |
| `TEMP?` | `25.1,25.0,150.0,-40.0` | measured, set-point, upper and lower alarm limit (°C) |
| `TEMP, S40.0` | `OK:TEMP, S40.0` | new set-point |
| `MODE, CONSTANT` | `OK:MODE, CONSTANT` | run at the set-point (`STANDBY`: fan only) |
| `MON?` | `25.1,,CONSTANT,0` | temperature, humidity, mode, number of active alarms |

An error answer starts with `NA:` (e.g. `NA:DATA OUT OF RANGE`). The controller ramps
at its own rate in constant mode (a procedure's ramp is not applied). Safe state:
the station's `safe_setpoint_c` (default 25 °C) in constant mode. Active alarms are
reported through `interlock_fault()`, which the engine polls.
"""

from __future__ import annotations

from typing import Any

from labctl.capabilities.chamber import ChamberRanges
from labctl.drivers.serial_link import SERIAL_SETTINGS, AsciiLink, open_serial
from labctl.drivers.visa_link import check_settings, number
from labctl.errors import InstrumentError
from labctl.stations.spec import InstrumentSpec


class EspecChamber:
    def __init__(self, link: AsciiLink, ranges: ChamberRanges, *, safe_setpoint_c: float = 25.0,
                 calibration_due: str | None = None):
        self.link = link
        self.ranges = ranges
        self.safe_setpoint_c = safe_setpoint_c
        self.calibration_due = calibration_due

    def _command(self, command: str) -> str:
        answer = self.link.query(command)
        if answer.startswith("NA:"):
            raise InstrumentError(f"{self.link.name}: {command!r} refused: {answer[3:].strip()}")
        return answer

    def _set(self, command: str) -> None:
        answer = self._command(command)
        if not answer.startswith("OK:"):
            raise InstrumentError(f"{self.link.name}: {command!r}: unexpected answer {answer!r}")

    def identify(self) -> dict[str, str]:
        rom = self._command("ROM?")
        model, _, firmware = rom.partition(" ")
        out = {"idn": rom, "make": "ESPEC", "model": model, "serial": "", "firmware": firmware}
        if self.calibration_due:
            out["calibration_due"] = self.calibration_due
        return out

    def set_temperature(self, setpoint_c: float, ramp_c_per_min: float | None = None) -> None:
        r = self.ranges
        if not r.min_temperature_c <= setpoint_c <= r.max_temperature_c:
            raise InstrumentError(f"{self.link.name}: set-point {setpoint_c:g} °C is outside "
                                  f"{r.min_temperature_c:g}..{r.max_temperature_c:g} °C")
        self._set(f"TEMP, S{setpoint_c:.1f}")
        self._set("MODE, CONSTANT")

    def temperature_c(self) -> float:
        answer = self._command("TEMP?")
        try:
            return float(answer.split(",")[0])
        except ValueError:
            raise InstrumentError(f"{self.link.name}: TEMP? answered {answer!r}") from None

    def interlock_fault(self) -> str | None:
        fields = self._command("MON?").split(",")
        try:
            alarms = int(fields[3])
        except (IndexError, ValueError):
            raise InstrumentError(f"{self.link.name}: MON? answered {','.join(fields)!r}") from None
        return f"chamber controller reports {alarms} active alarm(s)" if alarms else None

    def safe_state(self) -> None:
        self._set(f"TEMP, S{self.safe_setpoint_c:.1f}")
        self._set("MODE, CONSTANT")

    def close(self) -> None:
        try:
            self.safe_state()
        finally:
            self.link.close()


def make_espec(binding: InstrumentSpec, context: Any) -> EspecChamber:
    check_settings(binding, SERIAL_SETTINGS | {"safe_setpoint_c"})
    r = binding.ranges
    ranges = ChamberRanges(min_temperature_c=r.get("min_temperature_c", -40.0),
                           max_temperature_c=r.get("max_temperature_c", 150.0),
                           max_ramp_c_per_min=r.get("max_ramp_c_per_min"))
    link = AsciiLink(open_serial(binding), f"{binding.role} (espec at {binding.settings['port']})")
    return EspecChamber(link, ranges, safe_setpoint_c=number(binding, "safe_setpoint_c", 25.0, -100),
                        calibration_due=binding.calibration_due)
