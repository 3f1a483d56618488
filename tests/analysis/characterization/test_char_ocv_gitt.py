"""Pseudo-OCV, rest OCV and GITT against data generated in closed form from known models."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import isotonic_regression

from labctl.analysis.gitt import diffusion_length_from_mass, gitt, weppner_huggins
from labctl.analysis.ocv import isotonic_increasing, ocv_curve, pseudo_ocv, rest_ocv_points
from tests.analysis.characterization.synth import Truth, gitt_data, ocv_nmc, simulate

CAP = 2.0
R0, R1, TAU1 = 0.030, 0.015, 25.0
HYST = 0.020


def _pseudo_ocv_run(noise_v=1e-3):
    truth = Truth(CAP, ocv_nmc, lambda s: R0 + 0 * s, [(R1, TAU1)])
    c20 = CAP / 20
    sched = [(600.0, 0.0), (72000.0, -c20), (3600.0, 0.0), (72000.0, c20), (600.0, 0.0)]
    df, _ = simulate(truth, sched, 10.0, noise_v=noise_v, noise_i=1e-4, hysteresis_v=HYST)
    steps = pd.DataFrame({"step_index": [1, 2, 3, 4, 5],
                          "kind": ["rest", "discharge", "rest", "charge", "rest"]})
    return df, steps


def test_pseudo_ocv_recovers_curve_and_hysteresis():
    df, steps = _pseudo_ocv_run()
    r = pseudo_ocv(df, steps, grid_points=101)
    tb = r.table
    assert r.charge_step_index == 4 and r.discharge_step_index == 2
    assert r.charge_capacity_ah == pytest.approx(CAP, rel=1e-3)
    assert r.discharge_capacity_ah == pytest.approx(CAP, rel=1e-3)
    inner = (tb.soc >= 0.05) & (tb.soc <= 0.95)
    assert np.max(np.abs(tb.ocv_v[inner] - ocv_nmc(tb.soc[inner]))) < 5e-3
    # Apparent hysteresis = true hysteresis + polarisation on both branches (C/20, RC settled).
    expected = HYST + 2 * (CAP / 20) * (R0 + R1)
    mid = (tb.soc >= 0.1) & (tb.soc <= 0.9)
    np.testing.assert_allclose(tb.hysteresis_v[mid], expected, atol=1.5e-3)
    assert np.all(np.diff(tb.ocv_v) >= 0)
    assert r.temperature_c == 25.0


def test_pseudo_ocv_needs_both_branches():
    df, steps = _pseudo_ocv_run()
    steps = steps.assign(kind=["rest", "discharge", "rest", "rest", "rest"])
    with pytest.raises(Exception, match="no charge step"):
        pseudo_ocv(df, steps)


def test_isotonic_matches_scipy_on_a_known_case():
    np.testing.assert_allclose(isotonic_increasing(np.array([1.0, 3.0, 2.0, 4.0])),
                               [1.0, 2.5, 2.5, 4.0])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-10, 10), min_size=1, max_size=40),
       st.lists(st.floats(0.1, 5), min_size=40, max_size=40))
def test_isotonic_equals_scipy(values, weights):
    y = np.array(values)
    w = np.array(weights[: len(values)])
    expected = isotonic_regression(y, weights=w).x
    np.testing.assert_allclose(isotonic_increasing(y, w), expected, atol=1e-9)


L_M, L2_OVER_D = 5e-6, 7200.0
D_TRUE = L_M**2 / L2_OVER_D  # m^2/s
TAU = 600.0


@pytest.fixture(scope="module")
def gitt_run():
    return gitt_data(CAP, -CAP / 10, TAU, 3600.0, 58, L2_OVER_D, ocv_nmc, R0, noise_v=0.1e-3)


def test_gitt_diffusion_coefficient_and_ocv(gitt_run):
    r = gitt(gitt_run, capacity_ah=CAP, initial_soc=1.0, diffusion_length_m=L_M)
    p = r.pulses
    assert len(p) == 58
    assert (p.direction == "discharge").all()
    np.testing.assert_allclose(p.duration_s, TAU)
    np.testing.assert_allclose(p.soc_start, 1.0 - np.arange(58) * TAU / 36000, atol=1e-6)
    # Weppner-Huggins assumes E linear in SoC over the pulse: test where the curve is.
    mid = p[(p.soc_start >= 0.3) & (p.soc_start <= 0.8)]
    assert len(mid) >= 25
    np.testing.assert_allclose(mid.d_m2_per_s, D_TRUE, rtol=0.10)
    np.testing.assert_allclose(mid.d_over_l2_per_s, 1 / L2_OVER_D, rtol=0.10)
    np.testing.assert_allclose(mid.tau_d_over_l2, TAU / L2_OVER_D, rtol=0.10)
    assert mid.valid.all()
    # The IR drop is excluded from dE_t and reported on its own: I R0.
    np.testing.assert_allclose(mid.ir_drop_v, -CAP / 10 * R0, rtol=0.1)
    # Relaxed points lie on the OCV curve.
    ocv = r.ocv
    assert len(ocv) == 59
    np.testing.assert_allclose(ocv.ocv_v, ocv_nmc(ocv.soc), atol=1e-3)


def test_gitt_flags_pulses_too_long_for_semi_infinite_diffusion():
    run = gitt_data(CAP, -CAP / 10, TAU, 3600.0, 6, 1200.0, ocv_nmc, R0, initial_soc=0.7)
    p = gitt(run, capacity_ah=CAP, initial_soc=0.7).pulses
    assert (p.tau_d_over_l2 > 0.1).all()
    assert not p.valid.any()
    assert p.d_m2_per_s.isna().all()  # no diffusion length given


def test_weppner_huggins_mass_form_equals_length_form():
    # 10 mg of LiCoO2-like material, V_M 20 cm^3/mol, M 98 g/mol, 1 cm^2.
    length = diffusion_length_from_mass(10e-6, 20e-6, 98e-3, 1e-4)
    assert length == pytest.approx(10e-6 * 20e-6 / (98e-3 * 1e-4))
    d_mass_form = 4 / (math.pi * 600) * (10e-6 * 20e-6 / (98e-3 * 1e-4)) ** 2 * (0.01 / 0.04) ** 2
    assert weppner_huggins(600, 0.01, 0.04, length) == pytest.approx(d_mass_form, rel=1e-12)


def test_rest_ocv_points_and_curve(gitt_run):
    pts = rest_ocv_points(gitt_run, capacity_ah=CAP, initial_soc=1.0, min_rest_s=1800)
    assert len(pts) == 58  # the first rest is only 600 s
    assert (pts.previous == "discharge").all()
    np.testing.assert_allclose(pts.ocv_v, ocv_nmc(pts.soc), atol=1e-3)
    curve = ocv_curve(pts.soc, pts.ocv_v, grid_points=201)
    assert np.all(np.diff(curve.ocv_v) >= 0)
    inner = (curve.soc > 0.1) & (curve.soc < 0.95)
    np.testing.assert_allclose(curve.ocv_v[inner], ocv_nmc(curve.soc[inner]), atol=5e-3)
