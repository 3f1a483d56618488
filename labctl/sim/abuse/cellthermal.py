"""The lumped heat balance of a cell in a calorimeter, integrated with scipy's solve_ivp.

    C dT/dt = sum_i H_i dalpha_i/dt + P_el + h (T_air(t) - T)      (h = 0 when adiabatic)
    dsoc/dt = I / (3600 Q)

State y = [T, soc, alpha_1 .. alpha_n]. P_el is the electrical heat of a current
through the cell: I^2 R while the cell can still store the charge (soc < 1) and
all of I V once it is full (overcharge drives side reactions instead of storage).
The air is a program (`AirProgram`): a linear ramp to a set-point, tracking the
cell (adiabatic, no exchange), heaters off (an exponential fall to the room), or a
power-compensated DSC ramp (the instrument holds the cell on the linear program and
the heat flow is the compensating power: whatever the reactions release or absorb).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

from labctl.sim.abuse.reactions import R_GAS_J_PER_MOL_K, ZERO_C_K, AbusePreset

RAMP, ADIABATIC, OFF, DSC = "ramp", "adiabatic", "off", "dsc"


@dataclass(frozen=True)
class AirProgram:
    """The calorimeter air from time t0 on."""

    kind: str  # RAMP, ADIABATIC, OFF or DSC
    t0: float
    air0_c: float
    target_c: float = 25.0  # RAMP: set-point; OFF: the room
    rate_c_per_s: float = 1.0  # RAMP
    tau_s: float = 900.0  # OFF: how fast the closed, unheated calorimeter cools

    @property
    def ramp_end(self) -> float:
        if self.kind not in (RAMP, DSC):
            return math.inf
        return self.t0 + abs(self.target_c - self.air0_c) / self.rate_c_per_s

    def slope_c_per_s(self, t: float) -> float:
        """d(air)/dt of a RAMP or DSC program."""
        if t >= self.ramp_end:
            return 0.0
        return math.copysign(self.rate_c_per_s, self.target_c - self.air0_c)

    def air_c(self, t: np.ndarray | float) -> np.ndarray | float:
        """Air temperature (not for ADIABATIC: there the air is the cell)."""
        dt = np.maximum(np.asarray(t, dtype=float) - self.t0, 0.0)
        if self.kind in (RAMP, DSC):
            step = np.minimum(dt * self.rate_c_per_s, abs(self.target_c - self.air0_c))
            return self.air0_c + math.copysign(1.0, self.target_c - self.air0_c) * step
        if self.kind == OFF:
            return self.target_c + (self.air0_c - self.target_c) * np.exp(-dt / self.tau_s)
        raise ValueError("adiabatic air follows the cell")


class CellThermal:
    """Right-hand side and integration of the heat balance (vectorised over reactions)."""

    def __init__(self, preset: AbusePreset, capacity_ah: float):
        self.preset = preset
        self.capacity_ah = float(capacity_ah)
        rs = preset.reactions
        self.heat_j = np.array([r.heat_j for r in rs])
        self.melt = np.array([r.kind == "melting" for r in rs])
        self.a = np.array([r.frequency_factor_per_s for r in rs])
        self.ea_r = np.array([r.activation_energy_j_per_mol / R_GAS_J_PER_MOL_K for r in rs])
        self.order = np.array([r.order for r in rs])
        self.k_soc = np.array([r.soc_sensitivity for r in rs])
        self.melt_c = np.array([r.melt_c for r in rs])
        self.melt_tau = np.array([r.melt_time_constant_k_s for r in rs])
        self.c = preset.heat_capacity_j_per_k
        self.h = preset.heat_exchange_w_per_k

    def rates(self, temperature_c: float, soc: float, alpha: np.ndarray) -> np.ndarray:
        left = np.clip(1.0 - alpha, 0.0, 1.0)
        t_k = temperature_c + ZERO_C_K
        arr = self.a * np.exp(-self.ea_r / t_k + self.k_soc * (soc - 1.0)) * left ** self.order
        melt = np.maximum(temperature_c - self.melt_c, 0.0) / self.melt_tau * left
        return np.where(self.melt, melt, arr)

    def electrical_w(self, soc: float, current_a: float, voltage_v: float) -> float:
        if current_a == 0.0:
            return 0.0
        if soc < 1.0 or current_a < 0:
            return current_a * current_a * self.preset.internal_resistance_ohm
        return abs(current_a * voltage_v)

    def heat_flow_w(self, y: np.ndarray, current_a: float, voltage_v: float) -> float:
        """Heat generated inside the cell (reactions + electrical): what a DSC measures."""
        r = self.rates(y[0], y[1], y[2:])
        return float(self.heat_j @ r) + self.electrical_w(y[1], current_a, voltage_v)

    def rhs(self, t: float, y: np.ndarray, air: AirProgram, current_a: float,
            voltage_v: float) -> np.ndarray:
        r = self.rates(y[0], y[1], y[2:])
        q = float(self.heat_j @ r) + self.electrical_w(y[1], current_a, voltage_v)
        out = np.empty_like(y)
        if air.kind == DSC:  # held on the program; the compensating power absorbs q
            out[0] = air.slope_c_per_s(t)
        else:
            if air.kind != ADIABATIC:
                q += self.h * (float(air.air_c(t)) - y[0])
            out[0] = q / self.c
        out[1] = current_a / (3600.0 * self.capacity_ah)
        out[2:] = r
        return out

    def integrate(self, t0: float, y0: np.ndarray, t1: float, air: AirProgram, current_a: float,
                  voltage_v: float, events: list):
        """solve_ivp from t0 to t1 (dense output); split at the end of an air ramp (a kink)."""
        def f(t, y):
            return self.rhs(t, y, air, current_a, voltage_v)

        atol = np.full(len(y0), 1e-9)
        atol[0] = 1e-6
        return solve_ivp(f, (t0, t1), y0, method="LSODA", dense_output=True, events=events,
                         rtol=1e-7, atol=atol, max_step=60.0)
