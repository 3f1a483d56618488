"""Built-in abuse plugin: registers its drivers, step types and analyses through the hooks.

Driver `sim-calorimeter` (role chamber): an abuse-rated calorimeter with a simulated
cell inside (labctl.sim.abuse). Step types `dsc_ramp`, `arc_hws`, `overcharge`
(labctl.steps.abuse). Analysis `abuse` (labctl.analysis.abuse).
"""

from __future__ import annotations

from typing import Any

from labctl.errors import LabctlError
from labctl.plugins import AnalysisInfo, DriverInfo, StepTypeInfo, hookimpl

_SETTINGS = {"preset", "soc", "room_c", "interlock_temperature_c", "faults",
             "default_ramp_c_per_min", "air_time_constant_s"}


def make_sim_calorimeter(binding: Any, context: Any) -> Any:
    """Station settings: preset (fixtures/abuse name or file), soc, room_c,
    interlock_temperature_c (default: the chamber's max_temperature_c), faults
    ({kind: seconds after start}, for tests), default_ramp_c_per_min, air_time_constant_s."""
    from labctl.capabilities.chamber import ChamberRanges, chamber_is_abuse_rated
    from labctl.drivers.sim_drivers import _world
    from labctl.sim.abuse.calorimeter import FAULT_KINDS, SimCalorimeter
    from labctl.sim.abuse.reactions import load_preset

    s, r = binding.settings, binding.ranges
    unknown = sorted(set(s) - _SETTINGS)
    if unknown:
        raise LabctlError(f"{binding.role}: unknown setting(s) {', '.join(unknown)} for driver "
                          f"'sim-calorimeter'; allowed: {', '.join(sorted(_SETTINGS))}")
    ranges = ChamberRanges(
        min_temperature_c=r.get("min_temperature_c", -40.0),
        max_temperature_c=r.get("max_temperature_c", 500.0),
        max_ramp_c_per_min=r.get("max_ramp_c_per_min"),
        abuse_rated=chamber_is_abuse_rated(r),
    )
    faults = s.get("faults") or {}
    if not isinstance(faults, dict) or any(k not in FAULT_KINDS for k in faults):
        raise LabctlError(f"{binding.role}: faults is a mapping of {', '.join(FAULT_KINDS)} to "
                          "seconds after the start")
    preset_ref = str(s.get("preset", "liquid-li-ion"))
    source = context.station.source
    if source and ("/" in preset_ref or preset_ref.endswith(".yaml")):
        from pathlib import Path

        preset_ref = str(Path(source).resolve().parent / preset_ref)
    room = float(s.get("room_c", 25.0))
    return SimCalorimeter(
        _world(context, room),
        load_preset(preset_ref),
        ranges,
        capacity_ah=context.cell.capacity_ah,
        interlock_temperature_c=float(s.get("interlock_temperature_c", ranges.max_temperature_c)),
        room_c=room,
        soc=float(s.get("soc", 1.0)),
        faults={k: float(v) for k, v in faults.items()},
        default_ramp_c_per_min=float(s.get("default_ramp_c_per_min", 2.0)),
        air_time_constant_s=float(s.get("air_time_constant_s", 900.0)),
    )


@hookimpl
def labctl_drivers() -> list[DriverInfo]:
    return [DriverInfo("sim-calorimeter", ("chamber",), make_sim_calorimeter,
                       "Simulated abuse-rated calorimeter (ARC/DSC) with a reacting cell inside "
                       "and hard interlocks")]


def _compile(name: str):
    def compile_step(spec):
        from labctl.steps import abuse

        return getattr(abuse, name)(spec)

    return compile_step


@hookimpl
def labctl_step_types() -> list[StepTypeInfo]:
    return [
        StepTypeInfo("dsc_ramp", "DSC-style constant heating rate to a limit in an abuse chamber",
                     _compile("compile_dsc")),
        StepTypeInfo("arc_hws", "ARC heat-wait-seek, following exotherms adiabatically",
                     _compile("compile_arc")),
        StepTypeInfo("overcharge", "Charge past the cell's voltage limit in an abuse chamber",
                     _compile("compile_overcharge")),
    ]


def _run_analysis(run: Any, **options: Any) -> Any:
    from labctl.analysis.abuse import analyze_run

    return analyze_run(run, **options)


def _command() -> Any:
    from labctl.analysis.abuse.command import abuse_command

    return abuse_command


@hookimpl
def labctl_analyses() -> list[AnalysisInfo]:
    return [AnalysisInfo("abuse", "Onset, exothermic peaks, max rate, time to runaway, total heat, "
                                  "endotherms of a DSC/ARC/overcharge run", _run_analysis, _command)]
