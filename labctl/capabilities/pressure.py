"""Stack-pressure rig capability (solid-state cells).

A rig presses the cell stack with a controlled force; labctl speaks pressure in
MPa (force / active area) so procedures do not depend on the rig's piston.
`set_pressure` starts moving to a set-point (at `ramp_mpa_per_s` if given, else
the rig's default) and returns at once; `pressure_mpa` reads the stack now.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class PressureRanges:
    min_pressure_mpa: float
    max_pressure_mpa: float
    max_ramp_mpa_per_s: float | None = None

    @classmethod
    def from_mapping(cls, ranges: Mapping[str, object]) -> PressureRanges:
        """From a station file's `ranges:` (defaults: 0..100 MPa, any ramp)."""
        ramp = ranges.get("max_ramp_mpa_per_s")
        return cls(float(ranges.get("min_pressure_mpa", 0.0)),  # type: ignore[arg-type]
                   float(ranges.get("max_pressure_mpa", 100.0)),  # type: ignore[arg-type]
                   None if ramp is None else float(ramp))  # type: ignore[arg-type]


@runtime_checkable
class PressureRig(Protocol):
    ranges: PressureRanges

    def identify(self) -> dict[str, str]: ...

    def set_pressure(self, pressure_mpa: float, ramp_mpa_per_s: float | None = None) -> None:
        """Start moving to `pressure_mpa`; returns at once."""
        ...

    def pressure_mpa(self) -> float:
        """Measured stack pressure now."""
        ...

    def safe_state(self) -> None:
        """Hold the present pressure (releasing a stack suddenly can delaminate it)."""
        ...

    def close(self) -> None: ...
