"""`labctl analyze hppc RUN`: ECM tables vs SoC and temperature, DCIR, R0 activation energy, a cell file.

Contract with procedures/hppc.yaml (docs/characterization.md): pulses are
charge or discharge segments of 0.5-60 s that follow a rest; the rests of at
least `ocv_rest_s` (the set-point rests) give the OCV curve unless `ocv` is
given (a run directory with a pseudo-OCV or GITT run, or a CSV with soc, ocv_v);
SoC is counted from the run's fullest point (end of the CV hold) against the
charge moved between full and empty (the procedure ends at the min voltage).
Temperature set-points are the clusters of the pulses' measured temperatures.

RC fits: one pair by default, with a term proportional to the charge moved
that takes up the slow (diffusion) pairs a 10-30 s pulse cannot resolve
(`ecm.hppc(slow_slope=True)`); the window is 10 s before the pulse, the pulse
and `relax_s` after it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labctl.analysis.characterization.cell_file import cell_yaml, check_cell_folder
from labctl.analysis.characterization.common import (
    csv_bytes,
    figure,
    finite_or_none,
    long_csv_bytes,
    open_run_data,
)
from labctl.cells.spec import ThermalModel
from labctl.errors import LabctlError

NAME = "hppc"
DEFAULT_THERMAL = ThermalModel(45.0, 0.1)  # the cell loader's default (an 18650 can)


def _ocv_from(source: str | Path | None, own_run: Path, ocv_rest_s: float) -> tuple[pd.DataFrame, str]:
    """(soc, ocv_v) table and where it came from."""
    from labctl.analysis.characterization.ocv_run import ocv_table

    if source is None:
        table, _ = ocv_table(own_run, method="rests", min_rest_s=ocv_rest_s)
        return table[["soc", "ocv_v"]], "the HPPC run's set-point rests"
    path = Path(source)
    if path.is_dir():
        stored = path / "analysis" / "ocv" / "ocv.csv"
        if stored.is_file():
            return _read_ocv_csv(stored), str(stored)
        table, summary = ocv_table(path)
        return table[["soc", "ocv_v"]], f"{path} ({summary['method']})"
    if path.is_file():
        return _read_ocv_csv(path), str(path)
    raise LabctlError(f"--ocv {source}: neither a run directory nor a CSV file")


def _read_ocv_csv(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, comment="#")
    except (OSError, ValueError) as exc:
        raise LabctlError(f"{path}: cannot read the OCV table ({exc})") from None
    if not {"soc", "ocv_v"} <= set(df.columns) or len(df) < 2:
        raise LabctlError(f"{path}: an OCV table needs columns soc and ocv_v and two or more rows; "
                          f"found {', '.join(df.columns)}")
    if not np.isfinite(df[["soc", "ocv_v"]].to_numpy(dtype=float)).all():
        raise LabctlError(f"{path}: soc and ocv_v must be finite numbers")
    if "temperature_c" in df:  # one curve for the pulse fits: the mean over temperatures
        df = df.groupby("soc", as_index=False)["ocv_v"].mean()
    return df[["soc", "ocv_v"]].sort_values("soc").reset_index(drop=True)


def analyze_hppc(run_dir: str | Path, *, ocv: str | Path | None = None, n_rc: int = 1,
                 direction: str = "both", relax_s: float = 120.0, ocv_rest_s: float = 1200.0,
                 activation_energy_ev: float | None = None, slow_slope: bool = True,
                 plots: bool = True) -> tuple[Path, dict[str, Any]]:
    """Store analysis/hppc/: pulses, ecm table, DCIR, cell.yaml + ocv.csv + ecm.csv, summary, plots."""
    from labctl.analysis.ecm import activation_energy, ecm_table, ecm_tables_to_cell_model, hppc
    from labctl.store.analysis import save_analysis

    data = open_run_data(run_dir)
    ocv_df, ocv_source = _ocv_from(ocv, data.path, ocv_rest_s)
    res = hppc(data.timeseries, n_rc=n_rc, ocv=ocv_df, relax_s=relax_s, slow_slope=slow_slope)
    pulses = res.pulses
    ok = pulses[pulses["fit_success"]]
    if ok.empty:
        raise LabctlError(f"HPPC {data.path.name}: none of the {len(pulses)} pulses could be "
                          "fitted")
    table = ecm_table(ok, direction=direction)
    ea = None
    n_temps = int(table["temperature_c"].round(0).nunique()) if len(table) else 0
    ea_fit = None
    if n_temps >= 2:
        try:
            ea_fit = activation_energy(table, "r0_ohm")
            ea = ea_fit.activation_energy_ev
        except LabctlError:
            ea_fit = None
    if activation_energy_ev is not None:
        ea = activation_energy_ev
    cell = data.cell
    thermal = (cell.model.thermal if cell is not None and cell.model is not None
               else DEFAULT_THERMAL)
    try:
        model = ecm_tables_to_cell_model(ocv_df, table, thermal, n_rc=n_rc,
                                         activation_energy_ev=ea or 0.0)
    except LabctlError as exc:  # e.g. every fitted R1 <= 0: name the run and the pulses
        raise LabctlError(f"HPPC {data.path.name}: {len(ok)} of {len(pulses)} pulses fitted, "
                          f"but no cell model can be built from them ({exc}); see "
                          "docs/characterization.md for the pulses HPPC expects") from None
    model_cols = ["r0_ohm"] + [c for j in range(1, n_rc + 1) for c in (f"r{j}_ohm", f"tau{j}_s")]
    files = {"ocv.csv": long_csv_bytes(ocv_df, ["ocv_v"]),
             "ecm.csv": long_csv_bytes(table, model_cols),
             "ecm_table.csv": csv_bytes(table), "pulses.csv": csv_bytes(pulses)}
    summary = _summary(pulses, table, res.capacity_ah, ocv_source, ea_fit, ea, n_temps, n_rc)
    if cell is not None:
        note = (f"characterised by labctl analyze hppc from run {data.path.name} "
                f"(cell {cell.name}, OCV from {Path(ocv_source).name if ocv else 'its rests'})")
        files["cell.yaml"] = cell_yaml(
            name=f"{cell.name} (characterised)", chemistry=cell.chemistry,
            capacity_ah=res.capacity_ah, nominal_voltage_v=cell.nominal_voltage_v,
            limits=cell.limits, n_rc=n_rc, thermal=thermal, activation_energy_ev=ea or 0.0,
            reference_temperature_c=model.reference_temperature_c, source_note=note)
    figures = _figures(pulses, table, n_rc) if plots else {}
    folder = save_analysis(run_dir, NAME, tables={"pulses": pulses, "ecm": table, "ocv": ocv_df},
                           summary=summary, files=files, figures=figures)
    if "cell.yaml" in files:
        check_cell_folder(folder)
        summary["cell_file"] = str(folder / "cell.yaml")
        save_analysis(run_dir, NAME, summary=summary)
    return folder, summary


def _summary(pulses, table, capacity_ah, ocv_source, ea_fit, ea, n_temps, n_rc) -> dict[str, Any]:
    mid = table[(table.soc >= 0.2) & (table.soc <= 0.8)]
    out: dict[str, Any] = {
        "n_pulses": len(pulses), "n_fit_failed": int((~pulses.fit_success).sum()),
        "capacity_ah": capacity_ah, "ocv_source": str(ocv_source), "n_rc": n_rc,
        "n_setpoints": len(table), "temperatures_c": sorted(
            {round(float(t), 1) for t in table.temperature_c}) if n_temps else [],
        "soc_setpoints": [round(float(s), 4) for s in table.soc],
        "median_r0_ohm_soc_20_80": finite_or_none(mid.r0_ohm.median()) if len(mid) else None,
        "median_r1_ohm_soc_20_80": finite_or_none(mid.r1_ohm.median()) if len(mid) else None,
        "median_tau1_s_soc_20_80": finite_or_none(mid.tau1_s.median()) if len(mid) else None,
        "activation_energy_ev": ea,
    }
    for col in [c for c in table.columns if c.startswith("dcir_")]:
        out[f"median_{col}"] = finite_or_none(table[col].median())
    if ea_fit is not None:
        out["r0_activation_energy"] = {"activation_energy_ev": ea_fit.activation_energy_ev,
                                       "stderr_ev": ea_fit.stderr_ev,
                                       "n_temperatures": ea_fit.n_temperatures}
    return out


def _figures(pulses: pd.DataFrame, table: pd.DataFrame, n_rc: int) -> dict[str, Any]:
    fig, (ax_r, ax_t) = figure(2, (7.0, 7.0))
    for temp, grp in table.groupby(table.temperature_c.round(0)):
        lab = f"{temp:g} °C"
        ax_r.plot(100 * grp.soc, 1e3 * grp.r0_ohm, "o-", label=f"R0 {lab}")
        for j in range(1, n_rc + 1):
            ax_r.plot(100 * grp.soc, 1e3 * grp[f"r{j}_ohm"], "s--", label=f"R{j} {lab}")
            ax_t.plot(100 * grp.soc, grp[f"tau{j}_s"], "s--", label=f"tau{j} {lab}")
        for col in [c for c in grp.columns if c.startswith("dcir_")]:
            if grp[col].notna().any():
                ax_r.plot(100 * grp.soc, 1e3 * grp[col], ":", label=f"{col} {lab}")
    ax_r.set_ylabel("resistance / mOhm")
    ax_r.legend(fontsize=7, ncol=2)
    ax_t.set_ylabel("time constant / s")
    ax_t.set_xlabel("SoC / %")
    ax_t.legend(fontsize=7)
    fig.suptitle(f"HPPC: {len(pulses)} pulses")
    return {"ecm": fig}

