"""`labctl analyze ocv RUN`: the OCV-SoC table of a pseudo-OCV run (or of any run's long rests).

Contract with the procedures (docs/characterization.md): `pseudo` uses the
charge and the discharge step that move the most charge (procedures/pseudo-ocv.yaml's
slow branches); `rests` uses the relaxed voltage at the end of every rest of
at least `min_rest_s` (GITT, HPPC) with SoC counted from the run's fullest point
against the charge moved between full and empty. `auto` takes `pseudo` when both
branches move at least half the cell's capacity.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labctl.analysis.characterization.common import csv_bytes, figure, long_csv_bytes, open_run_data
from labctl.analysis.ecm.segments import charge_moved_ah, load_samples
from labctl.errors import LabctlError

NAME = "ocv"
METHODS = ("auto", "pseudo", "rests")


def _branch_moves(ts: pd.DataFrame, steps: pd.DataFrame) -> tuple[float, float]:
    """Charge (Ah) moved by the largest charge step and by the largest discharge step."""
    moved = {"charge": 0.0, "discharge": 0.0}
    for kind in moved:
        rows = steps[steps["kind"] == kind]
        col = "charge_capacity_ah" if kind == "charge" else "discharge_capacity_ah"
        if len(rows):
            moved[kind] = float(rows[col].max())
    return moved["charge"], moved["discharge"]


def ocv_table(run_dir: str | Path, *, method: str = "auto", grid_points: int = 101,
              min_rest_s: float = 1200.0) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(table with soc, ocv_v [and the branches], summary) without storing anything."""
    from labctl.analysis.ocv import ocv_curve, pseudo_ocv, rest_ocv_points

    if method not in METHODS:
        raise LabctlError(f"OCV method must be one of {', '.join(METHODS)}, got {method!r}")
    data = open_run_data(run_dir)
    ts, steps = data.timeseries, data.steps
    ch, dis = _branch_moves(ts, steps)
    samples = load_samples(ts, "OCV timeseries")
    q = charge_moved_ah(samples.time_s, samples.current_a)
    span = float(q.max() - q.min())
    capacity = data.cell.capacity_ah if data.cell is not None else span
    if method == "auto":
        method = "pseudo" if min(ch, dis) >= 0.5 * capacity else "rests"
    summary: dict[str, Any] = {"method": method}
    if method == "pseudo":
        res = pseudo_ocv(ts, steps, grid_points=grid_points)
        table = res.table
        mid = table[(table.soc >= 0.1) & (table.soc <= 0.9)]
        summary |= {"charge_capacity_ah": res.charge_capacity_ah,
                    "discharge_capacity_ah": res.discharge_capacity_ah,
                    "charge_step_index": res.charge_step_index,
                    "discharge_step_index": res.discharge_step_index,
                    "temperature_c": res.temperature_c,
                    "mean_hysteresis_v_soc_10_90": float(mid.hysteresis_v.mean())}
    else:
        pts = rest_ocv_points(ts, min_rest_s=min_rest_s)
        if len(pts) < 2:
            raise LabctlError(f"OCV from rests: only {len(pts)} rest of at least {min_rest_s:g} s; "
                              "need two or more (or use a pseudo-OCV run)")
        table = ocv_curve(pts["soc"].to_numpy(), pts["ocv_v"].to_numpy(), grid_points=grid_points)
        summary |= {"n_rest_points": len(pts), "capacity_ah": span,
                    "temperature_c": float(np.nanmedian(pts["temperature_c"]))
                    if pts["temperature_c"].notna().any() else None}
        table = table.assign(n_points=len(pts))
        summary["rest_points"] = pts[["soc", "ocv_v"]].to_dict("list")
    summary |= {"ocv_v_at_soc_50": float(np.interp(0.5, table.soc, table.ocv_v)),
                "soc_range": [float(table.soc.min()), float(table.soc.max())]}
    return table, summary


def analyze_ocv(run_dir: str | Path, *, method: str = "auto", grid_points: int = 101,
                min_rest_s: float = 1200.0, plots: bool = True) -> tuple[Path, dict[str, Any]]:
    """Store analysis/ocv/: ocv.parquet, ocv.csv (cell-file format: soc, ocv_v), summary, plot."""
    from labctl.store.analysis import save_analysis

    table, summary = ocv_table(run_dir, method=method, grid_points=grid_points,
                               min_rest_s=min_rest_s)
    figures = {}
    if plots:
        fig, ax = figure()
        for col, style in (("charge_v", "--"), ("discharge_v", "--"), ("ocv_v", "-")):
            if col in table:
                ax.plot(100 * table.soc, table[col], style, label=col.removesuffix("_v"))
        if "rest_points" in summary:
            pts = summary["rest_points"]
            ax.plot(100 * np.asarray(pts["soc"]), pts["ocv_v"], "o", label="rest end points")
        ax.set_xlabel("SoC / %")
        ax.set_ylabel("voltage / V")
        ax.legend()
        ax.set_title(f"OCV ({summary['method']})")
        figures["ocv"] = fig
    folder = save_analysis(run_dir, NAME, tables={"ocv": table}, summary=summary,
                           files={"ocv.csv": long_csv_bytes(table, ["ocv_v"]),
                                  "ocv_full.csv": csv_bytes(table)},
                           figures=figures)
    return folder, summary
