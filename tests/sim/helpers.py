"""Small builders for simulator tests: synthetic cells with known parameters."""

from __future__ import annotations

import numpy as np

from labctl.capabilities import CyclerRanges, LoggingPolicy, SafetyLimits
from labctl.cells.spec import CellLimits, CellModel, CellSpec, RCPair, Table, ThermalModel
from labctl.clock import VirtualClock
from labctl.sim import SimCyclerChannel, SimWorld

WIDE_LIMITS = CellLimits(max_voltage_v=10.0, min_voltage_v=0.0, max_charge_current_a=100.0,
                         max_discharge_current_a=100.0, max_temperature_c=200.0,
                         min_temperature_c=-100.0)
RANGES = CyclerRanges(max_current_a=100.0, max_voltage_v=10.0, min_voltage_v=0.0)
# Thermal mass so large the cell stays at its start temperature (no coupling needed).
INERT = ThermalModel(heat_capacity_j_per_k=1e12, heat_transfer_w_per_k=1.0)


def table(soc, values) -> Table:
    return Table(np.asarray(soc, dtype=float), np.asarray(values, dtype=float))


def make_cell(*, ocv: Table, r0: float | Table = 0.05, rc: tuple[tuple[float, float], ...] = (),
              capacity_ah: float = 2.0, thermal: ThermalModel = INERT,
              activation_energy_ev: float = 0.0, initial_soc: float = 0.5,
              initial_temperature_c: float = 25.0) -> CellSpec:
    r0_table = r0 if isinstance(r0, Table) else Table.constant(r0)
    pairs = tuple(RCPair(Table.constant(r), Table.constant(tau)) for r, tau in rc)
    model = CellModel(ocv, r0_table, pairs, thermal, activation_energy_ev=activation_energy_ev,
                      initial_soc=initial_soc, initial_temperature_c=initial_temperature_c)
    return CellSpec("synthetic", "other", capacity_ah, 3.0, WIDE_LIMITS, model)


def linear_cell(a: float = 3.0, b: float = 1.0, **kw) -> CellSpec:
    """OCV(s) = a + b s."""
    return make_cell(ocv=table([0.0, 1.0], [a, a + b]), **kw)


def channel(cell: CellSpec, *, clock: VirtualClock | None = None, world: SimWorld | None = None,
            **kw) -> SimCyclerChannel:
    world = world or SimWorld(clock or VirtualClock())
    return SimCyclerChannel(world, cell, ranges=kw.pop("ranges", RANGES), **kw)


def run(ch: SimCyclerChannel, step, limits: SafetyLimits | None = None,
        logging: LoggingPolicy | None = None):
    """Run a step to its end: (list of batches, StepEnd)."""
    gen = ch.run_step(step, limits or SafetyLimits(), logging or step.logging)
    batches = []
    while True:
        try:
            batches.append(next(gen))
        except StopIteration as stop:
            return batches, stop.value


def joined(batches) -> dict[str, np.ndarray]:
    names = ("step_time_s", "voltage_v", "current_a", "temperature_c", "charge_ah",
             "discharge_ah", "charge_wh", "discharge_wh")
    return {n: np.concatenate([getattr(b, n) for b in batches]) for n in names}
