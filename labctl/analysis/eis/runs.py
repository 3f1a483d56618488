"""EIS analysis of a run's spectra, or of a spectrum file, stored beside the data.

A run's `spectra` record table (written by the `eis` step) holds one row per
frequency; each spectrum is one `step_index`. `analyze_run` fits them all (warm
start, in measurement order), runs Lin-KK, and with a pellet geometry computes
conductivities and, when the spectra were taken at different temperatures, the
Arrhenius activation energies. Results go to run_dir/analysis/eis/ through
`store.analysis.save_analysis`, so `open_run(path).analysis("eis")` returns them.

Geometry: `thickness_mm`/`area_cm2` as given; otherwise, when the run's cell
file (inputs/cell.yaml) describes a pellet (`impedance: kind: pellet`), its
thickness and area.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labctl.analysis.eis.analysis import EisAnalysis, analyze_spectra
from labctl.capabilities.potentiostat import Spectrum
from labctl.errors import LabctlError

ANALYSIS_NAME = "eis"
CELL_CIRCUIT = "R0-p(R1,CPE1)-W1"
PELLET_CIRCUIT = "p(R1,CPE1)-p(R2,CPE2)-CPE3"
MAX_PLOTTED = 40  # Nyquist/Bode PNGs per analysis: more would only slow it down


def run_spectra(run: Any) -> tuple[list[Spectrum], pd.DataFrame]:
    """The run's spectra in measurement order, and one row of conditions per spectrum."""
    if "spectra" not in run.record_tables():
        raise LabctlError(f"{run.path}: the run has no spectra (no eis step recorded any)")
    rows = run.records("spectra")
    spectra, info = [], []
    for k, (step, g) in enumerate(rows.groupby("step_index", sort=True)):
        g = g.sort_values("point") if "point" in g else g
        spectra.append(Spectrum(g["frequency_hz"].to_numpy(float), g["z_real_ohm"].to_numpy(float),
                                g["z_imag_ohm"].to_numpy(float)))
        label = str(g["label"].iloc[0]) if "label" in g and g["label"].iloc[0] else ""
        info.append({
            "spectrum": k, "step_index": int(step),
            "cycle_index": int(g["cycle_index"].iloc[0]) if "cycle_index" in g else 0,
            "label": label,
            "test_time_s": float(g["test_time_s"].iloc[0]),
            "temperature_c": _mean(g, "temperature_c"),
            "voltage_v": _mean(g, "voltage_v"),
            "current_a": _mean(g, "current_a"),
            "pressure_mpa": _mean(g, "pressure_mpa"),
        })
    return spectra, pd.DataFrame(info)


def _mean(g: pd.DataFrame, col: str) -> float:
    if col not in g:
        return float("nan")
    values = pd.to_numeric(g[col], errors="coerce").to_numpy(float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def run_pellet_geometry(run_dir: Path) -> tuple[float, float] | None:
    """(thickness_mm, area_cm2) from the run's copy of its cell file, if it is a pellet."""
    cell_file = Path(run_dir) / "inputs" / "cell.yaml"
    if not cell_file.is_file():
        return None
    from labctl.cells.impedance_spec import PelletImpedance
    from labctl.cells.load import load_cell

    try:
        imp = load_cell(cell_file).extra.get("impedance")
    except LabctlError:
        return None
    if isinstance(imp, PelletImpedance):
        return imp.thickness_mm, imp.area_cm2
    return None


def _names(info: pd.DataFrame) -> list[str]:
    out = []
    for row in info.itertuples():
        name = f"step {row.step_index}"
        if np.isfinite(row.temperature_c):
            name += f" {row.temperature_c:.1f}C"
        if row.label:
            name += f" {row.label}"
        out.append(name)
    return out


def analyze_run(run_dir: str | Path, circuit: str | None = None, *,
                thickness_mm: float | None = None, area_cm2: float | None = None,
                plots: bool = True, **options: Any) -> tuple[EisAnalysis, Path, dict]:
    """Fit every spectrum of a run and store the result; returns (analysis, folder, summary)."""
    from labctl.store.analysis import save_analysis
    from labctl.store.run import open_run

    run = open_run(run_dir)
    spectra, info = run_spectra(run)
    geometry_from = "arguments"
    if thickness_mm is None and area_cm2 is None:
        found = run_pellet_geometry(run.path)
        if found is not None:
            thickness_mm, area_cm2 = found
            geometry_from = "cell file"
        else:
            geometry_from = None
    if circuit is None:  # labctl knows what it measured; another cycler's file does not
        circuit = ("auto" if run.meta.get("status") == "imported" else
                   PELLET_CIRCUIT if geometry_from == "cell file" else CELL_CIRCUIT)
    circuit, selection = _resolve_circuit(circuit, spectra, options.get("weighting", "modulus"))
    temps = info["temperature_c"].to_numpy(float)
    # Arrhenius only makes sense when the temperatures really differ (> 1 K apart).
    distinct = np.isfinite(temps).any() and np.nanmax(temps) - np.nanmin(temps) > 1.0
    result = analyze_spectra(spectra, circuit, thickness_mm=thickness_mm, area_cm2=area_cm2,
                             temperatures_c=temps if distinct else None, names=_names(info),
                             **options)
    result.fits = info.drop(columns=["temperature_c"]).merge(result.fits, on="spectrum") \
        if distinct else info.merge(result.fits.drop(columns=["temperature_c"]), on="spectrum")
    summary = summarize(result, geometry=(thickness_mm, area_cm2), geometry_from=geometry_from)
    summary["run"] = run.path.name
    if selection is not None:
        summary["circuit_selection"] = selection
    folder = save_analysis(run.path, ANALYSIS_NAME, tables=result.tables(), summary=summary,
                           figures=_figures(result) if plots else None)
    return result, folder, summary


def _resolve_circuit(circuit: str, spectra: list, weighting: str) -> tuple[str, dict | None]:
    """`auto` -> the circuit chosen by BIC (module `select`) and how; else as given."""
    if circuit.strip().lower() != "auto":
        return circuit, None
    from labctl.analysis.eis.fit import spectrum_arrays
    from labctl.analysis.eis.select import choose_circuit, chosen_spectra

    arrays = [spectrum_arrays(s) for s in spectra]
    chosen, scored = choose_circuit(arrays, weighting=weighting)
    return chosen, {"method": "BIC of the multi-start fit, summed over spectra "
                              f"{chosen_spectra(len(arrays))}; circuits with parameters not "
                              "identifiable on most of them rank last",
                    "candidates": [c.as_dict() for c in scored]}


def summarize(result: EisAnalysis, *, geometry: tuple, geometry_from: str | None) -> dict:
    fits = result.fits
    out: dict[str, Any] = {
        "circuit": result.circuit,
        "n_spectra": int(len(fits)),
        "n_fit_failed": int((~fits["fit_success"].astype(bool)).sum()),
        "n_kk_invalid": int((~fits["kk_valid"].astype(bool)).sum()),
        "n_with_not_identifiable": int((fits["not_identifiable"] != "").sum()),
        "n_with_at_bound": int((fits["at_bound"] != "").sum()),
        "fit_status": [
            {"spectrum": int(r["spectrum"]), "converged": bool(r["fit_converged"]),
             "converged_by": r["fit_converged_by"],
             "at_bound": [x for x in r["at_bound"].split(",") if x],
             "not_identifiable": [x for x in r["not_identifiable"].split(",") if x]}
            for r in fits.to_dict("records")],
        "median_chi_square": float(np.median(fits["chi_square"])),
        "parameters": {
            name: {"unit": unit, "first": float(fits[name].iloc[0]),
                   "last": float(fits[name].iloc[-1])}
            for name, unit in zip(result.parameters["parameter"], result.parameters["unit"],
                                  strict=True)
        },
    }
    if result.conductivity is not None:
        c = result.conductivity
        out["geometry"] = {"thickness_mm": geometry[0], "area_cm2": geometry[1],
                           "from": geometry_from}
        out["sigma_bulk_s_per_cm"] = [float(x) for x in c["sigma_bulk_s_per_cm"]]
        if "sigma_total_s_per_cm" in c:
            out["sigma_total_s_per_cm"] = [float(x) for x in c["sigma_total_s_per_cm"]]
    if result.arrhenius is not None:
        out["arrhenius"] = {
            row["quantity"]: {k: row[k] for k in row if k != "quantity"}
            for row in result.arrhenius.to_dict("records")
        }
    return out


def _figures(result: EisAnalysis) -> dict[str, Any]:
    from labctl.analysis.eis import plots

    figs: dict[str, Any] = {}
    n = len(result.fit_results)
    picks = range(n) if n <= MAX_PLOTTED else np.unique(np.linspace(0, n - 1, MAX_PLOTTED).astype(int))
    for i in picks:
        fit, label = result.fit_results[i], result.names[i]
        stem = f"{i:03d}"
        title = f"{label}  chi2={fit.chi_square:.3g}"
        figs[f"nyquist-{stem}"] = plots.nyquist_figure(fit.frequency_hz, fit.z_data, fit, title)
        figs[f"bode-{stem}"] = plots.bode_figure(fit.frequency_hz, fit.z_data, fit, title)
    if result.arrhenius is not None and result.conductivity is not None:
        c = result.conductivity.dropna(subset=["temperature_c"])
        sig = {"bulk": c["sigma_bulk_s_per_cm"].to_numpy()}
        if c["grain_boundary_resistor"].notna().any():
            sig["total"] = c["sigma_total_s_per_cm"].to_numpy()
        figs["arrhenius"] = plots.arrhenius_figure(c["temperature_c"].to_numpy(), sig,
                                                   result.arrhenius_results)
    return figs


def analyze_file(path: str | Path, circuit: str | None = None, *, output: str | Path | None = None,
                 thickness_mm: float | None = None, area_cm2: float | None = None,
                 temperature_c: float | None = None, plots: bool = True,
                 **options: Any) -> tuple[EisAnalysis, Path, dict]:
    """Fit one spectrum file; results go to `output` (default: <file stem>-eis/ beside it)."""
    from labctl.analysis.eis.io import read_spectrum

    path = Path(path)
    spectrum = read_spectrum(path)
    circuit, selection = _resolve_circuit(circuit or "auto", [spectrum],
                                          options.get("weighting", "modulus"))
    result = analyze_spectra([spectrum], circuit, thickness_mm=thickness_mm,
                             area_cm2=area_cm2,
                             temperatures_c=None if temperature_c is None else [temperature_c],
                             names=[path.stem], **options)
    folder = Path(output) if output is not None else path.with_name(f"{path.stem}-eis")
    folder.mkdir(parents=True, exist_ok=True)
    summary = summarize(result, geometry=(thickness_mm, area_cm2),
                        geometry_from="arguments" if thickness_mm is not None else None)
    summary["file"] = str(path)
    if selection is not None:
        summary["circuit_selection"] = selection
    _save_plain(folder, result, summary, plots)
    return result, folder, summary


def _save_plain(folder: Path, result: EisAnalysis, summary: dict, plots: bool) -> None:
    """The files save_analysis would write, in a folder that is not a run's."""
    import io

    from labctl.store.analysis import _jsonable
    from labctl.store.atomic import atomic_write_bytes, atomic_write_json

    for name, df in result.tables().items():
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        atomic_write_bytes(folder / f"{name}.parquet", buf.getvalue())
    if plots:
        for name, fig in _figures(result).items():
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
            atomic_write_bytes(folder / f"{name}.png", buf.getvalue())
    atomic_write_json(folder / "summary.json", _jsonable(summary))
