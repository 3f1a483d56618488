"""One call for a set of spectra: fit, Kramers-Kronig check, conductivity, Arrhenius.

`analyze_spectra` is what the CLI and the run pipeline call; it returns pandas
tables (one concern each) that `EisAnalysis.save` writes as Parquet next to
Nyquist and Bode PNGs. Everything is a function of the spectra and the
arguments, so it can be mapped over many runs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from labctl.analysis.eis.circuit import parse_circuit
from labctl.analysis.eis.conductivity import ArrheniusResult, arrhenius_fit, pellet_conductivity
from labctl.analysis.eis.fit import Bounds, FitResult, Initial, fit_many, spectrum_arrays
from labctl.analysis.eis.linkk import DEFAULT_C, DEFAULT_MAX_RESIDUAL_PCT, LinKKResult, lin_kk
from labctl.analysis.eis.multistart import IDENTIFIABLE_WITHIN
from labctl.errors import LabctlError


@dataclass
class EisAnalysis:
    """Tables of one analysis; `fit_results`/`linkk_results` keep the full objects."""

    circuit: str
    fits: pd.DataFrame  # one row per spectrum
    residuals: pd.DataFrame  # long: spectrum x frequency
    linkk: pd.DataFrame  # long: spectrum x frequency
    parameters: pd.DataFrame  # parameter name, unit
    conductivity: pd.DataFrame | None = None
    arrhenius: pd.DataFrame | None = None
    fit_results: list[FitResult] = field(default_factory=list)
    linkk_results: list[LinKKResult] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    arrhenius_results: dict[str, ArrheniusResult] = field(default_factory=dict)

    def tables(self) -> dict[str, pd.DataFrame]:
        out = {"fits": self.fits, "residuals": self.residuals, "linkk": self.linkk,
               "parameters": self.parameters}
        if self.conductivity is not None:
            out["conductivity"] = self.conductivity
        if self.arrhenius is not None:
            out["arrhenius"] = self.arrhenius
        return out

    def save(self, folder: str | Path, *, plots: bool = True) -> list[Path]:
        """Write every table as <name>.parquet and, with `plots`, nyquist/bode PNGs."""
        from labctl.analysis.eis import plots as eis_plots  # matplotlib only when plotting

        out_dir = Path(folder)
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for name, df in self.tables().items():
            p = out_dir / f"{name}.parquet"
            df.to_parquet(p, index=False)
            written.append(p)
        if not plots:
            return written
        for i, (fit, label) in enumerate(zip(self.fit_results, self.names, strict=True)):
            stem = f"{i:03d}-{_slug(label)}"
            title = f"{label}  chi2={fit.chi_square:.3g}"
            written.append(eis_plots.save_nyquist_png(out_dir / f"nyquist-{stem}.png",
                                                      fit.frequency_hz, fit.z_data, fit, title))
            written.append(eis_plots.save_bode_png(out_dir / f"bode-{stem}.png",
                                                   fit.frequency_hz, fit.z_data, fit, title))
        if self.arrhenius is not None and self.conductivity is not None:
            c = self.conductivity.dropna(subset=["temperature_c"])
            sig = {"bulk": c["sigma_bulk_s_per_cm"].to_numpy()}
            if c["grain_boundary_resistor"].notna().any():
                sig["total"] = c["sigma_total_s_per_cm"].to_numpy()
            fig = eis_plots.arrhenius_figure(c["temperature_c"].to_numpy(), sig,
                                             self.arrhenius_results)
            written.append(eis_plots.save_png(fig, out_dir / "arrhenius.png"))
        return written


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:40] or "spectrum"


def analyze_spectra(spectra: Sequence, circuit: str, *, thickness_mm: float | None = None,
                    area_cm2: float | None = None,
                    temperatures_c: Sequence[float] | None = None,
                    names: Sequence[str] | None = None, initial: Initial | None = None,
                    bounds: Bounds | None = None, weighting: str = "modulus",
                    warm_start: bool = True, bulk: str | None = None,
                    grain_boundary: str | None = None, arrhenius_form: str = "sigma_t",
                    kk_c: float = DEFAULT_C,
                    kk_max_residual_pct: float = DEFAULT_MAX_RESIDUAL_PCT,
                    identifiable_within: float = IDENTIFIABLE_WITHIN) -> EisAnalysis:
    """Fit `circuit` to every spectrum (Spectrum objects or (frequency_hz, z) pairs),
    test each with Lin-KK, and with a pellet geometry (thickness_mm, area_cm2)
    report bulk and total conductivity; with two or more `temperatures_c`
    (one per spectrum) also their Arrhenius activation energies.
    `identifiable_within`: see `fit_spectrum` (the `not_identifiable` flags).
    """
    spectra = list(spectra)
    if not spectra:
        raise LabctlError("analyze_spectra: no spectra given")
    c = parse_circuit(circuit)
    n = len(spectra)
    names = [str(x) for x in names] if names is not None else [f"spectrum {i}" for i in range(n)]
    temps = (np.asarray(temperatures_c, dtype=float) if temperatures_c is not None
             else np.full(n, np.nan))
    for what, seq in (("names", names), ("temperatures_c", temps)):
        if len(seq) != n:
            raise LabctlError(f"analyze_spectra: {len(seq)} {what} for {n} spectra")
    if (thickness_mm is None) != (area_cm2 is None):
        raise LabctlError("conductivity needs both thickness_mm and area_cm2")

    arrays = [spectrum_arrays(s) for s in spectra]
    from labctl.analysis.eis.io import MAX_POINTS

    for i, (f, _) in enumerate(arrays):
        if len(f) > MAX_POINTS:
            raise LabctlError(f"{names[i]}: {len(f)} points; a spectrum may have at most "
                              f"{MAX_POINTS} (issue the sweep as several spectra)")
    fits = fit_many(arrays, c, warm_start=warm_start, initial=initial, bounds=bounds,
                    weighting=weighting, identifiable_within=identifiable_within)
    kks = [lin_kk(f, z, c=kk_c, max_residual_pct=kk_max_residual_pct) for f, z in arrays]

    rows, res_rows, kk_rows = [], [], []
    for i, (fit, kk) in enumerate(zip(fits, kks, strict=True)):
        row = {"spectrum": i, "name": names[i], "temperature_c": temps[i]}
        status = fit.status()
        for pname, v, se in zip(fit.parameter_names, fit.parameters, fit.stderr, strict=True):
            row[pname] = float(v)
            row[f"{pname}_stderr"] = float(se)
            row[f"{pname}_at_bound"] = pname in status["at_bound"]
            row[f"{pname}_not_identifiable"] = pname in status["not_identifiable"]
        row.update(chi_square=fit.chi_square, chi_square_reduced=fit.chi_square_reduced,
                   weighting=fit.weighting, n_points=len(fit.frequency_hz),
                   fit_success=fit.success, fit_converged=status["converged"],
                   fit_converged_by=status["converged_by"],
                   at_bound=",".join(status["at_bound"]),
                   not_identifiable=",".join(status["not_identifiable"]),
                   n_starts=status["n_starts"],
                   fit_message=fit.message, kk_mu=kk.mu, kk_m=kk.m,
                   kk_max_residual_pct=kk.max_abs_residual_pct, kk_valid=kk.valid)
        rows.append(row)
        res_rows.append(pd.DataFrame({
            "spectrum": i, "frequency_hz": fit.frequency_hz,
            "z_real_ohm": fit.z_data.real, "z_imag_ohm": fit.z_data.imag,
            "z_real_fit_ohm": fit.z_fit.real, "z_imag_fit_ohm": fit.z_fit.imag,
            "residual_real_pct": fit.residual_real_pct,
            "residual_imag_pct": fit.residual_imag_pct}))
        kk_rows.append(pd.DataFrame({
            "spectrum": i, "frequency_hz": kk.frequency_hz,
            "z_real_kk_ohm": kk.z_fit.real, "z_imag_kk_ohm": kk.z_fit.imag,
            "residual_real_pct": kk.residual_real_pct,
            "residual_imag_pct": kk.residual_imag_pct}))

    out = EisAnalysis(
        circuit=c.text, fits=pd.DataFrame(rows),
        residuals=pd.concat(res_rows, ignore_index=True),
        linkk=pd.concat(kk_rows, ignore_index=True),
        parameters=pd.DataFrame({"parameter": c.parameter_names, "unit": c.parameter_units}),
        fit_results=fits, linkk_results=kks, names=names)

    if thickness_mm is not None:
        cond = []
        for i, fit in enumerate(fits):
            pc = pellet_conductivity(fit, thickness_mm=thickness_mm, area_cm2=area_cm2,
                                     bulk=bulk, grain_boundary=grain_boundary)
            flagged = set(fit.status()["not_identifiable"])
            d = pc.as_dict()
            cond.append({"spectrum": i, "name": names[i], "temperature_c": temps[i],
                         "fit_success": fit.success, **d,
                         # The data cannot tell this resistance: its conductivity neither.
                         "bulk_not_identifiable": d.get("bulk_resistor") in flagged,
                         "grain_boundary_not_identifiable":
                             d.get("grain_boundary_resistor") in flagged})
        out.conductivity = pd.DataFrame(cond)
        ok = out.conductivity[out.conductivity["fit_success"]
                              & out.conductivity["temperature_c"].notna()]
        if ok["temperature_c"].nunique() >= 2:
            quantities = {"bulk": "sigma_bulk_s_per_cm"}
            if ok["grain_boundary_resistor"].notna().any():
                quantities["total"] = "sigma_total_s_per_cm"
            arr = []
            for q, col in quantities.items():
                a = arrhenius_fit(ok["temperature_c"], ok[col], form=arrhenius_form)
                out.arrhenius_results[q] = a
                arr.append({"quantity": q, **a.__dict__})
            out.arrhenius = pd.DataFrame(arr)
    return out
