"""analyze_spectra: the tables, their contents, and what save() writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labctl.analysis.eis import analyze_spectra
from labctl.analysis.eis.plots import bode_figure, nyquist_figure
from labctl.capabilities.potentiostat import Spectrum
from labctl.errors import LabctlError
from tests.analysis.eis.synth_eis import CASES, F_60, noisy, z_r_cpe

CIRCUIT = "R0-p(R1,CPE1)-p(R2,CPE2)"
TRUTH, MODEL = CASES[CIRCUIT]


def _spectra():
    """Three states of one cell; the last drifted during its sweep (KK must flag it)."""
    out = []
    for k in range(2):
        p = dict(TRUTH, R2=TRUTH["R2"] * (1 + 0.2 * k))
        out.append(MODEL(p))
    f = np.logspace(6, -2, 60)
    t = np.cumsum(np.maximum(3.0 / f, 1.0))
    r2 = TRUTH["R2"] * (1.0 + 0.6 * t / t[-1])
    drifted = (TRUTH["R0"] + z_r_cpe(TRUTH["R1"], TRUTH["CPE1_0"], TRUTH["CPE1_1"], f)
               + r2 / (1 + r2 * TRUTH["CPE2_0"] * (1j * 2 * np.pi * f) ** TRUTH["CPE2_1"]))
    return ([Spectrum(F_60, z.real, z.imag) for z in out]
            + [Spectrum(f, drifted.real, drifted.imag)])


def test_tables_hold_fits_residuals_and_kk():
    spectra = _spectra()
    res = analyze_spectra(spectra, CIRCUIT, names=["fresh", "aged", "drifting"])
    fits = res.fits
    assert list(fits["name"]) == ["fresh", "aged", "drifting"]
    for name in ["R0", "R1", "CPE1_0", "CPE1_1", "R2", "CPE2_0", "CPE2_1"]:
        assert name in fits and f"{name}_stderr" in fits
    # Values: the first two spectra are noise-free, so the fit is the truth.
    assert fits.loc[0, "R2"] == pytest.approx(TRUTH["R2"], rel=1e-3)
    assert fits.loc[1, "R2"] == pytest.approx(1.2 * TRUTH["R2"], rel=1e-3)
    assert fits.loc[0, "CPE2_1"] == pytest.approx(TRUTH["CPE2_1"], rel=1e-3)
    assert list(fits["kk_valid"]) == [True, True, False]
    assert fits["kk_m"].dtype.kind == "i" and (fits["kk_m"] >= 3).all()
    assert (fits["fit_success"]).all()
    # Long tables: one row per spectrum and frequency.
    assert len(res.residuals) == 3 * 60 and len(res.linkk) == 3 * 60
    r0 = res.residuals[res.residuals["spectrum"] == 0]
    np.testing.assert_allclose(r0["z_real_ohm"], spectra[0].z_real_ohm)
    assert np.abs(r0["residual_real_pct"]).max() < 1e-3
    worst_kk = res.linkk.groupby("spectrum")["residual_imag_pct"].apply(lambda s: s.abs().max())
    assert worst_kk[2] > worst_kk[0]
    units = dict(zip(res.parameters["parameter"], res.parameters["unit"], strict=True))
    assert units["CPE1_0"] == "Ohm^-1 s^a" and units["R0"] == "Ohm"
    assert res.conductivity is None and res.arrhenius is None


def test_save_writes_parquet_and_pngs(tmp_path):
    res = analyze_spectra([(F_60, noisy(MODEL(TRUTH), 0.005, 1))] * 2, CIRCUIT,
                          thickness_mm=1.0, area_cm2=0.5, temperatures_c=[25.0, 45.0])
    written = res.save(tmp_path / "eis")
    names = {p.name for p in written}
    for table in ("fits", "residuals", "linkk", "parameters", "conductivity", "arrhenius"):
        assert f"{table}.parquet" in names
        back = pd.read_parquet(tmp_path / "eis" / f"{table}.parquet")
        pd.testing.assert_frame_equal(back, getattr(res, table), check_dtype=False)
    pngs = [p for p in written if p.suffix == ".png"]
    assert len(pngs) == 2 * 2 + 1  # Nyquist + Bode per spectrum, and the Arrhenius plot
    for p in pngs:
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_plots_show_the_data_and_the_fit():
    res = analyze_spectra([(F_60, MODEL(TRUTH))], CIRCUIT)
    fit = res.fit_results[0]
    fig = nyquist_figure(F_60, fit.z_data, fit)
    ax = fig.axes[0]
    assert ax.get_aspect() == 1.0
    data_line, fit_line = ax.lines[0], ax.lines[1]
    np.testing.assert_allclose(data_line.get_ydata(), -MODEL(TRUTH).imag)  # -Z'' up
    assert len(fit_line.get_xdata()) > len(F_60)  # a smooth model curve
    bode = bode_figure(F_60, fit.z_data, fit)
    mag, phase = bode.axes
    assert mag.get_xscale() == "log" and mag.get_yscale() == "log"
    np.testing.assert_allclose(phase.lines[0].get_ydata(),
                               np.degrees(np.angle(MODEL(TRUTH))))


def test_argument_errors():
    spectra = [(F_60, MODEL(TRUTH))]
    with pytest.raises(LabctlError, match="both thickness_mm and area_cm2"):
        analyze_spectra(spectra, CIRCUIT, thickness_mm=1.0)
    with pytest.raises(LabctlError, match="2 temperatures_c for 1 spectra"):
        analyze_spectra(spectra, CIRCUIT, temperatures_c=[25.0, 30.0])
    with pytest.raises(LabctlError, match="no spectra"):
        analyze_spectra([], CIRCUIT)
