"""GITT: relaxed OCV vs SoC and the Weppner-Huggins chemical diffusion coefficient per pulse.

A pulse is a charge or discharge segment with a rest before and after it. Per
pulse of length tau (s):

- dE_s: steady-state change, relaxed voltage after the following rest minus the
  relaxed voltage before the pulse (mean of each rest's last `average_s`);
- dE_t: transient change during the pulse WITHOUT the IR drop: V is fitted as
  a + b sqrt(t - t_start) over the part of the pulse given by `sqrt_fit` (fractions
  of tau, default 10 %..100 %: the first instants carry the RC/double-layer
  transient), and dE_t = b sqrt(tau); the IR drop is a minus the voltage just
  before the pulse (`ir_drop_v`);
- D (m^2/s) = 4 L^2 / (pi tau) (dE_s / dE_t)^2, L the diffusion length (m).

The mass form D = 4/(pi tau) (m_B V_M / (M_B S))^2 (dE_s/dE_t)^2 is the same with
L = m_B V_M / (M_B S) (`diffusion_length_from_mass`, SI units). Without L the
geometry-free D/L^2 (1/s) is still reported. Both rest on semi-infinite
diffusion during the pulse, tau << L^2/D; `tau_d_over_l2` = tau D / L^2 is
reported for every pulse and `valid` is False when it exceeds 0.1, or when
the rest before the pulse was shorter than `min_rest_s` (its voltage not relaxed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from labctl.analysis.ecm.segments import (
    REST,
    Samples,
    Segment,
    coulomb_soc,
    edge_value,
    load_samples,
    segment_temperature,
    split_segments,
)
from labctl.errors import LabctlError

VALID_TAU_D_OVER_L2 = 0.1

PULSE_COLUMNS = [
    "pulse_index", "step_index", "direction", "start_time_s", "duration_s", "current_a",
    "soc_start", "soc_end", "temperature_c", "ocv_before_v", "ocv_after_v", "delta_es_v",
    "ir_drop_v", "sqrt_slope_v_per_sqrt_s", "delta_et_v", "sqrt_fit_rmse_v",
    "d_over_l2_per_s", "tau_d_over_l2", "d_m2_per_s", "rest_before_s", "rest_after_s", "valid",
]


def diffusion_length_from_mass(mass_kg: float, molar_volume_m3_per_mol: float,
                               molar_mass_kg_per_mol: float, area_m2: float) -> float:
    """L = m_B V_M / (M_B S) in metres (the electrode's volume over its area)."""
    values = (mass_kg, molar_volume_m3_per_mol, molar_mass_kg_per_mol, area_m2)
    if any(not (x > 0) for x in values):
        raise LabctlError("diffusion length: mass, molar volume, molar mass and area must be > 0")
    return mass_kg * molar_volume_m3_per_mol / (molar_mass_kg_per_mol * area_m2)


def weppner_huggins(tau_s: float, delta_es_v: float, delta_et_v: float,
                    diffusion_length_m: float = 1.0) -> float:
    """D = 4 L^2 / (pi tau) (dE_s / dE_t)^2; with L = 1 this is D / L^2 in 1/s."""
    return 4.0 * diffusion_length_m**2 / (math.pi * tau_s) * (delta_es_v / delta_et_v) ** 2


@dataclass(frozen=True)
class GittResult:
    pulses: pd.DataFrame  # PULSE_COLUMNS, one row per pulse
    ocv: pd.DataFrame  # relaxed points: soc, ocv_v, end_time_s (the rests around each pulse)
    capacity_ah: float  # the capacity SoC was counted against


def _rest_end_voltage(s: Samples, seg: Segment, average_s: float) -> float:
    t = s.time_s[seg.start:seg.stop]
    return float(np.mean(s.voltage_v[seg.start:seg.stop][t >= t[-1] - average_s]))


def _sqrt_fit(t: np.ndarray, v: np.ndarray, tau: float, window: tuple[float, float]
              ) -> tuple[float, float, float]:
    """(a, b, RMS residual) of V = a + b sqrt(t) fitted over t in window * tau."""
    sel = (t >= window[0] * tau) & (t <= window[1] * tau)
    if np.count_nonzero(sel) < 3:
        return math.nan, math.nan, math.nan
    x = np.sqrt(t[sel])
    b, a = np.polyfit(x, v[sel], 1)
    resid = v[sel] - (a + b * x)
    return float(a), float(b), float(np.sqrt(np.mean(resid**2)))


def gitt(timeseries: pd.DataFrame, *, capacity_ah: float | None = None,
         initial_soc: float | None = None, diffusion_length_m: float | None = None,
         sqrt_fit: tuple[float, float] = (0.1, 1.0), min_rest_s: float = 60.0,
         average_s: float = 30.0, rest_current_a: float | None = None,
         default_temperature_c: float = float("nan")) -> GittResult:
    """Per-pulse GITT analysis of a run of pulses separated by rests (see module docstring)."""
    if not 0 <= sqrt_fit[0] < sqrt_fit[1]:
        raise LabctlError(f"GITT: sqrt_fit must be (start, stop) fractions with start < stop, "
                          f"got {sqrt_fit}")
    s = load_samples(timeseries, "GITT timeseries")
    soc, cap = coulomb_soc(s.time_s, s.current_a, capacity_ah, initial_soc)
    segs = split_segments(s, rest_current_a)
    rows = []
    ocv_rows = []
    for k, seg in enumerate(segs):
        if seg.kind == REST or k == 0 or k + 1 >= len(segs):
            continue
        before, after = segs[k - 1], segs[k + 1]
        if before.kind != REST or after.kind != REST:
            continue
        tau = seg.duration_s
        t_rel = s.time_s[seg.start:seg.stop] - seg.start_time_s
        v = s.voltage_v[seg.start:seg.stop]
        e_before = _rest_end_voltage(s, before, average_s)
        e_after = _rest_end_voltage(s, after, average_s)
        pre = slice(before.start, before.stop)
        v_pre_edge = edge_value(s.time_s[pre], s.voltage_v[pre], seg.start_time_s, window_s=30.0)
        intercept, slope, rmse = _sqrt_fit(t_rel, v, tau, sqrt_fit)
        ir = intercept - v_pre_edge
        d_es = e_after - e_before
        d_et = slope * math.sqrt(tau)
        d_l2 = weppner_huggins(tau, d_es, d_et) if d_et != 0 and math.isfinite(d_et) else math.nan
        rest_before = before.duration_s
        rest_after = after.duration_s
        tau_ratio = tau * d_l2
        valid = bool(tau_ratio <= VALID_TAU_D_OVER_L2 and rest_before >= min_rest_s
                     and rest_after >= min_rest_s)
        ocv_rows.append((float(soc[before.stop - 1]), e_before, float(s.time_s[before.stop - 1])))
        ocv_rows.append((float(soc[after.stop - 1]), e_after, float(s.time_s[after.stop - 1])))
        rows.append((
            len(rows), seg.step_index, seg.kind, seg.start_time_s, tau, seg.mean_current_a,
            float(soc[seg.start]), float(soc[after.start]),
            segment_temperature(s, seg, default_temperature_c), e_before, e_after, d_es, ir,
            slope, d_et, rmse, d_l2, tau_ratio,
            d_l2 * diffusion_length_m**2 if diffusion_length_m is not None else math.nan,
            rest_before, rest_after, valid,
        ))
    if not rows:
        raise LabctlError("GITT: no pulse with a rest before and after it found; expected "
                          "charge or discharge pulses separated by rests (current ~ 0)")
    pulses = pd.DataFrame(rows, columns=PULSE_COLUMNS)
    ocv = pd.DataFrame(ocv_rows, columns=["soc", "ocv_v", "end_time_s"]).drop_duplicates("end_time_s")
    return GittResult(pulses, ocv.reset_index(drop=True), cap)


__all__ = ["GittResult", "PULSE_COLUMNS", "diffusion_length_from_mass", "gitt", "weppner_huggins"]
