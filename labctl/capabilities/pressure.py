"""Stack-pressure rig capability (solid-state cells)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class PressureRanges:
    min_pressure_mpa: float
    max_pressure_mpa: float
    max_ramp_mpa_per_s: float | None = None


@runtime_checkable
class PressureRig(Protocol):
    ranges: PressureRanges

    def identify(self) -> dict[str, str]: ...

    def set_pressure(self, pressure_mpa: float, ramp_mpa_per_s: float | None = None) -> None: ...

    def pressure_mpa(self) -> float: ...

    def safe_state(self) -> None:
        """Hold the present pressure (releasing a stack suddenly can delaminate it)."""
        ...

    def close(self) -> None: ...
