"""Empirical cell ageing: capacity fade and resistance growth from cycling and from time.

Two loss mechanisms, each a square-root law (SEI growth is diffusion limited, so the
loss grows with the square root of what drives it), started a little way in
(`x0`: the cell left the factory with its SEI formed, so its fade starts at a finite
rate instead of the infinite slope of a bare sqrt):

    L_cyc = k_cyc (sqrt(X_cyc + N0) - sqrt(N0))     X_cyc: stress-weighted equivalent full cycles
    L_cal = k_cal (sqrt(X_cal + D0) - sqrt(D0))     X_cal: stress-weighted days

The state is the pair (X_cyc, X_cal). Stress makes the cell move along the same
curve faster: while it cycles, dX_cyc = f_cyc dN with

    f_cyc = a * exp(Ea_cyc / k_B (1/T_ref - 1/T)) * exp(b (C - 1))
    dN    = |dQ| / (2 Q_nominal)            (a charge plus a discharge is one cycle)

and with time dX_cal = f_cal dt_days, f_cal = a * exp(Ea_cal / k_B (1/T_ref - 1/T)) *
exp(c (SoC - 0.5)). Under constant conditions the fade is the closed form with N
replaced by f N: the same loss takes 1/f as many cycles (or days). `a` is the
cell's `acceleration`. Then

    capacity = Q_nominal (1 - L_cyc - L_cal)           (never below MIN_CAPACITY_FRACTION)
    R        = R_fresh (1 + g (L_cyc + L_cal))         every resistance of the model

The OCV curve keeps its shape over SoC of the remaining capacity (no electrode
slippage); the simulator applies the aged capacity and resistances from one step to
the next (`SimCyclerChannel`), which is far finer than any fade worth seeing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from labctl.cells.ageing_spec import AgeingParams
from labctl.cells.spec import BOLTZMANN_EV_PER_K, ZERO_C_IN_K

MIN_CAPACITY_FRACTION = 0.05  # an absurdly aged cell still has some capacity (no division by 0)
SECONDS_PER_DAY = 86400.0


@dataclass
class AgeingState:
    """How far the cell has aged; plain numbers, JSON-friendly."""

    cycle_efc_eq: float = 0.0  # X_cyc: equivalent full cycles at reference stress
    calendar_days_eq: float = 0.0  # X_cal: days at reference stress
    throughput_ah: float = 0.0  # charge moved in and out, as counted (for reports)
    age_days: float = 0.0  # time the simulation has aged the cell over

    def as_dict(self) -> dict[str, float]:
        return {"cycle_efc_eq": self.cycle_efc_eq, "calendar_days_eq": self.calendar_days_eq,
                "throughput_ah": self.throughput_ah, "age_days": self.age_days}

    @classmethod
    def from_dict(cls, d: dict) -> AgeingState:
        out = cls(**{k: float(d[k]) for k in ("cycle_efc_eq", "calendar_days_eq",
                                               "throughput_ah", "age_days") if k in d})
        if not all(math.isfinite(v) and v >= 0 for v in out.as_dict().values()):
            raise ValueError(f"ageing values must be finite and >= 0, got {d!r}")
        return out


def arrhenius(activation_energy_ev: float, temperature_c: float, reference_c: float) -> float:
    """exp(Ea / k_B (1/T_ref - 1/T)): > 1 above the reference temperature."""
    if activation_energy_ev == 0.0:
        return 1.0
    t = temperature_c + ZERO_C_IN_K
    t_ref = reference_c + ZERO_C_IN_K
    return math.exp(activation_energy_ev / BOLTZMANN_EV_PER_K * (1.0 / t_ref - 1.0 / t))


def sqrt_loss(k: float, x: float, x0: float) -> float:
    """k (sqrt(x + x0) - sqrt(x0)), written so that small x loses no digits."""
    if x <= 0.0:
        return 0.0
    return k * x / (math.sqrt(x + x0) + math.sqrt(x0))


class AgeingModel:
    """The laws above for one cell (its parameters and nominal capacity)."""

    def __init__(self, params: AgeingParams, nominal_capacity_ah: float):
        self.p = params
        self.capacity_ah = float(nominal_capacity_ah)

    # -- stress factors ----------------------------------------------------------------------
    def cycle_factor(self, temperature_c: float, c_rate: float = 1.0) -> float:
        p = self.p
        return (p.acceleration
                * arrhenius(p.cycle_activation_energy_ev, temperature_c, p.reference_temperature_c)
                * math.exp(p.c_rate_coefficient_per_c * (abs(c_rate) - 1.0)))

    def calendar_factor(self, temperature_c: float, soc: float = 0.5) -> float:
        p = self.p
        return (p.acceleration
                * arrhenius(p.calendar_activation_energy_ev, temperature_c,
                            p.reference_temperature_c)
                * math.exp(p.calendar_soc_coefficient * (soc - 0.5)))

    # -- losses ---------------------------------------------------------------------------
    def cycle_loss(self, state: AgeingState) -> float:
        return sqrt_loss(self.p.cycle_fade_per_sqrt_efc, state.cycle_efc_eq, self.p.cycle_offset_efc)

    def calendar_loss(self, state: AgeingState) -> float:
        return sqrt_loss(self.p.calendar_fade_per_sqrt_day, state.calendar_days_eq,
                         self.p.calendar_offset_days)

    def capacity_fraction(self, state: AgeingState) -> float:
        return max(MIN_CAPACITY_FRACTION,
                   1.0 - self.cycle_loss(state) - self.calendar_loss(state))

    def resistance_factor(self, state: AgeingState) -> float:
        return 1.0 + self.p.resistance_growth_per_fade * (1.0 - self.capacity_fraction(state))

    def capacity_and_resistance(self, state: AgeingState) -> tuple[float, float]:
        """(capacity_fraction, resistance_factor) with the losses worked out once (the
        simulator asks for both before every step)."""
        fraction = self.capacity_fraction(state)
        return fraction, 1.0 + self.p.resistance_growth_per_fade * (1.0 - fraction)

    # -- advancing ------------------------------------------------------------------------
    def advance(self, state: AgeingState, *, duration_s: float, temperature_c: float,
                soc: float, throughput_ah: float = 0.0, c_rate: float = 1.0) -> None:
        """Age `state` in place over an interval at one mean temperature and SoC.

        `throughput_ah`: charge moved (both directions counted), at mean `c_rate`.
        """
        if duration_s > 0:
            days = duration_s / SECONDS_PER_DAY
            state.age_days += days
            if self.p.calendar_fade_per_sqrt_day > 0:
                state.calendar_days_eq += days * self.calendar_factor(temperature_c, soc)
        if throughput_ah > 0:
            state.throughput_ah += throughput_ah
            if self.p.cycle_fade_per_sqrt_efc > 0:
                efc = throughput_ah / (2.0 * self.capacity_ah)
                state.cycle_efc_eq += efc * self.cycle_factor(temperature_c, c_rate)

    # -- closed forms under constant conditions (documentation and tests) ----------------------
    def capacity_after_cycles(self, n_efc: float, temperature_c: float,
                              c_rate: float = 1.0) -> float:
        """Capacity fraction after `n_efc` full cycles at constant conditions, cycle loss only."""
        x = n_efc * self.cycle_factor(temperature_c, c_rate)
        return 1.0 - sqrt_loss(self.p.cycle_fade_per_sqrt_efc, x, self.p.cycle_offset_efc)

    def cycles_to(self, capacity_fraction: float, temperature_c: float = 25.0,
                  c_rate: float = 1.0) -> float:
        """Full cycles until the cycle loss alone reaches 1 - capacity_fraction (inf if never)."""
        k, x0 = self.p.cycle_fade_per_sqrt_efc, self.p.cycle_offset_efc
        loss = 1.0 - capacity_fraction
        if k <= 0:
            return math.inf
        x = (loss / k + math.sqrt(x0)) ** 2 - x0
        return x / self.cycle_factor(temperature_c, c_rate)
