"""A cell as labctl knows it: identity, limits, and (optionally) a model to simulate.

Validation uses `CellSpec.limits` and `capacity_ah`; the simulator uses
`CellSpec.model`. Cell files (YAML) are turned into these by `labctl.cells.load`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BOLTZMANN_EV_PER_K = 8.617333262e-5
ZERO_C_IN_K = 273.15


@dataclass(frozen=True)
class Table:
    """A value as a function of SoC (0..1) and optionally temperature (°C).

    `values` has shape (len(soc),) for a SoC-only table, or
    (len(temperature_c), len(soc)) for a 2-D table. Interpolation is linear and
    clamps at the ends (no extrapolation).
    """

    soc: np.ndarray
    values: np.ndarray
    temperature_c: np.ndarray | None = None

    @classmethod
    def constant(cls, value: float) -> Table:
        return cls(np.array([0.0, 1.0]), np.array([value, value], dtype=float))

    @property
    def depends_on_temperature(self) -> bool:
        return self.temperature_c is not None

    def __call__(self, soc: np.ndarray | float, temperature_c: float = 25.0) -> np.ndarray:
        """Vectorised over `soc`; temperature is one value for the whole call."""
        if self.temperature_c is None:
            return np.interp(soc, self.soc, self.values)
        temps = self.temperature_c
        if temperature_c <= temps[0]:
            return np.interp(soc, self.soc, self.values[0])
        if temperature_c >= temps[-1]:
            return np.interp(soc, self.soc, self.values[-1])
        j = int(np.searchsorted(temps, temperature_c)) - 1
        w = (temperature_c - temps[j]) / (temps[j + 1] - temps[j])
        low = np.interp(soc, self.soc, self.values[j])
        high = np.interp(soc, self.soc, self.values[j + 1])
        return low + w * (high - low)


@dataclass(frozen=True)
class RCPair:
    """One resistor-capacitor pair; tau = R * C."""

    r_ohm: Table
    tau_s: Table


@dataclass(frozen=True)
class ThermalModel:
    """Lumped cell: C dT/dt = heat - h (T - T_ambient)."""

    heat_capacity_j_per_k: float
    heat_transfer_w_per_k: float


@dataclass(frozen=True)
class CellModel:
    """Equivalent-circuit model: OCV(SoC, T) + R0 + RC pairs, with a lumped thermal model.

    Resistances given as SoC-only tables follow Arrhenius in temperature:
    R(T) = R(T_ref) * exp(Ea / k_B * (1/T - 1/T_ref)). Tables that already
    depend on temperature are used as they are.
    """

    ocv_v: Table
    r0_ohm: Table
    rc_pairs: tuple[RCPair, ...]
    thermal: ThermalModel
    activation_energy_ev: float = 0.0
    reference_temperature_c: float = 25.0
    initial_soc: float = 0.5
    initial_temperature_c: float = 25.0
    ageing: Any = None  # labctl.cells.ageing_spec.AgeingParams, or None: the cell never ages

    def arrhenius_factor(self, temperature_c: float) -> float:
        if self.activation_energy_ev == 0.0:
            return 1.0
        t = temperature_c + ZERO_C_IN_K
        t_ref = self.reference_temperature_c + ZERO_C_IN_K
        # math.exp: a scalar (the simulator asks for several per step; np.exp costs 10x more)
        return math.exp(self.activation_energy_ev / BOLTZMANN_EV_PER_K * (1.0 / t - 1.0 / t_ref))


@dataclass(frozen=True)
class CellLimits:
    """The cell's datasheet limits. Currents are magnitudes."""

    max_voltage_v: float
    min_voltage_v: float
    max_charge_current_a: float
    max_discharge_current_a: float
    max_temperature_c: float
    min_temperature_c: float


@dataclass(frozen=True)
class CellSpec:
    """A cell as its cell file describes it: identity, capacity, limits, optional model."""

    name: str
    chemistry: str  # LFP, NMC, LTO, solid-state-bulk, solid-state-thin-film, other
    capacity_ah: float
    nominal_voltage_v: float
    limits: CellLimits
    model: CellModel | None = None
    source: str | None = None  # the file it was loaded from
    extra: dict = field(default_factory=dict)  # anything else the file carried (datasheet, notes)
