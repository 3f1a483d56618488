"""Built-in impedance plugin: registers its drivers, step types and analyses through the hooks.

Drivers: `sim-pstat` (simulated potentiostat on the simulated cell) and
`sim-press` (simulated stack-pressure rig). Steps: `eis:` and `pressure:`.
Analyses: `labctl analyze eis`, `drt`, `soc-eis`, `soh-eis` and `soc-learned`.
"""

from __future__ import annotations

from typing import Any

from labctl.errors import LabctlError
from labctl.plugins import AnalysisInfo, DriverInfo, StepTypeInfo, hookimpl
from labctl.stations.spec import InstrumentSpec

_PSTAT_SETTINGS = {"noise", "dc_noise_v", "seed", "overhead_s"}
_PRESS_SETTINGS = {"initial_pressure_mpa", "default_ramp_mpa_per_s", "noise_mpa", "seed"}


def _check_settings(binding: InstrumentSpec, allowed: set[str]) -> None:
    unknown = sorted(set(binding.settings) - allowed)
    if unknown:
        raise LabctlError(
            f"{binding.role}: unknown setting(s) {', '.join(unknown)} for driver {binding.driver!r}; "
            f"allowed: {', '.join(sorted(allowed))}")


def _number(binding: InstrumentSpec, key: str, default: float, minimum: float = 0.0) -> float:
    value = binding.settings.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= minimum:
        raise LabctlError(f"{binding.role}: setting {key} must be a number >= {minimum:g}, "
                          f"got {value!r}")
    return float(value)


def _world(context: Any) -> Any:
    from labctl.sim.world import SimWorld

    return context.shared_object("sim-world", lambda: SimWorld(context.clock))


def make_sim_pstat(binding: InstrumentSpec, context: Any) -> Any:
    from labctl.capabilities.potentiostat import PotentiostatRanges
    from labctl.sim.potentiostat import SimPotentiostat

    _check_settings(binding, _PSTAT_SETTINGS)
    if context.cell.model is None and context.cell.extra.get("impedance") is None:
        raise LabctlError(f"cell {context.cell.name!r} ({context.cell.source}) has neither a "
                          "'model:' nor an 'impedance:' section, so sim-pstat cannot simulate it")
    try:
        ranges = PotentiostatRanges.from_mapping(binding.ranges)
    except (TypeError, ValueError) as exc:
        raise LabctlError(f"{binding.role}: bad ranges ({exc})") from None
    return SimPotentiostat(_world(context), context.cell, ranges,
                           noise=_number(binding, "noise", 0.0),
                           dc_noise_v=_number(binding, "dc_noise_v", 0.0),
                           seed=int(_number(binding, "seed", 0)),
                           overhead_s=_number(binding, "overhead_s", 0.05))


def make_sim_press(binding: InstrumentSpec, context: Any) -> Any:
    from labctl.capabilities.pressure import PressureRanges
    from labctl.sim.pressure import SimPressureRig

    _check_settings(binding, _PRESS_SETTINGS)
    ranges = PressureRanges.from_mapping(binding.ranges)
    imp = context.cell.extra.get("impedance")
    contact = getattr(imp, "contact", None)
    # Without a setting the rig starts where the cell's fixture holds it without a rig.
    initial = contact.default_pressure_mpa if contact is not None else 0.0
    initial = _number(binding, "initial_pressure_mpa", initial)
    if not ranges.min_pressure_mpa <= initial <= ranges.max_pressure_mpa:
        raise LabctlError(f"{binding.role}: initial_pressure_mpa {initial:g} is outside the "
                          f"rig's range {ranges.min_pressure_mpa:g}..{ranges.max_pressure_mpa:g} MPa")
    return SimPressureRig(_world(context), ranges, initial_pressure_mpa=initial,
                          default_ramp_mpa_per_s=_number(binding, "default_ramp_mpa_per_s", 0.5,
                                                         1e-9),
                          noise_mpa=_number(binding, "noise_mpa", 0.0),
                          seed=int(_number(binding, "seed", 0)))


def _compile_eis(spec: Any) -> Any:
    from labctl.steps.eis import compile_eis

    return compile_eis(spec)


def _compile_pressure(spec: Any) -> Any:
    from labctl.steps.pressure import compile_pressure

    return compile_pressure(spec)


def _eis_command() -> Any:
    from labctl.analysis.eis.command import eis_command

    return eis_command()


def _drt_command() -> Any:
    from labctl.analysis.eis.drt_command import drt_command

    return drt_command()


def _drt_run(run: Any, **options: Any) -> Any:
    from labctl.analysis.eis.drt_runs import analyze_run

    return analyze_run(getattr(run, "path", run), **options)


def _soc_eis_command() -> Any:
    from labctl.analysis.soc.eis_command import soc_eis_command

    return soc_eis_command()


def _soh_eis_command() -> Any:
    from labctl.analysis.soc.eis_command import soh_eis_command

    return soh_eis_command()


def _soc_learned_command() -> Any:
    from labctl.analysis.soc.eis_command import soc_learned_command

    return soc_learned_command()


def _eis_run(run: Any, **options: Any) -> Any:
    from labctl.analysis.eis.runs import analyze_run

    return analyze_run(getattr(run, "path", run), **options)


@hookimpl
def labctl_drivers() -> list[DriverInfo]:
    return [
        DriverInfo("sim-pstat", ("pstat",), make_sim_pstat,
                   "Simulated potentiostat: EIS of the simulated cell at its SoC, temperature "
                   "and stack pressure (virtual time)"),
        DriverInfo("sim-press", ("press",), make_sim_press,
                   "Simulated stack-pressure rig (linear ramp to set-point, then hold)"),
    ]


@hookimpl
def labctl_step_types() -> list[StepTypeInfo]:
    return [
        StepTypeInfo("eis", "Measure an impedance spectrum (PEIS/GEIS) on the potentiostat",
                     compile=_compile_eis),
        StepTypeInfo("pressure", "Set the stack pressure (MPa), wait until reached, hold, log",
                     compile=_compile_pressure),
    ]


@hookimpl
def labctl_analyses() -> list[AnalysisInfo]:
    return [
        AnalysisInfo("eis", "Fit impedance spectra (a run's or a file's), Lin-KK, conductivity, "
                            "Arrhenius", run=_eis_run, command=_eis_command),
        AnalysisInfo("drt", "Distribution of relaxation times of impedance spectra "
                            "(Tikhonov, non-negative, GCV/L-curve), peaks", run=_drt_run,
                     command=_drt_command),
        AnalysisInfo("soc-eis", "State of charge and temperature from one spectrum, trained on "
                                "runs at known SoC, evaluated on held-out runs",
                     command=_soc_eis_command),
        AnalysisInfo("soh-eis", "Resistance and DRT growth against capacity retention, SoH "
                                "from one spectrum (cycle-life-eis runs)",
                     command=_soh_eis_command),
        # Registered here with the other state estimators of issue 15 (docs/soc.md).
        AnalysisInfo("soc-learned", "scikit-learn SoC estimators (MLP, SVR) trained on drive-cycle "
                                    "runs against the EKF on a held-out run",
                     command=_soc_learned_command),
    ]
