"""Lumped cell temperature: C dT/dt = q - h (T - T_ambient).

Over each interval the heat is its exact mean (from the electrical piece) and the
ambient moves linearly between its values at the two ends (the chamber ramps
linearly), for which the solution is closed form:

    T(dt) = a T0 + (1 - a) (u0 - r tau) + r dt,   a = exp(-dt / tau), tau = C / h,
    u0 = T_amb0 + q / h,  r = (T_amb1 - T_amb0) / dt

so a constant heat and a linear ramp are followed exactly. All intervals are
solved at once with `first_order`.
"""

from __future__ import annotations

import math

import numpy as np

from labctl.np_kernels import scalar
from labctl.sim.ecm import decay_powers, first_order


def temperatures(t0_c: float, dt: np.ndarray | float, heat_w: np.ndarray, ambient_c: np.ndarray | float,
                 heat_capacity_j_per_k: float, heat_transfer_w_per_k: float) -> np.ndarray:
    """Cell temperature at every grid time (len(heat_w) + 1 values).

    `dt` is the interval lengths, or one number for a uniform grid; `ambient_c` is one
    number (constant) or the ambient at every grid time.
    """
    tau = heat_capacity_j_per_k / heat_transfer_w_per_k
    log_a = -dt / tau
    one_minus_a = -math.expm1(log_a) if scalar(dt) else -np.expm1(log_a)
    if scalar(ambient_c):
        drive = one_minus_a * (ambient_c + heat_w / heat_transfer_w_per_k)
    else:
        amb0 = ambient_c[:-1]
        ramp = ambient_c[1:] - ambient_c[:-1]  # r dt
        if scalar(dt):
            weight = 1.0 - one_minus_a * tau / dt if dt > 0 else 0.0
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                weight = np.where(dt > 0, 1.0 - one_minus_a * tau / dt, 0.0)
        drive = one_minus_a * (amb0 + heat_w / heat_transfer_w_per_k) + ramp * weight
    return first_order(t0_c, log_a, drive)


def temperature_after(t0_c: float, dt: float, heat_w: float, ambient0_c: float, ambient1_c: float,
                      heat_capacity_j_per_k: float, heat_transfer_w_per_k: float) -> float:
    """One interval of `temperatures`, for a single instant (crossing searches)."""
    if dt <= 0:
        return t0_c
    tau = heat_capacity_j_per_k / heat_transfer_w_per_k
    one_minus_a = -math.expm1(-dt / tau)
    weight = 1.0 - one_minus_a * tau / dt
    return ((1.0 - one_minus_a) * t0_c + one_minus_a * (ambient0_c + heat_w / heat_transfer_w_per_k)
            + (ambient1_c - ambient0_c) * weight)


def time_to_drift(t0_c: float, ambient_c: float, heat_w: float, drift_k: float,
                  heat_capacity_j_per_k: float, heat_transfer_w_per_k: float) -> float:
    """How long until the cell is `drift_k` away from t0_c, for a constant heat and ambient.

    T(t) = T_ss + (t0 - T_ss) exp(-t / tau) with T_ss = ambient + heat / h; inf if the
    steady state is closer than `drift_k`.
    """
    tau = heat_capacity_j_per_k / heat_transfer_w_per_k
    gap = abs(ambient_c + heat_w / heat_transfer_w_per_k - t0_c)
    if gap <= drift_k:
        return math.inf
    return -tau * math.log1p(-drift_k / gap)


def mean_temperature(t0_c: float, ambient_c: float, heat_w: float, span_s: float,
                     heat_capacity_j_per_k: float, heat_transfer_w_per_k: float) -> float:
    """Time-averaged temperature over `span_s` for a constant heat and ambient."""
    if span_s <= 0:
        return t0_c
    tau = heat_capacity_j_per_k / heat_transfer_w_per_k
    steady = ambient_c + heat_w / heat_transfer_w_per_k
    return steady + (t0_c - steady) * (-math.expm1(-span_s / tau)) * tau / span_s


def cooling(t0_c: float, ambient_c: float, step_s: float, n_points: int,
            heat_capacity_j_per_k: float, heat_transfer_w_per_k: float) -> np.ndarray | None:
    """No heat, constant ambient, uniform grid: T = T_amb + (T0 - T_amb) a^k (None if the
    decay would underflow the cached kernel)."""
    log_a = -step_s * heat_transfer_w_per_k / heat_capacity_j_per_k
    if -log_a * n_points > 500.0:
        return None
    out = decay_powers(log_a, n_points)[0] * (t0_c - ambient_c)
    out += ambient_c
    return out
