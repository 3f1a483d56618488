"""Building a station's instruments from its StationSpec through the driver registry.

Reading and checking station files is `labctl.stations.load`; this module is what
runs once everything was checked: the shared clock and simulated world, one driver
per role, and the safe state of every output.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from labctl.cells.spec import CellSpec
from labctl.clock import Clock, VirtualClock, WallClock
from labctl.errors import LabctlError
from labctl.plugins import Registry, build_registry
from labctl.stations.load import MAX_SPEED, MIN_SPEED
from labctl.stations.spec import StationSpec


@dataclass
class BuildContext:
    """What drivers get besides their own binding: the shared clock, world and cell."""

    clock: Clock
    cell: CellSpec
    station: StationSpec
    shared: dict[str, Any] = field(default_factory=dict)  # e.g. the one SimWorld
    registry: Any = None  # the plugin registry the station was built with (for reconnects)

    def shared_object(self, key: str, make: Any) -> Any:
        """One object per station run shared by several drivers (the simulated world)."""
        if key not in self.shared:
            self.shared[key] = make()
        return self.shared[key]


@dataclass
class Station:
    """Instruments built from a station file, by role."""

    spec: StationSpec
    clock: Clock
    instruments: dict[str, Any]
    context: BuildContext

    def __getitem__(self, role: str) -> Any:
        return self.instruments[role]

    def get(self, role: str) -> Any | None:
        return self.instruments.get(role)

    def identities(self) -> dict[str, dict]:
        out = {}
        for role, inst in self.instruments.items():
            ident = dict(inst.identify()) if hasattr(inst, "identify") else {}
            ident["driver"] = self.spec.instruments[role].driver
            if self.spec.instruments[role].calibration_due:
                ident["calibration_due"] = self.spec.instruments[role].calibration_due
            out[role] = ident
        return out

    def reconnect(self, role: str) -> Any:
        """Close `role`'s instrument and build it again from its binding.

        A simulated instrument hands its state to the new one (`get_state` /
        `set_state`), as a real cell keeps its state while a cable is replugged.
        """
        old = self.instruments[role]
        state = None
        if hasattr(old, "get_state"):
            try:
                state = old.get_state()
            except Exception:  # a broken instrument may not even report its state
                state = None
        try:
            old.close()
        except Exception:  # it is being replaced because it misbehaves
            pass
        binding = self.spec.instruments[role]
        registry = self.context.registry or build_registry(self.spec.plugin_files)
        new = registry.get("driver", binding.driver).factory(binding, self.context)
        if state is not None and hasattr(new, "set_state"):
            new.set_state(state)
        self.instruments[role] = new
        return new

    def safe_state(self) -> list[str]:
        """Every instrument to its safe state; returns what failed (never raises)."""
        failures = []
        for role, inst in self.instruments.items():
            try:
                inst.safe_state()
            except Exception as exc:  # keep going: the others must still be made safe
                failures.append(f"{role}: {type(exc).__name__}: {exc}")
        return failures

    def close(self) -> None:
        for inst in self.instruments.values():
            try:
                inst.close()
            except Exception:  # closing is best effort after safe_state
                pass


def make_clock(spec: StationSpec, start: float = 0.0, speed: float | None = None) -> Clock:
    if spec.clock == "realtime":
        return WallClock()
    return VirtualClock(start=start, speed=pace(spec, speed))


def pace(spec: StationSpec, speed: float | None = None) -> float | None:
    """Virtual seconds per wall second: --speed, else LABCTL_SIM_SPEED, else the station's."""
    source = "--speed"
    env_speed = os.environ.get("LABCTL_SIM_SPEED")
    if speed is None and env_speed:
        source = "LABCTL_SIM_SPEED"
        try:
            speed = float(env_speed)
        except ValueError:
            raise LabctlError(f"LABCTL_SIM_SPEED={env_speed!r} is not a number") from None
    if speed is None:
        return spec.speed
    if not MIN_SPEED <= speed <= MAX_SPEED:  # NaN fails this too
        raise LabctlError(f"{source} {speed:g}: must be from {MIN_SPEED:g} to {MAX_SPEED:g} "
                          "virtual seconds per wall second")
    return speed


def open_station(
    spec: StationSpec,
    cell: CellSpec,
    *,
    registry: Registry | None = None,
    clock: Clock | None = None,
) -> Station:
    """Build every instrument of the station (the simulated ones share one world)."""
    registry = registry or build_registry(spec.plugin_files)
    clock = clock or make_clock(spec)
    context = BuildContext(clock=clock, cell=cell, station=spec, registry=registry)
    instruments: dict[str, Any] = {}
    # Chambers first: simulated cyclers read their ambient from the world's chamber.
    order = sorted(spec.instruments, key=lambda r: (r != "chamber", r))
    try:
        for role in order:
            binding = spec.instruments[role]
            info = registry.get("driver", binding.driver)
            instruments[role] = info.factory(binding, context)
    except LabctlError:
        for inst in instruments.values():
            inst.close()
        raise
    return Station(spec, clock, instruments, context)
