"""Builders shared by the procedure tests: cells, stations and synthetic results."""

from __future__ import annotations

from labctl.cells.spec import CellLimits, CellSpec
from labctl.records import StepResult
from labctl.stations.spec import InstrumentSpec, StationSpec


def make_cell(
    name: str,
    capacity_ah: float,
    v_max: float,
    v_min: float,
    charge_c: float,
    discharge_c: float,
    t_max: float = 60.0,
    t_min: float = -20.0,
) -> CellSpec:
    return CellSpec(
        name=name,
        chemistry=name.split("-")[0].upper(),
        capacity_ah=capacity_ah,
        nominal_voltage_v=(v_max + v_min) / 2,
        limits=CellLimits(
            max_voltage_v=v_max,
            min_voltage_v=v_min,
            max_charge_current_a=charge_c * capacity_ah,
            max_discharge_current_a=discharge_c * capacity_ah,
            max_temperature_c=t_max,
            min_temperature_c=t_min,
        ),
        source=f"fixtures/cells/{name}.yaml",
    )


def make_station(chamber: bool = False, max_current_a: float = 10.0) -> StationSpec:
    instruments = {
        "cycler": InstrumentSpec(
            "cycler", "sim-cycler", ranges={"max_current_a": max_current_a, "max_voltage_v": 5.0}
        )
    }
    if chamber:
        instruments["chamber"] = InstrumentSpec(
            "chamber",
            "sim-chamber",
            ranges={"min_temperature_c": -40.0, "max_temperature_c": 150.0},
        )
    return StationSpec("bench-a", instruments, source="instruments/bench-a.yaml")


def result(
    text: str = "",
    *,
    charge_ah: float = 0.0,
    discharge_ah: float = 0.0,
    end_voltage_v: float = 3.3,
    end_kind: str = "condition",
    max_temperature_c: float = 25.0,
    charge_wh: float = 0.0,
    discharge_wh: float = 0.0,
    duration_s: float = 1.0,
) -> StepResult:
    """A synthetic StepResult with known numbers."""
    return StepResult(
        step_index=1,
        cycle_index=1,
        kind="x",
        text=text,
        path="",
        end_kind=end_kind,
        end_reason="",
        start_time_s=0.0,
        end_time_s=duration_s,
        duration_s=duration_s,
        n_samples=2,
        charge_capacity_ah=charge_ah,
        discharge_capacity_ah=discharge_ah,
        charge_energy_wh=charge_wh,
        discharge_energy_wh=discharge_wh,
        start_voltage_v=3.3,
        end_voltage_v=end_voltage_v,
        mean_voltage_v=3.3,
        mean_current_a=0.0,
        end_current_a=0.0,
        max_temperature_c=max_temperature_c,
        end_temperature_c=max_temperature_c,
    )


def drive(plan, respond, limit: int | None = None):
    """Run a plan to the end (or `limit` steps); respond(planned_step) -> StepResult.

    Returns the planned steps.
    """
    seen = []
    try:
        planned = next(plan)
        while limit is None or len(seen) < limit:
            seen.append(planned)
            planned = plan.send(respond(planned))
    except StopIteration:
        pass
    return seen
