"""Built-in drivers for the simulated bench: `sim-cycler` and `sim-chamber`.

All simulated instruments of a station share one `SimWorld` (one virtual
clock, one chamber air temperature), so the chamber's temperature reaches the
simulated cell.
"""

from __future__ import annotations

from typing import Any

from labctl.capabilities.chamber import ChamberRanges
from labctl.capabilities.cycler import CyclerRanges
from labctl.errors import LabctlError
from labctl.plugins import DriverInfo, hookimpl
from labctl.stations.spec import InstrumentSpec

_CYCLER_SETTINGS = {"noise", "resolution", "seed", "initial_soc", "name", "channel", "ambient_c"}
_CHAMBER_SETTINGS = {"default_ramp_c_per_min", "noise_c", "seed", "safe_setpoint_c"}


def _world(context: Any, ambient_c: float = 25.0) -> Any:
    from labctl.sim.world import SimWorld

    return context.shared_object("sim-world", lambda: SimWorld(context.clock, ambient_c=ambient_c))


def _check_settings(binding: InstrumentSpec, allowed: set[str]) -> None:
    unknown = sorted(set(binding.settings) - allowed)
    if unknown:
        raise LabctlError(
            f"{binding.role}: unknown setting(s) {', '.join(unknown)} for driver {binding.driver!r}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )


def make_sim_cycler(binding: InstrumentSpec, context: Any) -> Any:
    from labctl.sim.cycler import SimCyclerChannel

    _check_settings(binding, _CYCLER_SETTINGS)
    if context.cell.model is None:
        raise LabctlError(
            f"cell {context.cell.name!r} ({context.cell.source}) has no 'model:' section, "
            "so it cannot be simulated; use a cell file with a model or a real cycler"
        )
    s = binding.settings
    r = binding.ranges
    ranges = CyclerRanges(
        max_current_a=r.get("max_current_a", 20.0),
        max_voltage_v=r.get("max_voltage_v", 5.0),
        min_voltage_v=r.get("min_voltage_v", 0.0),
        max_power_w=r.get("max_power_w"),
    )
    world = _world(context, float(s.get("ambient_c", 25.0)))
    channel = SimCyclerChannel(
        world,
        context.cell,
        ranges=ranges,
        noise=s.get("noise"),
        resolution=s.get("resolution"),
        seed=int(s.get("seed", 0)),
        initial_soc=s.get("initial_soc"),
        name=str(s.get("name", s.get("channel", "sim"))),
    )
    world.cell_channel = channel  # a simulated potentiostat measures this same cell
    return channel


def make_sim_chamber(binding: InstrumentSpec, context: Any) -> Any:
    from labctl.sim.chamber import SimChamber

    _check_settings(binding, _CHAMBER_SETTINGS)
    s = binding.settings
    r = binding.ranges
    ranges = ChamberRanges(
        min_temperature_c=r.get("min_temperature_c", -40.0),
        max_temperature_c=r.get("max_temperature_c", 150.0),
        max_ramp_c_per_min=r.get("max_ramp_c_per_min"),
        abuse_rated=bool(r.get("abuse_rated", False)),
    )
    return SimChamber(
        _world(context),
        ranges,
        default_ramp_c_per_min=float(s.get("default_ramp_c_per_min", 2.0)),
        noise_c=float(s.get("noise_c", 0.0)),
        seed=int(s.get("seed", 0)),
        safe_setpoint_c=float(s.get("safe_setpoint_c", 25.0)),
    )


@hookimpl
def labctl_drivers() -> list[DriverInfo]:
    return [
        DriverInfo(
            "sim-cycler",
            ("cycler",),
            make_sim_cycler,
            "Simulated cycler channel on the cell's equivalent-circuit model (virtual time)",
        ),
        DriverInfo(
            "sim-chamber",
            ("chamber",),
            make_sim_chamber,
            "Simulated thermal chamber (ramp to set-point); its air is the simulated cell's ambient",
        ),
    ]
