"""`labctl analyze soc RUN --cell-file CELL`: SoC estimators on a stored run, scored against a reference.

Contract with procedures/drive-cycle.yaml (docs/characterization.md): the
evaluation window runs from the start of the first `profile` step to the end of
the run (`window="all"`: the whole run). The reference SoC is precise coulomb
counting of the logged current, anchored at SoC 1 at the end of the last CV
`hold` step before the window (or at `initial_soc` at the window start when given),
against the cell file's capacity (or `capacity_ah`).

The estimators see what a BMS would: the voltage and the current with an
optional sensor offset and noise added (seeded), and start from the reference
plus `initial_soc_error`. Coulomb counting, OCV lookup after a rest of
`min_rest_s`, EKF and UKF on the cell file's model (`n_rc` pairs) run on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labctl.analysis.characterization.common import csv_bytes, open_run_data
from labctl.errors import LabctlError

NAME = "soc"
METHODS = ("coulomb", "ocv", "ekf", "ukf")


def _window(ts: pd.DataFrame, steps: pd.DataFrame, window: str) -> tuple[pd.DataFrame, int | None]:
    """(window rows, step_index of the last hold before it, or None)."""
    if window == "all":
        start_step = int(ts["step_index"].min())
    elif window == "profile":
        prof = steps[steps["kind"] == "profile"]
        if prof.empty:
            raise LabctlError("SoC analysis: the run has no `profile` step (a drive cycle); "
                              "use --window all to evaluate the whole run")
        start_step = int(prof["step_index"].min())
    else:
        raise LabctlError(f"--window must be profile or all, got {window!r}")
    holds = steps[(steps["kind"] == "hold") & (steps["step_index"] < start_step)]
    anchor = int(holds["step_index"].max()) if len(holds) else None
    rows = ts[ts["step_index"] >= start_step]
    return rows, anchor


def reference_soc(ts: pd.DataFrame, steps: pd.DataFrame, capacity_ah: float, *,
                  window: str = "profile", initial_soc: float | None = None
                  ) -> tuple[pd.DataFrame, np.ndarray]:
    """(window rows, reference SoC at each of them) by coulomb counting (zero-order hold)."""
    from labctl.analysis.ecm.segments import charge_moved_ah

    ts = ts.sort_values("test_time_s", kind="stable").reset_index(drop=True)
    rows, anchor = _window(ts, steps, window)
    t = ts["test_time_s"].to_numpy(float)
    q = charge_moved_ah(t, ts["current_a"].to_numpy(float))
    first = int(rows.index[0])
    if initial_soc is not None:
        soc0 = initial_soc - q[first] / capacity_ah
    elif anchor is not None:
        last = int(np.flatnonzero(ts["step_index"].to_numpy() == anchor)[-1])
        # Charge moved up to the end of the hold: the hold's last sample's current flows
        # until the next sample (the next step's first one).
        end = min(last + 1, len(t) - 1)
        soc0 = 1.0 - q[end] / capacity_ah
    else:
        raise LabctlError("SoC analysis: no CV hold before the window to call full; "
                          "give --initial-soc")
    soc = soc0 + q / capacity_ah
    return rows.reset_index(drop=True), soc[first:]


def estimate(rows: pd.DataFrame, reference: np.ndarray, model: Any, capacity_ah: float, *,
             methods: tuple[str, ...] = METHODS, initial_soc_error: float = 0.0,
             current_offset_a: float = 0.0, current_noise_a: float = 0.0,
             voltage_noise_v: float = 0.0, n_rc: int | None = None, min_rest_s: float = 1800.0,
             seed: int = 0) -> dict[str, np.ndarray]:
    """Estimates (one array per method) on the window's samples."""
    from labctl.analysis.soc import (
        ExtendedKalmanFilter,
        UnscentedKalmanFilter,
        coulomb_count,
        ocv_rest_soc,
        run_filter,
    )

    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise LabctlError(f"unknown SoC method(s) {', '.join(unknown)}; allowed: {', '.join(METHODS)}")
    rng = np.random.default_rng(seed)
    t = rows["test_time_s"].to_numpy(float)
    i = rows["current_a"].to_numpy(float) + current_offset_a
    if current_noise_a:
        i = i + rng.normal(0.0, current_noise_a, len(i))
    v = rows["voltage_v"].to_numpy(float)
    if voltage_noise_v:
        v = v + rng.normal(0.0, voltage_noise_v, len(v))
    temp = rows["temperature_c"].to_numpy(float) if "temperature_c" in rows else None
    if temp is not None and not np.isfinite(temp).all():
        temp = None  # not measured: the model's reference temperature
    start = float(reference[0]) + initial_soc_error
    out: dict[str, np.ndarray] = {}
    for m in methods:
        if m == "coulomb":
            out[m] = coulomb_count(t, i, capacity_ah, start)
        elif m == "ocv":
            out[m] = ocv_rest_soc(t, i, v, model, min_rest_s=min_rest_s,
                                  rest_current_a=max(0.01, 3 * abs(current_offset_a)))
        else:
            cls = ExtendedKalmanFilter if m == "ekf" else UnscentedKalmanFilter
            flt = cls(model, capacity_ah, float(reference[0]), n_rc=n_rc,
                      initial_soc_error=initial_soc_error)
            out[m] = run_filter(flt, t, i, v, temp)[:, 0]
    return out


def analyze_soc(run_dir: str | Path, *, cell_file: str | Path, methods: tuple[str, ...] = METHODS,
                initial_soc_error: float = 0.2, current_offset_a: float = 0.0,
                current_noise_a: float = 0.0, voltage_noise_v: float = 0.0,
                n_rc: int | None = None, window: str = "profile",
                initial_soc: float | None = None, capacity_ah: float | None = None,
                tolerance: float = 0.02, min_rest_s: float = 1800.0, seed: int = 0,
                plots: bool = True) -> tuple[Path, dict[str, Any]]:
    """Store analysis/soc/: soc.parquet (time, reference, estimates), errors, summary, plot."""
    from labctl.analysis.soc import evaluate, plot_soc
    from labctl.cells import load_cell
    from labctl.store.analysis import save_analysis

    cell = load_cell(cell_file)
    if cell.model is None:
        raise LabctlError(f"{cell_file}: the cell file has no model: section; the estimators need "
                          "its OCV, R0 and RC tables (e.g. analysis/hppc/cell.yaml)")
    cap = capacity_ah if capacity_ah is not None else cell.capacity_ah
    if not cap > 0:
        raise LabctlError(f"capacity must be > 0 Ah, got {cap}")
    data = open_run_data(run_dir)
    rows, ref = reference_soc(data.timeseries, data.steps, cap, window=window,
                              initial_soc=initial_soc)
    est = estimate(rows, ref, cell.model, cap, methods=methods,
                   initial_soc_error=initial_soc_error, current_offset_a=current_offset_a,
                   current_noise_a=current_noise_a, voltage_noise_v=voltage_noise_v, n_rc=n_rc,
                   min_rest_s=min_rest_s, seed=seed)
    t = rows["test_time_s"].to_numpy(float)
    scores = {m: evaluate(e, ref, t, tolerance) for m, e in est.items()}
    table = pd.DataFrame({"test_time_s": t, "reference_soc": ref}
                         | {f"{m}_soc": e for m, e in est.items()})
    summary: dict[str, Any] = {
        "cell_file": str(cell_file), "capacity_ah": cap, "window": window,
        "window_start_s": float(t[0]), "window_end_s": float(t[-1]), "n_samples": len(t),
        "initial_soc_error": initial_soc_error, "current_offset_a": current_offset_a,
        "current_noise_a": current_noise_a, "voltage_noise_v": voltage_noise_v,
        "tolerance": tolerance, "seed": seed,
        "expected_coulomb_drift": current_offset_a * (t[-1] - t[0]) / (3600.0 * cap),
        "methods": scores,
    }
    folder = save_analysis(run_dir, NAME, tables={"soc": table},
                           files={"soc.csv": csv_bytes(table)}, summary=summary)
    if plots:
        plot_soc(folder / "soc.png", t - t[0], ref, est,
                 title=f"SoC estimators, initial error {initial_soc_error:+.0%}")
    return folder, summary
