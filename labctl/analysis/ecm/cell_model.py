"""Characterisation tables -> a `CellModel` the simulator can run, and the long CSV format.

Tables that span one temperature become SoC-only `Table`s (the simulator then
scales resistances with `activation_energy_ev`); tables that span several
temperatures become SoC x temperature `Table`s on a common SoC grid (each
temperature's values interpolated onto it, constant beyond its own ends).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from labctl.analysis.ecm.segments import cluster_values, require_columns
from labctl.cells.spec import CellModel, RCPair, Table, ThermalModel
from labctl.errors import LabctlError


def table_from_long(df: pd.DataFrame, column: str, *, positive: bool = False,
                    soc_gap: float = 0.005, temperature_gap_c: float = 2.0) -> Table:
    """A Table from long rows (soc, [temperature_c], column); NaN (and, if positive, <= 0) dropped."""
    require_columns(df, ("soc", column), f"table {column}")
    cols = ["soc", column] + (["temperature_c"] if "temperature_c" in df else [])
    d = df[cols].dropna(subset=["soc", column])
    if positive:
        d = d[d[column] > 0]
    if d.empty:
        raise LabctlError(f"table {column}: no finite{' positive' if positive else ''} values")
    if (d["soc"] < -1e-9).any() or (d["soc"] > 1 + 1e-9).any():
        raise LabctlError(f"table {column}: soc must lie within [0, 1]")
    temps = (cluster_values(d["temperature_c"].to_numpy(), temperature_gap_c)
             if "temperature_c" in d and d["temperature_c"].notna().all() else np.zeros(len(d)))
    # SoC set-points shared by all temperatures: cluster the union of SoCs.
    s_lab = cluster_values(d["soc"].to_numpy(), soc_gap)
    grid = np.clip(np.bincount(s_lab, d["soc"].to_numpy()) / np.bincount(s_lab), 0.0, 1.0)
    if len(grid) == 1:
        grid = np.array([0.0, 1.0])  # one set-point: constant over SoC
    rows, t_values = [], []
    for lab in np.unique(temps):
        g = d[temps == lab].sort_values("soc")
        soc = g["soc"].to_numpy()
        vals = g[column].to_numpy(dtype=float)
        u, inv = np.unique(soc, return_inverse=True)
        rows.append(np.interp(grid, u, np.bincount(inv, vals) / np.bincount(inv)))
        if "temperature_c" in g:
            t_values.append(float(g["temperature_c"].mean()))
    if len(rows) == 1:
        return Table(grid, rows[0])
    order = np.argsort(t_values)
    return Table(grid, np.array(rows)[order], np.array(t_values)[order])


def _as_table(value: Table | pd.DataFrame, column: str, positive: bool,
              soc_gap: float = 0.005) -> Table:
    if isinstance(value, Table):
        return value
    return table_from_long(value, column, positive=positive, soc_gap=soc_gap)


def ecm_tables_to_cell_model(ocv: Table | pd.DataFrame, ecm: pd.DataFrame, thermal: ThermalModel,
                             *, n_rc: int | None = None, activation_energy_ev: float = 0.0,
                             reference_temperature_c: float | None = None,
                             initial_soc: float = 0.5,
                             initial_temperature_c: float = 25.0) -> CellModel:
    """A CellModel from an OCV table (soc, [temperature_c], ocv_v) and an ECM table.

    `ecm` has soc, optional temperature_c, r0_ohm and r{j}_ohm / tau{j}_s columns
    (`hppc.ecm_table`). `n_rc` defaults to every RC pair the table has.
    `reference_temperature_c` defaults to the ECM table's mean temperature (25 °C
    without one): the temperature SoC-only resistance tables were measured at.
    """
    if n_rc is None:
        n_rc = 0
        while f"r{n_rc + 1}_ohm" in ecm and f"tau{n_rc + 1}_s" in ecm:
            n_rc += 1
    pairs = tuple(RCPair(_as_table(ecm, f"r{j}_ohm", True), _as_table(ecm, f"tau{j}_s", True))
                  for j in range(1, n_rc + 1))
    if reference_temperature_c is None:
        t = ecm["temperature_c"].dropna() if "temperature_c" in ecm else pd.Series([], dtype=float)
        reference_temperature_c = float(t.mean()) if len(t) else 25.0
    return CellModel(
        ocv_v=_as_table(ocv, "ocv_v", False, soc_gap=0.0), r0_ohm=_as_table(ecm, "r0_ohm", True),
        rc_pairs=pairs, thermal=thermal, activation_energy_ev=activation_energy_ev,
        reference_temperature_c=reference_temperature_c, initial_soc=initial_soc,
        initial_temperature_c=initial_temperature_c)


def ecm_table_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """Write an ECM table in the long cell-file format (soc, [temperature_c], value columns).

    A cell file reads each parameter with {csv: FILE, column: r0_ohm} and so on.
    """
    require_columns(df, ("soc", "r0_ohm"), "ECM table")
    values = [c for c in df.columns if c not in ("temperature_c", "soc", "n_pulses")]
    return write_long_csv(df, values, path)


def write_long_csv(df: pd.DataFrame, columns: list[str], path: str | Path,
                   soc_gap: float = 0.0) -> Path:
    """Rows (temperature_c,) soc, columns on one SoC grid shared by all temperatures.

    The cell-file loader needs every (temperature, SoC) pair, so each temperature's
    values are interpolated onto the union of SoCs (constant beyond its own ends).
    A table at a single temperature is written without the temperature_c column, so
    the loader makes it SoC-only (and Arrhenius scaling still applies to resistances).
    """
    tables = {c: table_from_long(df, c, soc_gap=soc_gap) for c in columns}
    # Columns with gaps (NaN rows) may have other grids: evaluate all on the first one's.
    first = tables[columns[0]]
    temps = [25.0] if first.temperature_c is None else list(first.temperature_c)
    data: dict[str, np.ndarray] = {}
    if first.temperature_c is not None:
        data["temperature_c"] = np.repeat(first.temperature_c, len(first.soc))
    data["soc"] = np.tile(first.soc, len(temps))
    for c, tab in tables.items():
        data[c] = np.concatenate([tab(first.soc, t) for t in temps])
    out = pd.DataFrame(data)
    if not np.all(np.isfinite(out.to_numpy(dtype=float))):
        raise LabctlError(f"table {', '.join(columns)}: values must be finite")
    path = Path(path)
    out.to_csv(path, index=False, float_format="%.9g")
    return path
