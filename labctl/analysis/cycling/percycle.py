"""Per-cycle metrics from the samples, DCIR pulses and reference performance checks.

Capacities and energies are integrated from the timeseries itself (trapezoid rule
on current and on V*I), not taken from the cycler's counters, so the same code
serves vendor files that carry only time, voltage and current. A step's first
sample shares its time with the previous step's last one: those zero-length
intervals add nothing, so step and cycle boundaries need no special care.
Current positive = charge.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# A DCIR pulse: a constant-current step ended by time, at most this long, right after
# a rest at least REST_BEFORE_PULSE_S long (the rest's last voltage is the reference).
MAX_PULSE_S = 60.0
REST_BEFORE_PULSE_S = 60.0
# A "charging" sample for the end-of-charge voltage: above this fraction of the
# largest current (rest noise is not charging).
CHARGING_FRACTION = 0.01

CYCLE_COLUMNS = ["cycle_index", "start_time_s", "end_time_s", "n_samples",
                 "charge_capacity_ah", "discharge_capacity_ah", "charge_energy_wh",
                 "discharge_energy_wh", "coulombic_efficiency", "energy_efficiency",
                 "mean_charge_voltage_v", "mean_discharge_voltage_v", "end_of_charge_voltage_v",
                 "max_temperature_c"]


def integrate_by_cycle(ts: pd.DataFrame) -> pd.DataFrame:
    """Charge and discharge capacity and energy of every cycle, trapezoid rule.

    An interval counts for the cycle of its later sample; its charge is
    (I_k + I_k+1) / 2 * dt and its energy (V_k I_k + V_k+1 I_k+1) / 2 * dt, put on the
    charge or the discharge side by the sign of that charge.
    """
    t = ts["test_time_s"].to_numpy(float)
    v = ts["voltage_v"].to_numpy(float)
    i = ts["current_a"].to_numpy(float)
    codes, cycles = pd.factorize(ts["cycle_index"].to_numpy(), sort=True)
    n = len(cycles)
    dt = np.diff(t)
    dq = 0.5 * (i[1:] + i[:-1]) * dt / 3600.0
    p = v * i
    de = 0.5 * (p[1:] + p[:-1]) * dt / 3600.0
    where = codes[1:]
    charging = dq > 0

    def total(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.bincount(where[mask], weights=values[mask], minlength=n)

    return pd.DataFrame({
        "cycle_index": cycles.astype(int),
        "charge_capacity_ah": total(dq, charging),
        "discharge_capacity_ah": -total(dq, ~charging),
        "charge_energy_wh": total(de, charging),
        "discharge_energy_wh": -total(de, ~charging),
    })


def cycle_table(ts: pd.DataFrame) -> pd.DataFrame:
    """One row per cycle: capacities, energies, efficiencies, mean voltages (charge-
    weighted: energy / capacity), end-of-charge voltage, max temperature."""
    if len(ts) == 0:
        return pd.DataFrame(columns=CYCLE_COLUMNS)
    out = integrate_by_cycle(ts)
    g = ts.groupby("cycle_index", sort=True)
    out["start_time_s"] = g["test_time_s"].min().to_numpy()
    out["end_time_s"] = g["test_time_s"].max().to_numpy()
    out["n_samples"] = g.size().to_numpy()
    out["max_temperature_c"] = g["temperature_c"].max().to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        out["coulombic_efficiency"] = _ratio(out.discharge_capacity_ah, out.charge_capacity_ah)
        out["energy_efficiency"] = _ratio(out.discharge_energy_wh, out.charge_energy_wh)
        out["mean_charge_voltage_v"] = _ratio(out.charge_energy_wh, out.charge_capacity_ah)
        out["mean_discharge_voltage_v"] = _ratio(out.discharge_energy_wh,
                                                 out.discharge_capacity_ah)
    i = ts["current_a"].to_numpy(float)
    thr = CHARGING_FRACTION * float(np.nanmax(np.abs(i))) if len(i) else 0.0
    charging = ts[i > thr]
    eoc = charging.groupby("cycle_index")["voltage_v"].last()
    out["end_of_charge_voltage_v"] = out["cycle_index"].map(eoc).astype(float).to_numpy()
    return out[CYCLE_COLUMNS]


def _ratio(a: pd.Series, b: pd.Series) -> np.ndarray:
    a, b = a.to_numpy(float), b.to_numpy(float)
    return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)


def dcir_pulses(steps: pd.DataFrame) -> pd.DataFrame:
    """DC internal resistance of every pulse: (V_end - V_rest) / I.

    V_rest is the last voltage of the rest before the pulse, V_end the pulse's last
    voltage, I its mean current (negative for a discharge pulse: R > 0 either way).
    """
    cols = ["cycle_index", "step_index", "current_a", "duration_s", "rest_voltage_v",
            "end_voltage_v", "dcir_ohm", "start_time_s"]
    if len(steps) == 0:
        return pd.DataFrame(columns=cols)
    s = steps.sort_values("step_index").reset_index(drop=True)
    prev = s.shift(1)
    is_pulse = (
        s["kind"].isin(["charge", "discharge"])
        & (s["end_kind"] == "time")
        & (s["duration_s"] <= MAX_PULSE_S)
        & (s["duration_s"] > 0)
        & (prev["kind"] == "rest")
        & (prev["duration_s"] >= REST_BEFORE_PULSE_S)
        & (s["mean_current_a"].abs() > 0)
    )
    p, before = s[is_pulse], prev[is_pulse]
    out = pd.DataFrame({
        "cycle_index": p["cycle_index"].astype(int),
        "step_index": p["step_index"].astype(int),
        "current_a": p["mean_current_a"],
        "duration_s": p["duration_s"],
        "rest_voltage_v": before["end_voltage_v"],
        "end_voltage_v": p["end_voltage_v"],
        "start_time_s": p["start_time_s"],
    })
    out["dcir_ohm"] = (out["end_voltage_v"] - out["rest_voltage_v"]) / out["current_a"]
    return out[cols].reset_index(drop=True)


def rpt_table(steps: pd.DataFrame, pulses: pd.DataFrame,
              nominal_capacity_ah: float | None) -> pd.DataFrame:
    """Reference performance checks: the cycles holding a DCIR pulse.

    Capacity is everything the cycle discharged (an RPT's capacity discharge may be
    interrupted by the pulse), its C-rate that of the cycle's largest discharge step;
    DCIR is the cycle's first pulse; both also relative to the first RPT.
    """
    cols = ["cycle_index", "capacity_ah", "capacity_c_rate", "dcir_ohm", "capacity_retention",
            "dcir_growth", "start_time_s"]
    if len(pulses) == 0:
        return pd.DataFrame(columns=cols)
    first_pulse = pulses.groupby("cycle_index").first()
    in_rpt = steps[steps["cycle_index"].isin(first_pulse.index)]
    dis = in_rpt[in_rpt["kind"] == "discharge"]
    total = dis.groupby("cycle_index")["discharge_capacity_ah"].sum()
    best = dis.loc[dis.groupby("cycle_index")["discharge_capacity_ah"].idxmax()].set_index(
        "cycle_index")
    out = pd.DataFrame({"cycle_index": first_pulse.index.astype(int)})
    out["capacity_ah"] = out["cycle_index"].map(total).astype(float)
    rate = best["mean_current_a"].abs()
    if nominal_capacity_ah:
        rate = rate / nominal_capacity_ah
    out["capacity_c_rate"] = out["cycle_index"].map(rate).astype(float)
    out["dcir_ohm"] = first_pulse["dcir_ohm"].to_numpy(float)
    out["capacity_retention"] = out["capacity_ah"] / out["capacity_ah"].iloc[0]
    out["dcir_growth"] = out["dcir_ohm"] / out["dcir_ohm"].iloc[0]
    out["start_time_s"] = out["cycle_index"].map(
        in_rpt.groupby("cycle_index")["start_time_s"].min()).astype(float)
    return out[cols]


def with_rpt_columns(cycles: pd.DataFrame, pulses: pd.DataFrame,
                     nominal_capacity_ah: float | None) -> pd.DataFrame:
    """The cycle table plus `dcir_ohm` (where a pulse was measured), `is_rpt`, and
    `retention`: discharge capacity over the first full ageing cycle's (RPT cycles and
    cycles that discharged less than half the nominal / largest capacity get NaN)."""
    out = cycles.copy()
    dcir = pulses.groupby("cycle_index")["dcir_ohm"].first() if len(pulses) else pd.Series(
        dtype=float)
    out["dcir_ohm"] = out["cycle_index"].map(dcir).astype(float)
    out["is_rpt"] = out["cycle_index"].isin(dcir.index)
    # Without a nominal capacity (imported runs), the largest capacity moved either way:
    # a run that only charges (a GITT or EIS series from another cycler) has no full cycle,
    # rather than full "cycles" made of the few uAh an impedance excitation discharges.
    ref_cap = nominal_capacity_ah or float(
        max(out["discharge_capacity_ah"].max(), out["charge_capacity_ah"].max()) or 0.0)
    full = (~out["is_rpt"]) & (out["discharge_capacity_ah"] >= 0.5 * ref_cap) & (
        out["charge_capacity_ah"] > 0)
    out["retention"] = np.nan
    if full.any():
        first = float(out.loc[full, "discharge_capacity_ah"].iloc[0])
        out.loc[full, "retention"] = out.loc[full, "discharge_capacity_ah"] / first
    return out
