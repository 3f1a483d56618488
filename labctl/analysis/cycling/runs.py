"""The cycling analyses of a stored run, saved beside it in RUN/analysis/<name>/.

- `cycling`: per-cycle table, DCIR pulses, RPT table, retention fits, capacity plot,
  voltage curves of chosen cycles.
- `rate`: the rate-capability table and plot.
- `dqdv`: dQ/dV and dV/dQ of chosen cycles, peaks tracked over them, overlays.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labctl.analysis.cycling import plots
from labctl.analysis.cycling.dqdv import differential_voltage, find_peaks_v, incremental_capacity
from labctl.analysis.cycling.percycle import cycle_table, dcir_pulses, rpt_table, with_rpt_columns
from labctl.analysis.cycling.rate import rate_table
from labctl.analysis.cycling.retention import fit_retention, threshold_crossing
from labctl.analysis.cycling.segments import main_step, pick_cycles, segment
from labctl.errors import LabctlError
from labctl.store.analysis import save_analysis
from labctl.store.run import Run, open_run

PEAK_MATCH_V = 0.05  # a peak follows the reference cycle's nearest peak within this


def _open(run: Run | str | Path) -> Run:
    return run if isinstance(run, Run) else open_run(run)


def _nominal(run: Run) -> float | None:
    cap = (run.meta.get("cell") or {}).get("capacity_ah")
    return float(cap) if cap else None


def _need_samples(run: Run) -> pd.DataFrame:
    ts = run.timeseries
    if len(ts) == 0:
        raise LabctlError(f"{run.path}: the run has no samples to analyse")
    return ts


# -- cycling --------------------------------------------------------------------------------


def analyze_cycling(run: Run | str | Path, *, threshold: float = 0.8,
                    cycles: list[int] | None = None, plots_on: bool = True
                    ) -> tuple[dict[str, pd.DataFrame], Path, dict[str, Any]]:
    """Per-cycle metrics, RPTs, DCIR and the retention fit; returns (tables, folder, summary)."""
    if not 0 < threshold < 1:
        raise LabctlError(f"--threshold must be a fraction between 0 and 1, got {threshold:g}")
    run = _open(run)
    ts, steps, nominal = _need_samples(run), run.steps, _nominal(run)
    pulses = dcir_pulses(steps)
    table = with_rpt_columns(cycle_table(ts), pulses, nominal)
    rpt = rpt_table(steps, pulses, nominal)
    full = table[np.isfinite(table["retention"])]
    fits = fit_retention(full["cycle_index"].to_numpy(), full["retention"].to_numpy(), threshold)
    rpt_fits = (fit_retention(rpt["cycle_index"].to_numpy(), rpt["capacity_retention"].to_numpy(),
                              threshold) if len(rpt) >= 3 else {})
    fit_rows = [{"series": "cycles", **f.as_dict()} for k, f in fits.items() if k != "best"]
    fit_rows += [{"series": "rpt", **f.as_dict()} for k, f in rpt_fits.items() if k != "best"]
    tables = {"cycles": table, "dcir": pulses, "rpt": rpt, "fit": pd.DataFrame(fit_rows)}
    ageing = table[~table["is_rpt"] & np.isfinite(table["retention"])]
    summary: dict[str, Any] = {
        "run": run.path.name,
        "n_cycles": int(len(table)),
        "n_rpt": int(len(rpt)),
        "nominal_capacity_ah": nominal,
        "first_discharge_capacity_ah": _first(ageing["discharge_capacity_ah"]),
        "last_discharge_capacity_ah": _last(ageing["discharge_capacity_ah"]),
        "last_retention": _last(ageing["retention"]),
        "median_coulombic_efficiency": _median(ageing["coulombic_efficiency"]),
        "median_energy_efficiency": _median(ageing["energy_efficiency"]),
        "max_temperature_c": _max(table["max_temperature_c"]),
        "threshold": threshold,
    }
    if len(rpt):
        summary.update(rpt_capacity_retention=_last(rpt["capacity_retention"]),
                       first_dcir_ohm=_first(rpt["dcir_ohm"]), last_dcir_ohm=_last(rpt["dcir_ohm"]),
                       dcir_growth=_last(rpt["dcir_growth"]))
    if "best" in fits:
        cross, why = threshold_crossing(fits["best"])
        summary["fit"] = dict(fits["best"].as_dict(), cycles_to_threshold=cross)
        summary["cycles_to_threshold"] = (None if cross is None
                                          else cross + float(full["cycle_index"].iloc[0]) - 1.0)
        if why:
            summary["cycles_to_threshold_note"] = why
    if "best" in rpt_fits:
        cross, why = threshold_crossing(rpt_fits["best"])
        summary["rpt_fit"] = dict(rpt_fits["best"].as_dict(), cycles_to_threshold=cross)
        if why:
            summary["rpt_fit"]["note"] = why
    figures = {}
    if plots_on:
        figures["capacity"] = plots.capacity_figure(table, rpt, fits.get("best"),
                                                    title=f"{run.path.name}: capacity")
        curves = _curves(ts, steps, table, cycles, "discharge")
        if curves:
            figures["voltage_curves"] = plots.curves_figure(
                curves, "discharged capacity / Ah", "voltage / V", "discharge voltage curves")
    folder = save_analysis(run.path, "cycling", tables=tables, csv={"cycles": table},
                           summary=summary, figures=figures)
    return tables, folder, summary


def _curves(ts, steps, table, wanted, direction) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    available = _segment_cycles(steps, table, direction)
    if not available:
        return {}
    out = {}
    for c in pick_cycles(available, wanted):
        step = main_step(steps, c, direction)
        out[c] = segment(ts, int(step["step_index"]))
    return out


def _segment_cycles(steps: pd.DataFrame, table: pd.DataFrame | None, direction: str) -> list[int]:
    """Cycles whose main `direction` step moved at least half of the largest such step."""
    s = steps[steps["kind"] == direction]
    if len(s) == 0:
        return []
    col = f"{direction}_capacity_ah"
    best = s.groupby("cycle_index")[col].max()
    best = best[best >= 0.5 * float(best.max())]
    return sorted(int(c) for c in best.index)


# -- rate capability ------------------------------------------------------------------------


def analyze_rate(run: Run | str | Path, *, nominal_capacity_ah: float | None = None,
                 plots_on: bool = True) -> tuple[dict[str, pd.DataFrame], Path, dict[str, Any]]:
    run = _open(run)
    nominal = nominal_capacity_ah or _nominal(run)
    if not nominal:
        raise LabctlError(f"{run.path}: the run does not record the cell's capacity; give "
                          "--capacity-ah")
    table = rate_table(run.steps, nominal)
    if len(table) == 0:
        raise LabctlError(f"{run.path}: no discharge step longer than a minute ended on a "
                          "voltage; nothing to tabulate (run procedures/rate-capability.yaml)")
    summary = {"run": run.path.name, "nominal_capacity_ah": nominal,
               "rates": [{"c_rate": r.c_rate, "capacity_ah": r.discharge_capacity_ah,
                          "energy_wh": r.discharge_energy_wh, "mean_voltage_v": r.mean_voltage_v,
                          "capacity_retention": r.capacity_retention}
                         for r in table.itertuples()]}
    figures = {}
    if plots_on:
        figures["rate"] = plots.rate_figure(table, f"{run.path.name}: rate capability")
        ts = _need_samples(run)
        curves = {}
        for r in table.itertuples():
            q, v = segment(ts, int(r.step_index))
            curves[f"{r.c_rate:.3g}C (cycle {r.cycle_index})"] = (q, v)
        figures["rate_curves"] = plots.curves_figure(curves, "discharged capacity / Ah",
                                                     "voltage / V", "discharge curves by rate")
    folder = save_analysis(run.path, "rate", tables={"rates": table}, csv={"rates": table},
                           summary=summary, figures=figures)
    return {"rates": table}, folder, summary


# -- dQ/dV, dV/dQ ----------------------------------------------------------------------------


def analyze_dqdv(run: Run | str | Path, *, cycles: list[int] | None = None,
                 direction: str = "discharge", dv: float = 0.002, smooth_v: float = 0.008,
                 plots_on: bool = True) -> tuple[dict[str, pd.DataFrame], Path, dict[str, Any]]:
    if direction not in ("charge", "discharge"):
        raise LabctlError(f"--direction must be charge or discharge, got {direction!r}")
    if not (dv > 0 and smooth_v >= 0 and math.isfinite(dv) and math.isfinite(smooth_v)):
        raise LabctlError("--dv must be > 0 and --smooth-v >= 0 (volts)")
    run = _open(run)
    ts, steps = _need_samples(run), run.steps
    available = _segment_cycles(steps, None, direction)
    if not available:
        other = "charge" if direction == "discharge" else "discharge"
        hint = (f"; it has {other} segments: --direction {other}"
                if _segment_cycles(steps, None, other) else "")
        raise LabctlError(f"{run.path.name}: no cycle has a constant-current {direction} "
                          f"segment to analyse{hint}")
    chosen = pick_cycles(available, cycles)
    ic_rows, dv_rows, peak_rows = [], [], []
    ic_curves, dv_curves = {}, {}
    for c in chosen:
        step = main_step(steps, c, direction)
        q, v = segment(ts, int(step["step_index"]))
        ic = incremental_capacity(q, v, dv=dv, smooth_v=smooth_v)
        dvdq = differential_voltage(q, v)
        peaks = find_peaks_v(ic["voltage_v"], ic["dqdv_ah_per_v"])
        ic_rows.append(ic.assign(cycle_index=c))
        dv_rows.append(dvdq.assign(cycle_index=c))
        peak_rows.append(peaks.assign(cycle_index=c))
        ic_curves[c] = (ic["voltage_v"].to_numpy(), ic["dqdv_ah_per_v"].to_numpy())
        dv_curves[c] = (dvdq["capacity_ah"].to_numpy(), dvdq["dvdq_v_per_ah"].to_numpy())
    peaks = _track(pd.concat(peak_rows, ignore_index=True))
    tables = {"dqdv": pd.concat(ic_rows, ignore_index=True),
              "dvdq": pd.concat(dv_rows, ignore_index=True), "peaks": peaks}
    summary = {"run": run.path.name, "direction": direction, "cycles": chosen, "dv_v": dv,
               "smooth_v": smooth_v, "peaks": _peak_summary(peaks, chosen)}
    figures = {}
    if plots_on:
        figures["dqdv"] = plots.curves_figure(ic_curves, "voltage / V", "dQ/dV / (Ah/V)",
                                              f"incremental capacity ({direction})")
        figures["dvdq"] = plots.curves_figure(dv_curves, "capacity / Ah", "dV/dQ / (V/Ah)",
                                              f"differential voltage ({direction})")
    folder = save_analysis(run.path, "dqdv", tables=tables, summary=summary, figures=figures)
    return tables, folder, summary


def _track(peaks: pd.DataFrame) -> pd.DataFrame:
    """Label each peak with the nearest peak of the first cycle (within PEAK_MATCH_V)."""
    peaks = peaks.copy()
    peaks["peak"] = -1
    if len(peaks) == 0:
        return peaks
    first = peaks[peaks["cycle_index"] == peaks["cycle_index"].iloc[0]]["voltage_v"].to_numpy()
    if len(first) == 0:
        return peaks
    v = peaks["voltage_v"].to_numpy()
    nearest = np.abs(v[:, None] - first[None, :]).argmin(axis=1)
    close = np.abs(v - first[nearest]) <= PEAK_MATCH_V
    peaks["peak"] = np.where(close, nearest + 1, -1)
    return peaks


def _peak_summary(peaks: pd.DataFrame, chosen: list[int]) -> list[dict[str, Any]]:
    out = []
    for label, rows in peaks[peaks["peak"] > 0].groupby("peak"):
        rows = rows.sort_values("cycle_index")
        out.append({"peak": int(label), "voltage_v": rows["voltage_v"].tolist(),
                    "cycles": rows["cycle_index"].tolist(), "height": rows["height"].tolist(),
                    "shift_v": float(rows["voltage_v"].iloc[-1] - rows["voltage_v"].iloc[0])})
    return out


def _first(s: pd.Series) -> float | None:
    s = s.dropna()
    return float(s.iloc[0]) if len(s) else None


def _last(s: pd.Series) -> float | None:
    s = s.dropna()
    return float(s.iloc[-1]) if len(s) else None


def _median(s: pd.Series) -> float | None:
    s = s.dropna()
    return float(s.median()) if len(s) else None


def _max(s: pd.Series) -> float | None:
    s = s.dropna()
    return float(s.max()) if len(s) else None
