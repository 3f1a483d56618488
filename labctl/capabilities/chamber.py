"""Thermal chamber capability."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class ChamberRanges:
    """What a thermal chamber can do: its temperature range and ramp rate."""

    min_temperature_c: float
    max_temperature_c: float
    max_ramp_c_per_min: float | None = None
    abuse_rated: bool = False  # may host abuse procedures (see the abuse issue)


@runtime_checkable
class ThermalChamber(Protocol):
    ranges: ChamberRanges

    def identify(self) -> dict[str, str]: ...

    def set_temperature(self, setpoint_c: float, ramp_c_per_min: float | None = None) -> None:
        """Start moving to `setpoint_c` (at the ramp rate if given); returns at once."""
        ...

    def temperature_c(self) -> float:
        """Measured chamber air temperature now."""
        ...

    def safe_state(self) -> None:
        """Heaters off / go to the station's safe set-point."""
        ...

    def close(self) -> None: ...


# -- abuse chambers / calorimeters (thermal abuse: DSC-style ramps, ARC heat-wait-seek) ------------


def chamber_is_abuse_rated(ranges: dict) -> bool:
    """A station file's chamber `ranges:` say `abuse_rated: 1` (or true): it may host abuse tests."""
    return bool(ranges.get("abuse_rated", False))


@dataclass
class ThermalSamples:
    """What an abuse chamber measured between two reads (clock times, SI names).

    `stop` says why the read ended: "time", "temperature" (the cell reached the
    asked-for temperature), "rate" (self-heating reached the asked-for rate) or
    "fault" (a hard interlock tripped; the instrument has switched its heaters off).
    """

    time_s: Any
    cell_temperature_c: Any
    chamber_temperature_c: Any
    heat_flow_w: Any
    heater_on: Any
    mode: Any
    soc: Any
    stop: str = "time"
    stop_reason: str = ""

    def __len__(self) -> int:
        return len(self.time_s)


@runtime_checkable
class AbuseChamber(Protocol):
    """An abuse-rated chamber that holds the cell and measures its temperature (an ARC/calorimeter).

    Hard interlocks (over-temperature, door/lid open, emergency stop, lost
    communication) switch its heaters off by themselves and are reported by
    `interlock_fault()`; nothing in a procedure can override them.
    """

    ranges: ChamberRanges

    def set_temperature(self, setpoint_c: float, ramp_c_per_min: float | None = None) -> None: ...

    def set_dsc_ramp(self, target_c: float, rate_c_per_min: float) -> None:
        """Hold the cell on a linear temperature program; heat flow = the compensating power."""
        ...

    def set_adiabatic(self) -> None:
        """Track the cell temperature with the heaters (no heat exchange)."""
        ...

    def heaters_off(self) -> None: ...

    def set_logging(self, period_s: float, delta_c: float | None) -> None:
        """Sample every `period_s` and whenever the cell moved by `delta_c`; drops unread samples."""
        ...

    def advance(self, until_s: float, *, stop_above_c: float | None = None,
                stop_rate_above_c_per_min: float | None = None) -> ThermalSamples:
        """Measure until clock time `until_s` (or a stop / a fault), waiting on the shared clock."""
        ...

    def set_electrical_input(self, current_a: float, voltage_v: float) -> None:
        """The current through the cell from now on (its Joule / overcharge heat)."""
        ...

    def interlock_fault(self) -> str | None: ...

    def safe_state(self) -> None: ...
