"""A serial load-cell force controller as the stack-pressure rig.

The controller speaks force in newtons; labctl speaks stack pressure in MPa:
pressure_mpa = force_n / area_mm2 (1 N/mm² = 1 MPa), with the cell's active area
`area_mm2` from the station file.

Protocol (ASCII, one command per line, CR LF; this is the documented protocol of
the rig's controller, "LC" command set):

| command | answer | meaning |
| --- | --- | --- |
| `*IDN?` | `MAKER,MODEL,SERIAL,FIRMWARE` | identity |
| `F?` | `F 1234.5` | measured force, N |
| `FSET 1234.5` | `OK` | force set-point, N (the controller ramps to it) |
| `RATE 50.0` | `OK` | ramp rate, N/s |
| `HOLD` | `OK` | hold the present force (stop ramping) |
| anything wrong | `ERR <code> <text>` | e.g. `ERR 3 OUT OF RANGE` |

Safe state: HOLD (releasing a stack suddenly can delaminate it).
"""

from __future__ import annotations

from typing import Any

from labctl.capabilities.pressure import PressureRanges
from labctl.drivers.serial_link import SERIAL_SETTINGS, AsciiLink, open_serial
from labctl.drivers.visa_link import check_settings, number
from labctl.errors import InstrumentError, LabctlError
from labctl.stations.spec import InstrumentSpec


class SerialPressureRig:
    def __init__(self, link: AsciiLink, ranges: PressureRanges, area_mm2: float, *,
                 calibration_due: str | None = None):
        self.link = link
        self.ranges = ranges
        self.area_mm2 = area_mm2
        self.calibration_due = calibration_due

    def _ask(self, command: str) -> str:
        answer = self.link.query(command)
        if answer.startswith("ERR"):
            raise InstrumentError(f"{self.link.name}: {command!r} refused: {answer}")
        return answer

    def _ok(self, command: str) -> None:
        answer = self._ask(command)
        if answer != "OK":
            raise InstrumentError(f"{self.link.name}: {command!r}: unexpected answer {answer!r}")

    def identify(self) -> dict[str, str]:
        from labctl.drivers.visa_link import parse_idn

        out = parse_idn(self._ask("*IDN?"))
        if self.calibration_due:
            out["calibration_due"] = self.calibration_due
        return out

    def set_pressure(self, pressure_mpa: float, ramp_mpa_per_s: float | None = None) -> None:
        r = self.ranges
        if not r.min_pressure_mpa <= pressure_mpa <= r.max_pressure_mpa:
            raise InstrumentError(f"{self.link.name}: {pressure_mpa:g} MPa is outside "
                                  f"{r.min_pressure_mpa:g}..{r.max_pressure_mpa:g} MPa")
        if ramp_mpa_per_s is not None:
            if r.max_ramp_mpa_per_s is not None and ramp_mpa_per_s > r.max_ramp_mpa_per_s:
                raise InstrumentError(f"{self.link.name}: ramp {ramp_mpa_per_s:g} MPa/s is above "
                                      f"{r.max_ramp_mpa_per_s:g} MPa/s")
            self._ok(f"RATE {ramp_mpa_per_s * self.area_mm2:.1f}")
        self._ok(f"FSET {pressure_mpa * self.area_mm2:.1f}")

    def pressure_mpa(self) -> float:
        answer = self._ask("F?")
        head, _, value = answer.partition(" ")
        try:
            if head != "F":
                raise ValueError
            return float(value) / self.area_mm2
        except ValueError:
            raise InstrumentError(f"{self.link.name}: F? answered {answer!r}") from None

    def safe_state(self) -> None:
        self._ok("HOLD")

    def close(self) -> None:
        try:
            self.safe_state()
        finally:
            self.link.close()


def make_pressure_serial(binding: InstrumentSpec, context: Any) -> SerialPressureRig:
    check_settings(binding, SERIAL_SETTINGS | {"area_mm2", "max_force_n"})
    area = number(binding, "area_mm2", None, 1e-6)
    if area is None:
        raise LabctlError(f"{binding.role}: needs 'area_mm2:' (the cell's pressed area; "
                          "pressure = force / area)")
    ranges = PressureRanges.from_mapping(binding.ranges)
    max_force = number(binding, "max_force_n", None, 0.0)
    if max_force is not None and ranges.max_pressure_mpa * area > max_force:
        raise LabctlError(f"{binding.role}: max_pressure_mpa {ranges.max_pressure_mpa:g} over "
                          f"{area:g} mm² needs {ranges.max_pressure_mpa * area:g} N, more than the "
                          f"load cell's max_force_n {max_force:g} N")
    link = AsciiLink(open_serial(binding), f"{binding.role} (load-cell controller at "
                                           f"{binding.settings['port']})")
    return SerialPressureRig(link, ranges, area, calibration_due=binding.calibration_due)
