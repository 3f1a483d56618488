"""Simulated potentiostat: measures the impedance of the same simulated cell the cycler drives.

The cell's present state (SoC, temperature) comes from the simulated cycler
channel in the shared `SimWorld` (its `true_state`, i.e. the last computed
sample), the stack pressure from the simulated pressure rig at each point's
instant; without a cycler the cell is at its model's initial state and the
world's ambient temperature. The spectrum is the closed-form circuit of
`sim/impedance.py`.

Time: each point takes (settle + cycles x averages) periods plus a fixed
`overhead_s` per point (range changes, integration set-up); the sweep moves
the shared clock by the sum. Noise: Gaussian, `noise` x |Z| on each of Z' and Z''
(seeded); the DC voltage carries `dc_noise_v`.

DC bias: GEIS with a DC current, or PEIS at a DC potential other than open
circuit (current = (E - OCV) / R_dc with R_dc the circuit's DC resistance), moves
charge; the cell's SoC is updated through the cycler channel's public state.
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

import labctl
from labctl.capabilities.potentiostat import (
    EisMode,
    EisResult,
    EisSweep,
    PotentiostatRanges,
    sweep_problems,
)
from labctl.cells.spec import CellSpec
from labctl.errors import InstrumentError
from labctl.sim.pcg64 import default_rng

if TYPE_CHECKING:
    from labctl.sim.impedance import ImpedanceModel


class SimPotentiostat:
    def __init__(self, world, cell: CellSpec, ranges: PotentiostatRanges, *, noise: float = 0.0,
                 dc_noise_v: float = 0.0, seed: int = 0, overhead_s: float = 0.05):
        if not (noise >= 0 and dc_noise_v >= 0 and overhead_s >= 0):
            raise ValueError("noise, dc_noise_v and overhead_s must be >= 0")
        self.world = world
        self.cell = cell
        self.ranges = ranges
        self.noise = float(noise)
        self.dc_noise_v = float(dc_noise_v)
        self.seed = int(seed)
        self.overhead_s = float(overhead_s)
        self.rng = default_rng(seed)
        if cell.extra.get("impedance") is None and cell.model is None:  # ImpedanceModel's check
            raise ValueError(f"cell {cell.name!r} has neither a model nor an impedance section")
        self.excitation_on = False

    @cached_property
    def model(self) -> ImpedanceModel:
        """The cell's impedance circuit, made at the first use: the default station has a
        potentiostat, and a run that only cycles should not import the impedance modules."""
        from labctl.sim.impedance import ImpedanceModel

        return ImpedanceModel(self.cell)

    def identify(self) -> dict[str, str]:
        return {"make": "labctl", "model": "sim-pstat", "serial": f"SIM-PS-{self.seed}",
                "firmware": labctl.__version__}

    # -- the cell ---------------------------------------------------------------------------
    def cell_state(self) -> tuple[float, float]:
        """(SoC, temperature_c) of the simulated cell now."""
        channel = self.world.cell_channel
        if channel is not None:
            state = channel.true_state
            return float(state.soc), float(state.temperature_c)
        m = self.cell.model
        soc = m.initial_soc if m is not None else 0.5
        now = self.world.clock.now()
        return soc, float(self.world.ambient_c_at(np.array([now]))[0])

    def resistance_factor(self) -> float:
        """The cell's ageing resistance factor (1 when fresh or not cycled by a sim cycler)."""
        channel = self.world.cell_channel
        summary = getattr(channel, "ageing_summary", None)
        return float(summary()["resistance_factor"]) if callable(summary) else 1.0

    def _ocv_v(self, soc: float, temperature_c: float) -> float:
        m = self.cell.model
        return float(m.ocv_v(soc, temperature_c)) if m is not None else 0.0

    # -- measuring ----------------------------------------------------------------------------
    def measure_spectrum(self, sweep: EisSweep) -> EisResult:
        problems = sweep_problems(sweep, self.ranges)
        if problems:
            raise InstrumentError("sim-pstat: " + "; ".join(msg for _, msg in problems))
        clock = self.world.clock
        start = clock.now()
        f = sweep.frequencies_hz()
        elapsed = np.cumsum(sweep.point_durations_s() + self.overhead_s)
        times = start + elapsed
        soc, temp = self.cell_state()
        aged = self.resistance_factor()
        pressures = self._pressures(times)
        if pressures is None or np.ptp(pressures) == 0:
            p0 = None if pressures is None else float(pressures[0])
            z = self.model.impedance(f, soc, temp, p0, aged)
            values = self.model.values(soc, temp, p0, aged)
        else:  # the rig is still moving: each point sees its own pressure
            z = np.array([self.model.impedance(f[k:k + 1], soc, temp, float(pressures[k]),
                                               aged)[0] for k in range(len(f))])
            values = self.model.values(soc, temp, float(pressures[-1]), aged)
        dc_current = self._dc_current(sweep, soc, temp, values.dc_resistance_ohm())
        self._check_overload(sweep, z, dc_current)
        if self.noise > 0:
            scale = self.noise * np.abs(z)
            z = z + self.rng.normal(0.0, 1.0, len(z)) * scale \
                + 1j * self.rng.normal(0.0, 1.0, len(z)) * scale
        self.excitation_on = True
        try:
            clock.sleep_until(float(times[-1]))
        finally:
            self.excitation_on = False
        dc_v = self._ocv_v(soc, temp) + dc_current * values.dc_resistance_ohm()
        if dc_current != 0.0:
            self._move_charge(dc_current, float(elapsed[-1]))
        dc_volts = np.full(len(f), dc_v)
        if self.dc_noise_v > 0:
            dc_volts = dc_volts + self.rng.normal(0.0, self.dc_noise_v, len(f))
        return EisResult(f, z.real.copy(), z.imag.copy(), dc_voltage_v=dc_volts,
                         dc_current_a=np.full(len(f), dc_current),
                         temperature_c=np.full(len(f), temp), elapsed_s=elapsed)

    def _pressures(self, times: np.ndarray) -> np.ndarray | None:
        press = self.world.press
        if press is not None:
            return press.pressure_at(times)
        return None

    def _dc_current(self, sweep: EisSweep, soc: float, temp: float, r_dc: float) -> float:
        if sweep.dc_bias is None:
            return 0.0
        if sweep.mode is EisMode.GEIS:
            return float(sweep.dc_bias)
        if r_dc <= 0:
            return 0.0
        return (float(sweep.dc_bias) - self._ocv_v(soc, temp)) / r_dc

    def _check_overload(self, sweep: EisSweep, z: np.ndarray, dc_current: float) -> None:
        """A real potentiostat reports an overload instead of a spectrum; so does this one."""
        amp_peak = math.sqrt(2.0) * sweep.amplitude
        if sweep.mode is EisMode.PEIS:
            current = abs(dc_current) + amp_peak / float(np.min(np.abs(z)))
            if current > self.ranges.max_current_a:
                raise InstrumentError(
                    f"sim-pstat: current overload: {sweep.amplitude:g} V rms on |Z| down to "
                    f"{float(np.min(np.abs(z))):.4g} Ohm needs {current:.4g} A peak; the range is "
                    f"max_current_a {self.ranges.max_current_a:g} A (lower the amplitude)")
        else:
            volts = amp_peak * float(np.max(np.abs(z)))
            if volts > self.ranges.max_voltage_v:
                raise InstrumentError(
                    f"sim-pstat: voltage overload: {sweep.amplitude:g} A rms on |Z| up to "
                    f"{float(np.max(np.abs(z))):.4g} Ohm needs {volts:.4g} V peak; the range is "
                    f"max_voltage_v {self.ranges.max_voltage_v:g} V (lower the amplitude)")

    def _move_charge(self, current_a: float, duration_s: float) -> None:
        channel = self.world.cell_channel
        if channel is None:
            return
        state = channel.get_state()
        soc = state["soc"] + current_a * duration_s / 3600.0 / self.cell.capacity_ah
        state["soc"] = min(1.0, max(0.0, soc))
        channel.set_state(state)

    def safe_state(self) -> None:
        self.excitation_on = False

    def close(self) -> None:
        self.safe_state()
