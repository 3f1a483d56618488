"""`labctl analyze drt`: the DRT of a run's spectra or of a spectrum file, stored with plots.

Tables (RUN/analysis/drt/ or <file stem>-drt/ beside a file):
- ``drt``: spectrum, tau_s, frequency_hz (= 1 / (2 pi tau)), gamma_ohm (per unit ln tau);
- ``drt_peaks``: spectrum, peak, tau_s, frequency_hz, resistance_ohm, gamma_max_ohm;
- ``drt_fit``: spectrum, frequency_hz, data and back-computed Z', Z'', residuals in % of |Z|.
summary.json: per spectrum lambda and how it was chosen (GCV, L-curve or given),
R_inf, polarisation resistance, peaks and residual RMS/max.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labctl.analysis.eis.drt import DrtResult, drt
from labctl.analysis.eis.fit import spectrum_arrays

ANALYSIS_NAME = "drt"
MAX_PLOTTED = 20


def drt_many(spectra: list, *, lam: float | str = "auto", method: str = "gcv"
             ) -> list[DrtResult]:
    return [drt(*spectrum_arrays(s), lam=lam, method=method) for s in spectra]


def tables(results: list[DrtResult]) -> dict[str, pd.DataFrame]:
    g, p, fit = [], [], []
    for i, r in enumerate(results):
        g.append(pd.DataFrame({"spectrum": i, "tau_s": r.tau_s,
                               "frequency_hz": 1.0 / (2.0 * np.pi * r.tau_s),
                               "gamma_ohm": r.gamma_ohm}))
        for k, pk in enumerate(r.peaks):
            p.append({"spectrum": i, "peak": k, **pk.as_dict()})
        fit.append(pd.DataFrame({
            "spectrum": i, "frequency_hz": r.frequency_hz,
            "z_real_ohm": r.z_data.real, "z_imag_ohm": r.z_data.imag,
            "z_real_drt_ohm": r.z_fit.real, "z_imag_drt_ohm": r.z_fit.imag,
            "residual_real_pct": r.residual_real_pct, "residual_imag_pct": r.residual_imag_pct}))
    peaks = pd.DataFrame(p) if p else pd.DataFrame(
        columns=["spectrum", "peak", "tau_s", "frequency_hz", "resistance_ohm", "gamma_max_ohm",
                 "tau_from_s", "tau_to_s"])
    return {"drt": pd.concat(g, ignore_index=True), "drt_peaks": peaks,
            "drt_fit": pd.concat(fit, ignore_index=True)}


def summarize(results: list[DrtResult], names: list[str]) -> dict[str, Any]:
    return {"n_spectra": len(results),
            "spectra": [{"spectrum": i, "name": n, **r.summary()}
                        for i, (r, n) in enumerate(zip(results, names, strict=True))]}


def figures(results: list[DrtResult], names: list[str]) -> dict[str, Any]:
    from labctl.analysis.eis.plots import drt_figure

    n = len(results)
    picks = range(n) if n <= MAX_PLOTTED else np.unique(
        np.linspace(0, n - 1, MAX_PLOTTED).astype(int))
    return {f"drt-{i:03d}": drt_figure(results[i], names[i]) for i in picks}


def analyze_run(run_dir: str | Path, *, lam: float | str = "auto", method: str = "gcv",
                plots: bool = True) -> tuple[list[DrtResult], Path, dict]:
    from labctl.analysis.eis.runs import _names, run_spectra
    from labctl.store.analysis import save_analysis
    from labctl.store.run import open_run

    run = open_run(run_dir)
    spectra, info = run_spectra(run)
    names = _names(info)
    results = drt_many(spectra, lam=lam, method=method)
    summary = summarize(results, names)
    summary["run"] = run.path.name
    t = tables(results)
    for name in ("drt", "drt_peaks"):
        if len(t[name]):
            t[name] = t[name].merge(info, on="spectrum", how="left")
    folder = save_analysis(run.path, ANALYSIS_NAME, tables=t, summary=summary,
                           figures=figures(results, names) if plots else None)
    return results, folder, summary


def analyze_file(path: str | Path, *, lam: float | str = "auto", method: str = "gcv",
                 output: str | Path | None = None, plots: bool = True
                 ) -> tuple[list[DrtResult], Path, dict]:
    import io

    from labctl.analysis.eis.io import read_spectrum
    from labctl.store.analysis import _jsonable
    from labctl.store.atomic import atomic_write_bytes, atomic_write_json

    path = Path(path)
    results = drt_many([read_spectrum(path)], lam=lam, method=method)
    names = [path.stem]
    summary = summarize(results, names)
    summary["file"] = str(path)
    folder = Path(output) if output is not None else path.with_name(f"{path.stem}-drt")
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in tables(results).items():
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        atomic_write_bytes(folder / f"{name}.parquet", buf.getvalue())
    if plots:
        for name, fig in figures(results, names).items():
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=110)
            atomic_write_bytes(folder / f"{name}.png", buf.getvalue())
    atomic_write_json(folder / "summary.json", _jsonable(summary))
    return results, folder, summary
