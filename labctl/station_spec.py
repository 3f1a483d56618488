"""A station as validation sees it: which roles are bound, to what, with which ranges.

Loading station files and building instruments is `labctl.station`; this module
is only the plain description, so that the procedure validator can use it
without importing drivers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class InstrumentSpec:
    """One role binding from a station file."""

    role: str  # cycler, chamber, pstat, press, bms, thermometer
    driver: str  # registered driver name, e.g. "sim-cycler"
    settings: dict[str, Any] = field(default_factory=dict)  # address, channel, noise...
    # Ranges the instrument can do, SI names: max_current_a, max_voltage_v,
    # min_voltage_v, max_power_w, min_temperature_c, max_temperature_c, ...
    ranges: dict[str, float] = field(default_factory=dict)
    calibration_due: str | None = None


@dataclass(frozen=True)
class StationSpec:
    name: str
    instruments: dict[str, InstrumentSpec]  # role -> binding
    clock: str = "virtual"  # "virtual" (as fast as possible) or "realtime"
    speed: float | None = None  # virtual seconds per wall second; None = unlimited
    source: str | None = None
    plugin_files: tuple[str, ...] = ()

    def has_role(self, role: str) -> bool:
        return role in self.instruments
