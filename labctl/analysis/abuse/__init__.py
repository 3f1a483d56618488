"""Thermal-abuse analysis of DSC-style ramps, ARC heat-wait-seek and overcharge runs.

Reads the run's record table ``thermal`` (written by the abuse steps) and, per step:

* onset of self-heating: ARC — where the seek rates cross the threshold (0.02 °C/min),
  interpolated between the last seek below and the first above in ln(rate) vs 1/T
  (exact for an Arrhenius rate); DSC — where the heat flow first exceeds the heat an
  adiabatic cell would need to self-heat at the threshold (C x threshold);
* each exothermic peak: temperature and rate (ARC: the measured dT/dt while following
  adiabatically; DSC: the heat flow and its adiabatic equivalent q / C);
* max temperature, max self-heating rate, time from onset to the max rate (time to runaway);
* total heat: ARC C x (temperature rise while following adiabatically); DSC the
  integral of the heat flow (exo and endo apart). The heat capacity used is stated;
* endotherms: negative heat-flow peaks (DSC) or seeks that cooled (ARC);
* figures: T vs time and log10(dT/dt) vs T.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.signal import find_peaks

from labctl.errors import LabctlError

THRESHOLD_C_PER_MIN = 0.02
TABLE = "thermal"


def rate_c_per_min(time_s: np.ndarray, temperature_c: np.ndarray) -> np.ndarray:
    """dT/dt in °C/min (second-order differences on the uneven sample times)."""
    t, c = np.asarray(time_s, float), np.asarray(temperature_c, float)
    if len(t) < 3:
        return np.zeros(len(t))
    return np.gradient(c, t) * 60.0


def _blocks(phase: pd.Series) -> list[np.ndarray]:
    """Index arrays of consecutive rows with the same phase."""
    values = phase.to_numpy()
    cuts = np.flatnonzero(values[1:] != values[:-1]) + 1
    return [b for b in np.split(np.arange(len(values)), cuts) if len(b)]


def seek_rates(df: pd.DataFrame) -> pd.DataFrame:
    """One row per ARC seek: mean temperature, rate over the seek, start time."""
    rows = []
    for b in _blocks(df["phase"]):
        if df["phase"].iat[b[0]] != "seek" or len(b) < 2:
            continue
        t = df["test_time_s"].to_numpy()[b]
        c = df["cell_temperature_c"].to_numpy()[b]
        rows.append({"temperature_c": float(c.mean()), "start_c": float(c[0]),
                     "rate_c_per_min": float((c[-1] - c[0]) / (t[-1] - t[0]) * 60.0),
                     "test_time_s": float(t[0])})
    return pd.DataFrame(rows, columns=["temperature_c", "start_c", "rate_c_per_min", "test_time_s"])


def arc_onset_c(seeks: pd.DataFrame, threshold: float = THRESHOLD_C_PER_MIN) -> float | None:
    """Temperature where self-heating reaches `threshold`, from the seeks (None: never)."""
    rates = seeks["rate_c_per_min"].to_numpy()
    temps = seeks["temperature_c"].to_numpy()
    above = np.flatnonzero(rates >= threshold)
    if not len(above):
        return None
    k = int(above[0])
    if k == 0 or rates[k - 1] <= 0:
        return float(temps[k])
    # ln(rate) is linear in 1/T for an Arrhenius rate: interpolate there.
    x0, x1 = 1.0 / (temps[k - 1] + 273.15), 1.0 / (temps[k] + 273.15)
    y0, y1 = np.log(rates[k - 1]), np.log(rates[k])
    x = x0 + (np.log(threshold) - y0) * (x1 - x0) / (y1 - y0)
    return float(1.0 / x - 273.15)


def _peaks(y: np.ndarray, prominence: float) -> np.ndarray:
    if len(y) < 3 or not np.isfinite(y).any():
        return np.array([], dtype=int)
    found, _ = find_peaks(np.nan_to_num(y), prominence=prominence)
    return found


def analyze_step(df: pd.DataFrame, heat_capacity_j_per_k: float | None = None,
                 threshold: float = THRESHOLD_C_PER_MIN) -> tuple[dict[str, Any], pd.DataFrame]:
    """Summary and peak table of one step's thermal rows (sorted by time)."""
    df = df.sort_values("test_time_s").reset_index(drop=True)
    test = str(df["test"].iat[0])
    c_heat = heat_capacity_j_per_k
    if c_heat is None:
        c_heat = float(df["heat_capacity_j_per_k"].dropna().iloc[0]) if \
            df["heat_capacity_j_per_k"].notna().any() else None
    if c_heat is None or not c_heat > 0:
        raise LabctlError("the heat capacity of the cell is unknown; give --heat-capacity J/K")
    t = df["test_time_s"].to_numpy(float)
    temp = df["cell_temperature_c"].to_numpy(float)
    q = df["heat_flow_w"].to_numpy(float)
    out: dict[str, Any] = {"test": test, "step_index": int(df["step_index"].iat[0]),
                           "heat_capacity_j_per_k": c_heat, "threshold_c_per_min": threshold,
                           "max_temperature_c": float(temp.max())}
    peaks: list[dict[str, Any]] = []
    if test == "dsc":
        ramp = (df["phase"] == "ramp").to_numpy()
        tr, cr, qr = t[ramp], temp[ramp], q[ramp]
        equiv = qr / c_heat * 60.0  # the adiabatic self-heating rate this heat flow means
        over = np.flatnonzero(equiv >= threshold)
        out["onset_c"] = float(cr[over[0]]) if len(over) else None
        prom = max(0.02 * float(np.abs(qr).max(initial=0.0)), 1e-6)
        for i in _peaks(qr, prom):
            if qr[i] > 0:
                peaks.append({"kind": "exotherm", "temperature_c": float(cr[i]),
                              "heat_flow_w": float(qr[i]), "rate_c_per_min": float(equiv[i]),
                              "test_time_s": float(tr[i])})
        for i in _peaks(-qr, prom * 0.1):
            if qr[i] < 0:
                peaks.append({"kind": "endotherm", "temperature_c": float(cr[i]),
                              "heat_flow_w": float(qr[i]), "rate_c_per_min": float(equiv[i]),
                              "test_time_s": float(tr[i])})
        out["exotherm_heat_j"] = float(np.trapezoid(np.clip(qr, 0, None), tr))
        out["endotherm_heat_j"] = float(np.trapezoid(np.clip(qr, None, 0), tr))
        out["total_heat_j"] = out["exotherm_heat_j"]
        out["heat_basis"] = "integral of the measured heat flow over the ramp"
        rate = equiv
        rate_t = tr
    else:
        seeks = seek_rates(df)
        track = df["phase"].isin(["track", "follow"]).to_numpy() if test == "arc" else \
            np.ones(len(df), bool)
        rate_all = rate_c_per_min(t, temp)
        out["onset_c"] = arc_onset_c(seeks, threshold) if len(seeks) else None
        if out["onset_c"] is None and test != "arc":
            over = np.flatnonzero(rate_all >= threshold)
            out["onset_c"] = float(temp[over[0]]) if len(over) else None
        heat = 0.0
        for b in _blocks(df["phase"]):
            if track[b[0]]:
                heat += float(temp[b[-1]] - temp[b[0]])
        out["total_heat_j"] = c_heat * heat
        out["heat_basis"] = "heat capacity x temperature rise while adiabatic"
        rate = np.where(track, rate_all, np.nan)
        rate_t = t
        prom = max(0.05 * float(np.nanmax(rate, initial=0.0)), threshold)
        rt = np.where(np.isfinite(rate), rate, 0.0)
        for i in _peaks(rt, prom):
            peaks.append({"kind": "exotherm", "temperature_c": float(temp[i]),
                          "heat_flow_w": float(rt[i] / 60.0 * c_heat),
                          "rate_c_per_min": float(rt[i]), "test_time_s": float(t[i])})
        for row in seeks.itertuples():
            if row.rate_c_per_min <= -threshold:
                peaks.append({"kind": "endotherm", "temperature_c": row.temperature_c,
                              "heat_flow_w": row.rate_c_per_min / 60.0 * c_heat,
                              "rate_c_per_min": row.rate_c_per_min,
                              "test_time_s": row.test_time_s})
        out["endotherm_heat_j"] = None
    finite = np.isfinite(rate)
    if finite.any():
        i = int(np.nanargmax(np.where(finite, rate, -np.inf)))
        out["max_self_heating_c_per_min"] = float(rate[i])
        out["max_rate_temperature_c"] = float(np.interp(rate_t[i], t, temp))
        onset_t = None
        if out["onset_c"] is not None:
            reached = np.flatnonzero(temp >= out["onset_c"])
            onset_t = float(t[reached[0]]) if len(reached) else None
        out["time_to_runaway_s"] = float(rate_t[i] - onset_t) if onset_t is not None else None
    table = pd.DataFrame(peaks, columns=["kind", "temperature_c", "rate_c_per_min",
                                         "heat_flow_w", "test_time_s"])
    table.insert(0, "step_index", out["step_index"])
    exo = table[table.kind == "exotherm"]
    out["exotherm_peaks_c"] = [float(x) for x in exo.temperature_c]
    out["endotherm_peaks_c"] = [float(x) for x in table[table.kind == "endotherm"].temperature_c]
    return out, table


def analyze_thermal(thermal: pd.DataFrame, heat_capacity_j_per_k: float | None = None,
                    threshold: float = THRESHOLD_C_PER_MIN) -> tuple[dict[str, Any], pd.DataFrame]:
    """All steps of a thermal table: a summary (headline = the ARC, else DSC, else last step)."""
    if thermal is None or not len(thermal):
        raise LabctlError("this run has no thermal records (no dsc_ramp, arc_hws or overcharge step)")
    steps, tables = [], []
    for _, df in thermal.groupby("step_index", sort=True):
        s, tab = analyze_step(df, heat_capacity_j_per_k, threshold)
        steps.append(s)
        tables.append(tab)
    order = {"arc": 0, "dsc": 1}
    head = min(steps, key=lambda s: order.get(s["test"], 2))
    return {**head, "steps": steps}, pd.concat(tables, ignore_index=True)


def figures(thermal: pd.DataFrame, heat_capacity_j_per_k: float) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = thermal.sort_values("test_time_s")
    fig1, ax = plt.subplots(figsize=(7, 4))
    ax.plot(df.test_time_s / 3600, df.cell_temperature_c, label="cell")
    ax.plot(df.test_time_s / 3600, df.chamber_temperature_c, lw=0.8, label="chamber")
    ax.set_xlabel("test time / h")
    ax.set_ylabel("temperature / °C")
    ax.legend()
    fig2, ax = plt.subplots(figsize=(7, 4))
    for (_, test), g in df.groupby(["step_index", "test"]):
        if test == "dsc":
            r = g.heat_flow_w.to_numpy() / heat_capacity_j_per_k * 60.0
        else:
            r = rate_c_per_min(g.test_time_s.to_numpy(), g.cell_temperature_c.to_numpy())
        ok = r > 0
        ax.semilogy(g.cell_temperature_c.to_numpy()[ok], r[ok], ".", ms=2, label=str(test))
    ax.axhline(THRESHOLD_C_PER_MIN, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("cell temperature / °C")
    ax.set_ylabel("self-heating rate dT/dt / (°C/min)")
    ax.legend()
    return {"temperature_vs_time": fig1, "rate_vs_temperature": fig2}


def analyze_run(run: Any, heat_capacity_j_per_k: float | None = None,
                threshold: float = THRESHOLD_C_PER_MIN, plots: bool = True) -> dict[str, Any]:
    """Analyse a run (a Run or its folder) and store it as analysis/abuse/."""
    from labctl.store.analysis import save_analysis

    if isinstance(run, (str, Path)):
        from labctl.store.run import open_run

        run = open_run(run)
    if TABLE not in run.record_tables():
        raise LabctlError(f"{run.path}: no thermal records (the run has no dsc_ramp, arc_hws or "
                          "overcharge step); nothing to analyse")
    thermal = run.records(TABLE)
    summary, peaks = analyze_thermal(thermal, heat_capacity_j_per_k, threshold)
    rate = thermal.sort_values("test_time_s")[["step_index", "test_time_s", "cell_temperature_c",
                                               "heat_flow_w"]].copy()
    figs = figures(thermal, summary["heat_capacity_j_per_k"]) if plots else {}
    save_analysis(run.path, "abuse", tables={"peaks": peaks, "thermal": rate},
                  csv={"peaks": peaks}, summary=summary, figures=figs)
    return summary
