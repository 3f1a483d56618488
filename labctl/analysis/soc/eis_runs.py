"""Spectra of stored runs with their SoC labels, and `labctl analyze soc-eis`.

SoC labels: see `eis_estimator` (coulomb counting from the last full charge).
Results go to each evaluated run's analysis/soc-eis/: table `estimates` (one row
per spectrum: true and estimated SoC and temperature) and summary.json (RMSE and
maximum error, the training runs, the feature frequencies, the ridge penalties).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labctl.analysis.soc.eis_estimator import EisStateModel, common_band, errors
from labctl.errors import LabctlError

ANALYSIS_NAME = "soc-eis"
FULL_TOLERANCE_V = 0.02


def _cell(run: Any):
    from labctl.cells.load import load_cell

    path = Path(run.path) / "inputs" / "cell.yaml"
    if not path.is_file():
        raise LabctlError(f"{run.path}: no inputs/cell.yaml; give --capacity-ah")
    return load_cell(path)


def run_spectra_with_soc(run_dir: str | Path, capacity_ah: float | None = None
                         ) -> tuple[list[tuple[np.ndarray, np.ndarray]], pd.DataFrame]:
    """(spectra as (f, z), info with soc and temperature_c per spectrum) of one run."""
    from labctl.analysis.eis.runs import run_spectra
    from labctl.store.run import open_run

    run = open_run(run_dir)
    spectra, info = run_spectra(run)
    cell = _cell(run)
    capacity = float(capacity_ah if capacity_ah is not None else cell.capacity_ah)
    steps = run.steps
    full = steps[steps["text"].astype(str).str.startswith("Hold at")
                 & (steps["end_voltage_v"] >= cell.limits.max_voltage_v - FULL_TOLERANCE_V)]
    if full.empty:
        raise LabctlError(f"{run.path.name}: no full charge (a CV hold at "
                          f"{cell.limits.max_voltage_v} V) before the spectra, so their SoC is "
                          "not known; measure them after a CC-CV charge (eis-vs-soc)")
    ts = run.timeseries
    t = ts["test_time_s"].to_numpy(float)
    net = (ts["charge_capacity_ah"].to_numpy(float) - ts["discharge_capacity_ah"].to_numpy(float))
    ends = np.sort(full["end_time_s"].to_numpy(float))
    soc = []
    for when in info["test_time_s"].to_numpy(float):
        before = ends[ends <= when + 1e-9]
        if before.size == 0:
            raise LabctlError(f"{run.path.name}: a spectrum at {when:.0f} s comes before the "
                              "first full charge; its SoC is not known")
        ref = before[-1]
        soc.append(1.0 + (np.interp(when, t, net) - np.interp(ref, t, net)) / capacity)
    info = info.copy()
    info["soc"] = np.clip(soc, 0.0, 1.0)
    info["run"] = run.path.name
    arrays = [(s.frequency_hz, s.z_real_ohm + 1j * s.z_imag_ohm) for s in spectra]
    return arrays, info


def soc_eis(evaluate: list[str | Path], train: list[str | Path], *,
            capacity_ah: float | None = None, n_frequencies: int = 10,
            save: bool = True) -> dict[str, Any]:
    """Train on `train` runs, evaluate on each of `evaluate`; store and return results."""
    from labctl.store.analysis import save_analysis

    ev = [Path(p).resolve() for p in evaluate]
    tr = [Path(p).resolve() for p in train]
    if not tr:
        raise LabctlError("--train: give at least one run with spectra at known SoC")
    overlap = sorted({p.name for p in ev} & {p.name for p in tr})
    if overlap:
        raise LabctlError(f"{', '.join(overlap)}: a run cannot be both trained on and "
                          "evaluated (held-out evaluation)")
    train_data = [run_spectra_with_soc(p, capacity_ah) for p in tr]
    eval_data = [run_spectra_with_soc(p, capacity_ah) for p in ev]
    spectra = [s for sp, _ in train_data for s in sp]
    info = pd.concat([i for _, i in train_data], ignore_index=True)
    band = common_band(spectra + [s for sp, _ in eval_data for s in sp])
    model = EisStateModel.train(spectra, info["soc"].to_numpy(), info["temperature_c"].to_numpy(),
                                info["run"].to_numpy(), band=band, n_frequencies=n_frequencies)
    out: dict[str, Any] = {"train_runs": [p.name for p in tr],
                           "n_training_spectra": model.n_training_spectra,
                           "feature_frequencies_hz": [float(x) for x in model.frequencies_hz],
                           "ridge_alpha_soc": model.soc.alpha,
                           "ridge_alpha_temperature": model.temperature.alpha, "runs": []}
    for path, (sp, inf) in zip(ev, eval_data, strict=True):
        est = model.predict(sp)
        table = inf[["spectrum", "step_index", "test_time_s", "soc", "temperature_c"]].copy()
        table = table.rename(columns={"soc": "soc_true"})
        table["soc_estimate"] = est["soc_estimate"].to_numpy()
        table["temperature_estimate_c"] = est["temperature_estimate_c"].to_numpy()
        table["soc_error"] = table["soc_estimate"] - table["soc_true"]
        summary = {"run": path.name, "n_spectra": int(len(table)),
                   "soc": errors(table["soc_estimate"], table["soc_true"]),
                   "temperature_c": errors(table["temperature_estimate_c"],
                                           table["temperature_c"]),
                   **{k: v for k, v in out.items() if k != "runs"}}
        if save:
            summary["folder"] = str(save_analysis(path, ANALYSIS_NAME, tables={"estimates": table},
                                                  summary=summary))
        out["runs"].append(summary)
    return out
