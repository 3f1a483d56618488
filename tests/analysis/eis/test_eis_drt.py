"""DRT against truth: a ZARC's analytic distribution, R-RC-RC peaks and areas."""

from __future__ import annotations

import numpy as np
import pytest

from labctl.analysis.eis.drt import drt
from labctl.errors import LabctlError
from tests.analysis.eis.synth_eis import noisy, w, z_r_c

F = np.logspace(6, -2, 81)


def zarc_gamma(tau, r, tau0, alpha):
    """Analytic DRT of R / (1 + (j omega tau0)^alpha), per unit ln tau (Fuoss-Kirkwood)."""
    x = np.log(tau / tau0)
    return r / (2 * np.pi) * np.sin((1 - alpha) * np.pi) / (np.cosh(alpha * x)
                                                             - np.cos((1 - alpha) * np.pi))


@pytest.mark.parametrize("alpha", [0.7, 0.85])
def test_zarc_distribution_matches_the_analytic_one(alpha):
    r, tau0 = 100.0, 1e-3
    z = 5.0 + r / (1 + (1j * w(F) * tau0) ** alpha)
    for seed in (1, 2):
        res = drt(F, noisy(z, 0.002, seed))
        truth = zarc_gamma(res.tau_s, r, tau0, alpha)
        assert np.linalg.norm(res.gamma_ohm - truth) / np.linalg.norm(truth) < 0.15
        big = max(res.peaks, key=lambda p: p.resistance_ohm)
        assert big.tau_s == pytest.approx(tau0, rel=0.05)
        assert res.r_polarisation_ohm == pytest.approx(r, rel=0.03)
        assert res.r_inf_ohm == pytest.approx(5.0, rel=0.05)
        assert res.lambda_method == "GCV" and res.lam > 0


@pytest.mark.parametrize("taus", [(1e-4, 1e-1), (1e-5, 3e-3), (2e-3, 2.0)])
def test_r_rc_rc_peaks_at_true_tau_with_true_areas(taus):
    r0, r1, r2 = 10.0, 50.0, 80.0
    t1, t2 = taus
    z = r0 + z_r_c(r1, t1 / r1, F) + z_r_c(r2, t2 / r2, F)
    for seed in (1, 2, 3):
        res = drt(F, noisy(z, 0.003, seed))
        main = sorted(sorted(res.peaks, key=lambda p: -p.resistance_ohm)[:2],
                      key=lambda p: p.tau_s)
        assert len(main) == 2
        for p, tau, r in zip(main, (t1, t2), (r1, r2), strict=True):
            assert p.tau_s == pytest.approx(tau, rel=0.05)
            assert p.resistance_ohm == pytest.approx(r, rel=0.05)
            assert p.frequency_hz == pytest.approx(1 / (2 * np.pi * tau), rel=0.05)


def test_back_computed_spectrum_leaves_only_the_noise():
    z = 10.0 + z_r_c(50.0, 1e-4 / 50, F) + z_r_c(80.0, 0.1 / 80, F)
    res = drt(F, noisy(z, 0.005, 4))
    rms = np.sqrt(np.mean(np.r_[res.residual_real_pct, res.residual_imag_pct] ** 2))
    assert 0.3 < rms < 0.6  # the 0.5 % noise, less what the model absorbs


def test_lcurve_and_fixed_lambda():
    z = 5.0 + 100 / (1 + (1j * w(F) * 1e-3) ** 0.8)
    lc = drt(F, noisy(z, 0.002, 1), method="lcurve")
    assert lc.lambda_method == "L-curve"
    assert max(lc.peaks, key=lambda p: p.resistance_ohm).tau_s == pytest.approx(1e-3, rel=0.05)
    fixed = drt(F, z, lam=1e-3)
    assert fixed.lambda_method == "given" and fixed.lam == 1e-3
    # Heavier regularisation gives a smoother, lower, wider peak with the same area.
    light = drt(F, z, lam=1e-7)
    assert fixed.gamma_ohm.max() < light.gamma_ohm.max()
    assert fixed.r_polarisation_ohm == pytest.approx(light.r_polarisation_ohm, rel=0.03)


def test_blocking_tail_goes_to_the_series_capacitance():
    c = 2e-3
    z = 5.0 + z_r_c(40.0, 1e-3 / 40, F) + 1 / (1j * w(F) * c)
    res = drt(F, z)
    assert np.isfinite(res.capacitance_f)
    assert res.capacitance_f == pytest.approx(c, rel=0.05)
    assert max(res.peaks, key=lambda p: p.resistance_ohm).resistance_ohm == pytest.approx(
        40.0, rel=0.05)


def test_bad_input():
    with pytest.raises(LabctlError, match="at least 5"):
        drt(F[:3], np.ones(3) + 0j)
    with pytest.raises(LabctlError, match="lambda"):
        drt(F, np.ones(F.size) + 0j, lam=-1.0)
    with pytest.raises(LabctlError, match="'gcv' or 'lcurve'"):
        drt(F, np.ones(F.size) + 0j, method="x")


def test_cli_on_a_spectrum_file(tmp_path):
    from labctl.analysis.eis import write_spectrum_csv
    from labctl.capabilities.potentiostat import Spectrum
    from tests.support import json_out, labctl_cmd

    z = 10.0 + z_r_c(50.0, 1e-4 / 50, F) + z_r_c(80.0, 0.1 / 80, F)
    z = noisy(z, 0.002, 7)
    path = write_spectrum_csv(tmp_path / "cell.csv", Spectrum(F, z.real, z.imag))
    proc = labctl_cmd("analyze", "drt", str(path), "--json", "--output",
                      str(tmp_path / "cell-drt"))
    assert proc.returncode == 0, proc.stderr
    out = json_out(proc)["summary"]["spectra"][0]
    assert out["lambda_method"] == "GCV"
    big = sorted(sorted(out["peaks"], key=lambda p: -p["resistance_ohm"])[:2],
                 key=lambda p: p["tau_s"])
    assert [round(p["tau_s"] / t, 1) for p, t in zip(big, (1e-4, 0.1), strict=True)] == [1.0, 1.0]
    folder = tmp_path / "cell-drt"
    assert {"drt.parquet", "drt_peaks.parquet", "drt_fit.parquet", "summary.json",
            "drt-000.png"} <= {p.name for p in folder.iterdir()}
    # Without --output the file is imported and analysed as a run in the results store.
    stored = labctl_cmd("analyze", "drt", str(path), "--json", "--no-plots", "--results",
                        str(tmp_path / "results"), "--lambda", "1e-4")
    assert stored.returncode == 0, stored.stderr
    assert json_out(stored)["summary"]["spectra"][0]["lambda_method"] == "given"
    folder = json_out(stored)["folder"]
    assert folder.startswith(str(tmp_path / "results")) and folder.endswith("analysis/drt")
    bad = labctl_cmd("analyze", "drt", str(path), "--lambda", "soon")
    assert bad.returncode == 2 and "--lambda 'soon'" in bad.stderr and "Traceback" not in bad.stderr
