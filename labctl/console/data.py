"""What a run page shows, as JSON-able data: decimated traces, per-cycle numbers, dQ/dV,
impedance spectra and stored analyses.

Finished runs read only the Parquet columns they need; running or crashed runs
go through `open_run`, which rebuilds the tables from the journal (read-only).
Every trace passes through `decimate`, so a page never carries more than
`max_points` points per trace.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labctl.console.decimate import DEFAULT_MAX_POINTS, minmax_indices, minmax_indices_many

TRACE_COLUMNS = ("voltage_v", "current_a", "temperature_c")
PLOT_COLUMNS = ("test_time_s", *TRACE_COLUMNS, "cycle_index", "discharge_capacity_ah")
DQDV_CYCLES = 8  # the last cycles drawn in the dQ/dV figure (more is unreadable)
TABLE_ROWS = 200  # rows of an analysis table shown on the page (the download has all)


def _finite_list(a: np.ndarray, digits: int | None = None) -> list[float | None]:
    """JSON-able floats (NaN/inf -> None); `digits` decimals keep long traces compact."""
    a = np.asarray(a, dtype=float)
    if digits is not None:
        a = np.round(a, digits)
    return [None if not math.isfinite(v) else float(v) for v in a.tolist()]


def read_columns(run_path: Path, columns: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Timeseries columns of a run; only those columns are read when its tables are current."""
    import pyarrow.parquet as pq

    from labctl.store.freshness import tables_current
    from labctl.store.rundir import RunDir

    meta = RunDir.open(run_path).meta
    if tables_current(run_path, meta):
        try:
            table = pq.read_table(run_path / "timeseries.parquet", columns=list(columns))
            return {c: table.column(c).to_numpy() for c in columns}
        except (OSError, ValueError, KeyError):
            pass  # damaged: rebuild below, as open_run does
    from labctl.store.run import open_run

    ts = open_run(run_path).timeseries
    return {c: ts[c].to_numpy() for c in columns}


def traces(cols: dict[str, np.ndarray], max_points: int = DEFAULT_MAX_POINTS) -> dict[str, Any]:
    """V, I and T against test time (h), each decimated by min/max per bucket."""
    t = cols["test_time_s"]
    out: dict[str, Any] = {"n_samples": int(len(t)), "traces": {}}
    names = [n for n in TRACE_COLUMNS if len(cols[n]) and np.isfinite(cols[n]).any()]
    for name, idx in zip(names, minmax_indices_many(t, [cols[n] for n in names], max_points),
                         strict=True):
        out["traces"][name] = {"x": _finite_list(t[idx] / 3600.0, 7),
                               "y": _finite_list(cols[name][idx], 6)}
    return out


def per_cycle(cycles: pd.DataFrame) -> dict[str, Any]:
    """Capacity and efficiencies per cycle, for the finished-run figure."""
    if cycles is None or not len(cycles):
        return {}
    c = cycles
    return {"cycle": [int(x) for x in c["cycle_index"]],
            "charge_ah": _finite_list(c["charge_capacity_ah"].to_numpy()),
            "discharge_ah": _finite_list(c["discharge_capacity_ah"].to_numpy()),
            "coulombic": _finite_list(c["coulombic_efficiency"].to_numpy()),
            "energy": _finite_list(c["energy_efficiency"].to_numpy())}


def dqdv(cols: dict[str, np.ndarray], max_points: int = DEFAULT_MAX_POINTS
         ) -> list[dict[str, Any]]:
    """dQ/dV of each cycle's discharge (the last DQDV_CYCLES cycles), by voltage binning
    (labctl.analysis.cycling.dqdv.incremental_capacity)."""
    from labctl.analysis.cycling.dqdv import incremental_capacity

    cyc, cur = cols["cycle_index"], cols["current_a"]
    if not len(cyc):
        return []
    # cycle_index never decreases within a run: each cycle is one slice
    bounds = np.r_[0, np.flatnonzero(np.diff(cyc)) + 1, len(cyc)]
    out = []
    for a, b in zip(bounds[:-1][-DQDV_CYCLES:], bounds[1:][-DQDV_CYCLES:], strict=True):
        mask = cur[a:b] < 0
        if mask.sum() < 20:
            continue
        curve = incremental_capacity(cols["discharge_capacity_ah"][a:b][mask],
                                     cols["voltage_v"][a:b][mask])
        if not len(curve):
            continue
        v, d = curve["voltage_v"].to_numpy(), curve["dqdv_ah_per_v"].to_numpy()
        idx = minmax_indices(v, d, max_points)
        out.append({"cycle": int(cyc[a]), "x": _finite_list(v[idx]), "y": _finite_list(d[idx])})
    return out


def spectra(run: Any) -> list[dict[str, Any]]:
    """Impedance spectra (record table `spectra`: recorded by `eis` steps or imported), one
    per sweep; |Z| and phase are computed from Z' and Z'' when the table lacks them."""
    if "spectra" not in run.record_tables():
        return []
    table = run.records("spectra")
    if not len(table) or not {"frequency_hz", "z_real_ohm", "z_imag_ohm"} <= set(table.columns):
        return []
    # A sweep starts where the point counter goes back to 0 (else: one per step and label).
    if "point" in table:
        sweep = np.cumsum(table["point"].to_numpy() == 0)
    else:
        keys = [c for c in ("step_index", "label") if c in table]
        sweep = table.groupby(keys, sort=False).ngroup().to_numpy() if keys else \
            np.zeros(len(table), dtype=int)
    out = []
    for number in np.unique(sweep):
        part = table[sweep == number]
        z = part["z_real_ohm"].to_numpy(float) + 1j * part["z_imag_ohm"].to_numpy(float)
        label = str(part["label"].iloc[0]) if "label" in part and part["label"].iloc[0] else ""
        out.append({"name": f"spectrum {int(number)}" + (f" {label}" if label else ""),
                    "f": _finite_list(part["frequency_hz"].to_numpy()),
                    "re": _finite_list(z.real), "im": _finite_list(z.imag),
                    "mod": _finite_list(part["z_mod_ohm"].to_numpy() if "z_mod_ohm" in part
                                        else np.abs(z)),
                    "phase": _finite_list(part["phase_deg"].to_numpy() if "phase_deg" in part
                                          else np.degrees(np.angle(z)))})
    return out


def analyses(run_path: Path) -> list[dict[str, Any]]:
    """Stored analyses: summary, tables (first TABLE_ROWS rows as HTML), figure and file names."""
    import json

    root = run_path / "analysis"
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        item: dict[str, Any] = {"name": folder.name, "summary": None, "tables": [],
                                "figures": [], "files": []}
        for p in sorted(folder.iterdir()):
            if p.is_symlink() or not p.is_file():
                continue
            item["files"].append(p.name)
            if p.name == "summary.json":
                try:
                    item["summary"] = json.loads(p.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    pass
            elif p.suffix == ".png":
                item["figures"].append(p.name)
            elif p.suffix == ".parquet":
                try:
                    df = pd.read_parquet(p)
                except (OSError, ValueError):
                    continue
                item["tables"].append({"name": p.stem, "rows": len(df),
                                       "html": frame_html(df.head(TABLE_ROWS))})
        out.append(item)
    return out


def frame_html(df: pd.DataFrame) -> str:
    """A DataFrame as an HTML table (pandas escapes the cells)."""
    return df.to_html(index=False, classes="data", border=0, na_rep="",
                      float_format=lambda x: f"{x:.6g}", escape=True)
