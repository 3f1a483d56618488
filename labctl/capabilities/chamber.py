"""Thermal chamber capability."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class ChamberRanges:
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
