"""A station as validation sees it: which roles are bound, to what, with which ranges.

Loading station files is `labctl.stations.load`, building instruments
`labctl.stations.build`; this module is only the plain description, so that the
procedure validator can use it without importing drivers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ReconnectPolicy:
    """What to do when an instrument stops answering in the middle of a step.

    Up to `attempts` reconnections, waiting `backoff_s`, then twice as long each
    time (at most `max_backoff_s`) before each. The outputs are put in their safe
    state first; after a successful reconnection the interrupted step continues
    for its remaining time/charge. 0 attempts (the default) = fault at once.
    """

    attempts: int = 0
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0

    def delay_s(self, attempt: int) -> float:
        """Wait before reconnection number `attempt` (1-based)."""
        return min(self.max_backoff_s, self.backoff_s * 2.0 ** (attempt - 1))


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
    reconnect: ReconnectPolicy = field(default_factory=ReconnectPolicy)


@dataclass(frozen=True)
class StationSpec:
    """A station file: the instrument bound to each role, and the clock runs go by."""

    name: str
    instruments: dict[str, InstrumentSpec]  # role -> binding
    clock: str = "virtual"  # "virtual" (as fast as possible) or "realtime"
    speed: float | None = None  # virtual seconds per wall second; None = unlimited
    source: str | None = None
    plugin_files: tuple[str, ...] = ()

    def has_role(self, role: str) -> bool:
        return role in self.instruments
