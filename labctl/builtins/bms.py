"""Built-in bms plugin: registers its drivers, step types and analyses through the hooks.

Driver `sim-bms` (role bms): a simulated BMS on a python-can virtual bus over a
simulated pack. Steps: bms_protection, bms_balancing, bms_soc, bms_can_timing,
bms_fault_injection, bms_current_limit, bms_measurement, bms_report. Analysis:
`labctl analyze bms RUN`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labctl.errors import LabctlError
from labctl.plugins import AnalysisInfo, DriverInfo, StepTypeInfo, hookimpl
from labctl.stations.spec import InstrumentSpec

MAP_KEYS = {"dbc", "cells", "cells_per_module", "signals", "counters", "checksums", "cycle_times",
            "checksum_algorithm"}
SIM_KEYS = MAP_KEYS | {"bus", "pack", "topology", "latency_s", "tick_s", "jitter_s",
                       "command_timeout_s", "slave_timeout_s", "protections", "balancing", "soc",
                       "soc_method", "sensor", "current_limits"}


def absolute_paths(settings: dict, folder: Path) -> dict:
    """The binding's settings with its DBC and cell file made absolute (they are relative to
    the station file), so a copy of the binding without its file (the plan's twin) still
    finds them. A cell preset name stays as it is."""
    out = dict(settings)
    dbc = out.get("dbc")
    if isinstance(dbc, str) and dbc.strip() and not Path(dbc).is_absolute():
        out["dbc"] = str((folder / dbc).resolve())
    pack = out.get("pack")
    if isinstance(pack, dict) and isinstance(pack.get("cell"), str):
        cell = Path(pack["cell"])
        if not cell.is_absolute() and (folder / cell).is_file():
            out["pack"] = {**pack, "cell": str((folder / cell).resolve())}
    return out


def signal_map(binding: InstrumentSpec, context: Any) -> Any:
    from labctl.can.signals import signal_map_for_station, signal_map_from_settings

    source = getattr(context.station, "source", None)
    if source and Path(source).is_file():
        return signal_map_for_station(source, binding.role)
    return signal_map_from_settings(binding.settings, Path.cwd(), binding.role)


def make_sim_bms(binding: InstrumentSpec, context: Any) -> Any:
    from labctl.cells.load import load_cell
    from labctl.sim.bms.config import parse_config
    from labctl.sim.bms.sim import SimBms

    unknown = sorted(set(binding.settings) - SIM_KEYS)
    if unknown:
        raise LabctlError(f"{binding.role}: unknown setting(s) {', '.join(unknown)} for driver "
                          f"'sim-bms'; allowed: {', '.join(sorted(SIM_KEYS))}")
    smap = signal_map(binding, context)
    pack = binding.settings.get("pack") or {}
    cell = context.cell
    if isinstance(pack, dict) and pack.get("cell"):
        ref = str(pack["cell"])
        source = getattr(context.station, "source", None)
        if source and (Path(source).parent / ref).is_file():
            ref = str(Path(source).parent / ref)
        cell = load_cell(ref)
    if cell.model is None:
        raise LabctlError(f"{binding.role}: cell {cell.name!r} has no model section to simulate")
    cfg = parse_config(binding.settings, cell, smap.cells, smap.cells_per_module, binding.role)
    return SimBms(smap, cfg, context.clock, binding.settings.get("bus"))


def _compile(keyword: str):
    def compile_step(spec: Any) -> Any:
        from labctl.steps import bms

        return bms.compiler(keyword)(spec)
    return compile_step


def _bms_command() -> Any:
    from labctl.analysis.bms.command import bms_command

    return bms_command()


def _bms_run(run: Any, **options: Any) -> Any:
    from labctl.analysis.bms.report import analyze_run

    return analyze_run(getattr(run, "path", run), **options)


@hookimpl
def labctl_drivers() -> list[DriverInfo]:
    return [DriverInfo("sim-bms", ("bms",), make_sim_bms,
                       "Simulated BMS on a python-can virtual bus over a simulated series pack "
                       "(protections, balancing, SoC, topologies, fault injection; virtual time)",
                       settings=frozenset(SIM_KEYS))]


@hookimpl
def labctl_step_types() -> list[StepTypeInfo]:
    steps = {
        "bms_protection": "Ramp a condition until the BMS trips; threshold, delay, contactor, recovery",
        "bms_balancing": "Impose a cell spread and measure balancing: time to 10 mV, energy",
        "bms_soc": "Drive profile; BMS SoC against the reference Coulomb count",
        "bms_can_timing": "Cycle time, jitter, timeouts, counters and checksums of every message",
        "bms_fault_injection": "Inject a fault; expect its flag and the safe state in time",
        "bms_current_limit": "Reported charge/discharge current limits against the specified "
                             "table over temperature and SoC (power derating)",
        "bms_measurement": "Reported pack voltage, current, power, cell voltages and "
                           "temperatures against the bench's references at several currents",
        "bms_report": "Write the BMS validation report into the run directory",
    }
    return [StepTypeInfo(k, d, compile=_compile(k)) for k, d in steps.items()]


@hookimpl
def labctl_analyses() -> list[AnalysisInfo]:
    return [AnalysisInfo("bms", "BMS validation report: every check with limits and verdict, "
                                "plots of cell voltages, balancing and trips",
                         run=_bms_run, command=_bms_command)]
