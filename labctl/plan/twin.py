"""The simulated twin of a station: what `labctl plan` runs a procedure on.

Every role keeps its ranges (so the channel refuses exactly what the real one
would) but its instrument becomes the simulator that models the cell file: a
cycler (real, `sim-smu`, `sim-pybamm`...) becomes `sim-cycler` on the cell file's
equivalent-circuit model, a chamber `sim-chamber`, a potentiostat `sim-pstat`, a
pressure rig `sim-press`. Noise is switched off: the plan wants the true values.
The clock is virtual and unpaced, and nothing is stored.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

from labctl.stations.spec import InstrumentSpec, StationSpec

# role -> the simulated driver that stands in for any instrument in that role
TWIN_DRIVERS = {"cycler": "sim-cycler", "chamber": "sim-chamber", "pstat": "sim-pstat",
                "press": "sim-press"}
# Simulators that are kept as they are: they simulate the cell file's model already (an
# abuse calorimeter, a simulated BMS...). sim-pybamm and sim-smu simulate other models or
# go through a software loop: their role's stand-in replaces them.
REPLACED_SIMULATORS = {"sim-pybamm", "sim-smu"}
# settings of the real binding that describe the bench rather than the instrument
_KEPT = {
    "sim-cycler": ("initial_soc", "ambient_c", "name", "channel"),
    "sim-chamber": ("default_ramp_c_per_min", "safe_setpoint_c"),
    "sim-pstat": (),
    "sim-press": ("default_ramp_mpa_per_s",),
}
_NOISE = ("noise", "noise_c", "resolution")
_TWINS = itertools.count(1)


def twin_spec(spec: StationSpec) -> StationSpec:
    """The station with every instrument replaced by its simulated stand-in, noise off.

    Roles without a simulated stand-in that are themselves simulated (`sim-bms`...)
    are kept as they are; others (a real thermometer) are left out.
    """
    instruments: dict[str, InstrumentSpec] = {}
    for role, binding in spec.instruments.items():
        twin = TWIN_DRIVERS.get(role)
        simulated = binding.driver.startswith("sim-") and binding.driver not in \
            REPLACED_SIMULATORS
        if simulated:
            settings = {k: v for k, v in binding.settings.items() if k not in _NOISE}
            instruments[role] = replace(binding, settings=settings)
            continue
        if twin is None:  # a real instrument with no simulated stand-in: left out
            continue
        if binding.driver == twin:
            settings = {k: v for k, v in binding.settings.items() if k not in _NOISE}
        else:
            settings = {k: binding.settings[k] for k in _KEPT[twin] if k in binding.settings}
            if twin == "sim-cycler" and "initial_soc" not in settings:
                # sim-pybamm starts full unless told otherwise; so does its twin
                if binding.driver == "sim-pybamm":
                    settings["initial_soc"] = 1.0
        instruments[role] = replace(binding, driver=twin, settings=settings)
    return replace(spec, instruments=instruments, clock="virtual", speed=None)


def open_twin(spec: StationSpec, cell: Any, registry: Any) -> Any:
    """The twin station, built and ready (a `labctl.stations.build.Station`)."""
    from labctl.clock import VirtualClock
    from labctl.stations.build import open_station

    station = open_station(twin_spec(spec), cell, registry=registry, clock=VirtualClock())
    chamber = station.spec.instruments.get("chamber")
    if chamber is not None:
        # The instruments are built: mark the chamber binding, so that the twin's chamber
        # claims (labctl.engine.sharing keys a marked binding by all its settings) are its
        # own and never make a real run in this process wait, nor are released by it.
        marked = replace(chamber, settings={**chamber.settings, "plan_twin": next(_TWINS)})
        station.spec = replace(station.spec,
                               instruments={**station.spec.instruments, "chamber": marked})
    return station


def twin_state(station: Any) -> tuple:
    """The simulated bench's state as numbers, to tell whether two loop iterations left it
    the same: each instrument's state (cell state-of-charge, RC voltages, temperature;
    chamber), without the noise generator and with the cell's ageing as its effect
    (capacity fraction, resistance factor) rather than its ever-growing counters."""
    out: list[Any] = []
    for role in sorted(station.instruments):
        inst = station.instruments[role]
        get = getattr(inst, "get_state", None)
        if get is None:
            continue
        try:
            state = get()
            summary = inst.ageing_summary() if hasattr(inst, "ageing_summary") else {}
        except Exception:  # a stand-in that cannot report: treat as always changing
            return (object(),)
        ageing = tuple(summary.get(k) for k in ("capacity_fraction", "resistance_factor"))
        out.append((role, _numbers(state), ageing))
    return tuple(out)


def _numbers(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple((k, _numbers(v)) for k, v in sorted(value.items())
                     if k not in ("rng", "ageing"))
    if isinstance(value, list | tuple):
        return tuple(_numbers(v) for v in value)
    return value
