"""Lin-KK: valid spectra pass, drifting ones fail; mu and M as Schönleber et al. define them."""

from __future__ import annotations

import numpy as np
import pytest

from labctl.analysis.eis import lin_kk
from labctl.errors import LabctlError
from tests.analysis.eis.synth_eis import (
    CASES,
    F_60,
    LLTO,
    noisy,
    q_for,
    z_cpe,
    z_inductor,
    z_r_cpe,
    z_warburg_open,
)

F_LONG = np.logspace(6, -2, 70)


def _valid_spectra():
    out = {name: (F_60, model(truth)) for name, (truth, model) in CASES.items()}
    truth, model = CASES["R0-p(R1,CPE1)-p(R2,CPE2)"]
    out["two arcs + blocking CPE"] = (F_LONG, model(truth, F_LONG) + z_cpe(1e-3, 0.9, F_LONG))
    out["arc + open Warburg"] = (F_LONG, model(truth, F_LONG) + z_warburg_open(80.0, 5.0, F_LONG))
    # LLTO pellet, bulk arc's apex above the highest frequency (10 MHz).
    sg, st = LLTO[1100]
    f = np.logspace(7, -1, 81)
    rb, rgb = 0.1 / sg, 0.1 / st - 0.1 / sg
    out["LLTO pellet"] = (f, z_r_cpe(rb, q_for(rb, rb * 1e-11, 0.95), 0.95, f)
                          + z_r_cpe(rgb, q_for(rgb, rgb * 1e-9, 0.9), 0.9, f)
                          + z_cpe(1e-6, 0.85, f))
    return out


VALID = _valid_spectra()


@pytest.mark.parametrize("name", list(VALID))
def test_valid_spectra_with_half_percent_noise_pass(name):
    # 20 seeds: the choice of M must not depend on the noise draw (issue 13: seed 1
    # failed with M = 9 on numpy 2.4 / scipy 1.17 when the solve used the normal equations).
    f, z = VALID[name]
    for seed in range(1, 21):
        r = lin_kk(f, noisy(z, 0.005, seed))
        assert r.valid, (seed, r.max_abs_residual_pct, r.m)
        # Residuals are the noise, not structure: RMS near 0.5 % (less what M RCs absorb).
        rms = np.sqrt(np.mean(np.r_[r.residual_real_pct, r.residual_imag_pct] ** 2))
        assert 0.25 < rms < 0.6


@pytest.mark.parametrize("name", list(VALID))
def test_noise_free_valid_spectra_are_reproduced_closely(name):
    f, z = VALID[name]
    r = lin_kk(f, z)
    assert r.valid
    assert r.max_abs_residual_pct < 1.0  # a CPE tail is approximated by RCs + C


def _drifting(drift: float, f=F_LONG):
    """Two arcs, R2 growing linearly in measurement time over the sweep (HF first).

    Each frequency is measured for max(3 periods, 1 s), so most of the time, and
    most of the drift, falls on the low-frequency points.
    """
    truth, _ = CASES["R0-p(R1,CPE1)-p(R2,CPE2)"]
    t = np.cumsum(np.maximum(3.0 / f, 1.0))
    r2 = truth["R2"] * (1.0 + drift * t / t[-1])
    q2 = truth["CPE2_0"]  # the double layer stays, the resistance grows
    return (truth["R0"] + z_r_cpe(truth["R1"], truth["CPE1_0"], truth["CPE1_1"], f)
            + r2 / (1.0 + r2 * q2 * (1j * 2 * np.pi * f) ** truth["CPE2_1"]))


def test_drift_during_the_sweep_fails():
    for seed in range(1, 21):
        r = lin_kk(F_LONG, noisy(_drifting(0.5), 0.005, seed))
        assert not r.valid, r.max_abs_residual_pct
        # The violation sits at low frequency, where the drift happened.
        worst = np.argmax(np.maximum(np.abs(r.residual_real_pct), np.abs(r.residual_imag_pct)))
        assert F_LONG[worst] < 1.0
    steady = lin_kk(F_LONG, noisy(_drifting(0.0), 0.005, 1))
    drifting = lin_kk(F_LONG, noisy(_drifting(0.5), 0.005, 1))
    assert steady.valid
    assert drifting.max_abs_residual_pct > 2 * steady.max_abs_residual_pct


def test_mu_is_the_published_formula_and_stops_the_search():
    truth, model = CASES["R0-p(R1,CPE1)-p(R2,CPE2)"]
    z = noisy(model(truth), 0.005, 4)
    r = lin_kk(F_60, z)
    rk = r.resistances_ohm
    mu = 1 - np.abs(rk[rk < 0]).sum() / np.abs(rk[rk >= 0]).sum()
    assert r.mu == pytest.approx(mu, rel=1e-12)
    assert r.mu < 0.85 and len(rk) == r.m < 50
    # Time constants: log-spaced from 0.1/omega_max (one decade extension) to 1/omega_min.
    w = 2 * np.pi * F_60
    np.testing.assert_allclose(r.time_constants_s[[0, -1]], [0.1 / w.max(), 1 / w.min()],
                               rtol=1e-12)
    assert np.allclose(np.diff(np.log(r.time_constants_s)), np.log(r.time_constants_s[1] /
                                                                   r.time_constants_s[0]))
    # Fixing M reproduces the same fit; fewer elements fit worse.
    same = lin_kk(F_60, z, m=r.m)
    np.testing.assert_allclose(same.z_fit, r.z_fit, rtol=1e-8)
    coarse = lin_kk(F_60, z, m=4)
    assert coarse.max_abs_residual_pct > r.max_abs_residual_pct
    # A lower cut-off c asks for more over-fitting before it stops.
    assert lin_kk(F_60, z, c=0.5).m >= r.m


def test_the_kk_model_itself_is_exact():
    # A spectrum that IS a sum of RC elements on the Lin-KK grid is reproduced exactly.
    w = 2 * np.pi * F_60
    tau = np.exp(np.linspace(np.log(0.1 / w.max()), np.log(1 / w.min()), 12))
    rk = np.linspace(5, 30, 12)
    z = 7.0 + (rk / (1 + 1j * np.outer(w, tau))).sum(axis=1) + 1 / (1j * w * 0.02)
    r = lin_kk(F_60, z, m=12)
    np.testing.assert_allclose(r.resistances_ohm, rk, rtol=1e-6)
    assert r.r_series_ohm == pytest.approx(7.0, rel=1e-6)
    assert r.inverse_capacitance_per_f == pytest.approx(50.0, rel=1e-6)
    assert r.max_abs_residual_pct < 1e-6


def test_series_inductance_option():
    truth, model = CASES["R0-p(R1,CPE1)"]
    z = noisy(model(truth) + z_inductor(2e-6, F_60), 0.005, 9)
    with_l = lin_kk(F_60, z, inductance=True)
    assert with_l.valid
    assert with_l.inductance_h == pytest.approx(2e-6, rel=0.2)


def test_bad_input():
    with pytest.raises(LabctlError, match="matching"):
        lin_kk(F_60, np.ones(10))
    with pytest.raises(LabctlError, match="> 0"):
        lin_kk(-F_60, np.ones(60) + 0j)
