"""HPPC / ECM analysis against pulses generated in closed form from a known cell."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from labctl.analysis.ecm import activation_energy, arrhenius_fit, ecm_table, hppc
from labctl.cells.spec import BOLTZMANN_EV_PER_K, ZERO_C_IN_K, Table
from tests.analysis.characterization.synth import Truth, hppc_schedule, ocv_nmc, simulate

CAP = 2.0
R1, TAU1 = 0.015, 25.0


def r0_true(soc):
    return 0.030 + 0.02 * (np.asarray(soc) - 0.5) ** 2


TRUTH = Truth(CAP, ocv_nmc, r0_true, [(R1, TAU1)])
# What a lab has from its pseudo-OCV test: the curve on a SoC grid.
GRID = np.linspace(0.0, 1.0, 201)
OCV_TABLE = Table(GRID, ocv_nmc(GRID))


def _true_soc_at(df, soc, times):
    return np.interp(times, df.test_time_s, soc)


@pytest.mark.parametrize("dt_s, noise_v", [(1.0, 0.1e-3), (0.1, 0.2e-3)])
def test_hppc_recovers_r0_r1_tau1(dt_s, noise_v):
    df, soc = simulate(TRUTH, hppc_schedule(CAP), dt_s, noise_v=noise_v, noise_i=2e-4, seed=7)
    p = hppc(df, capacity_ah=CAP, initial_soc=1.0, ocv=OCV_TABLE).pulses
    assert len(p) == 18  # 9 set-points x (discharge, charge)
    assert list(p.direction[:2]) == ["discharge", "charge"]
    expected_soc = _true_soc_at(df, soc, p.start_time_s)
    np.testing.assert_allclose(p.soc, expected_soc, atol=1e-3)
    r0 = r0_true(expected_soc)
    np.testing.assert_allclose(p.r0_ohm, r0, rtol=0.02)
    np.testing.assert_allclose(p.r0_end_ohm, r0, rtol=0.02)
    np.testing.assert_allclose(p.r0_fit_ohm, r0, rtol=0.02)
    np.testing.assert_allclose(p.r1_ohm, R1, rtol=0.05)
    np.testing.assert_allclose(p.tau1_s, TAU1, rtol=0.10)
    assert (p.fit_rmse_v < 2 * noise_v).all()


def test_hppc_without_ocv_table_uses_the_runs_rests():
    """With no OCV table the run's own long rests give the OCV curve; fine in mid SoC."""
    df, soc = simulate(TRUTH, hppc_schedule(CAP), 0.1, noise_v=0.2e-3, noise_i=2e-4, seed=3)
    p = hppc(df, capacity_ah=CAP, initial_soc=1.0).pulses
    mid = p[(p.soc > 0.25) & (p.soc < 0.85)]
    assert len(mid) == 12
    np.testing.assert_allclose(mid.r1_ohm, R1, rtol=0.05)
    np.testing.assert_allclose(mid.tau1_s, TAU1, rtol=0.10)


def test_dcir_at_1_and_10_s_matches_closed_form():
    df, soc = simulate(TRUTH, hppc_schedule(CAP, setpoints=4), 0.1, noise_v=0.2e-3, seed=1)
    p = hppc(df, capacity_ah=CAP, initial_soc=1.0, dcir_times_s=(1.0, 10.0, 30.0)).pulses
    s0 = _true_soc_at(df, soc, p.start_time_s)
    i = p.current_a.to_numpy()
    for t, col in ((1.0, "dcir_1s_ohm"), (10.0, "dcir_10s_ohm")):
        s_t = s0 + i * t / (3600 * CAP)
        # V(t) - V(0-) over I: the OCV moved, R0 at the SoC then, the RC pair charging.
        expected = (ocv_nmc(s_t) - ocv_nmc(s0)) / i + r0_true(s_t) + R1 * (1 - math.exp(-t / TAU1))
        np.testing.assert_allclose(p[col], expected, rtol=0.02)
    assert p.dcir_30s_ohm.isna().all()  # 10 s pulses are too short for 30 s


def test_two_rc_pairs():
    truth = Truth(CAP, ocv_nmc, r0_true, [(0.010, 4.0), (0.020, 80.0)])
    sched = [(1800.0, 0.0)]
    for _ in range(4):
        sched += [(30.0, -2.0), (400.0, 0.0), (30.0, 1.5), (400.0, 0.0), (720.0, -2.0),
                  (1800.0, 0.0)]
    df, _ = simulate(truth, sched, 0.5, noise_v=0.1e-3, noise_i=1e-4, seed=5)
    p = hppc(df, capacity_ah=CAP, initial_soc=1.0, n_rc=2, ocv=OCV_TABLE, relax_s=400.0).pulses
    assert len(p) == 8
    np.testing.assert_allclose(p.r1_ohm, 0.010, rtol=0.05)
    np.testing.assert_allclose(p.tau1_s, 4.0, rtol=0.10)
    np.testing.assert_allclose(p.r2_ohm, 0.020, rtol=0.05)
    np.testing.assert_allclose(p.tau2_s, 80.0, rtol=0.10)


def test_ecm_table_one_row_per_set_point():
    df, soc = simulate(TRUTH, hppc_schedule(CAP, setpoints=5), 1.0, noise_v=0.1e-3, seed=2)
    p = hppc(df, capacity_ah=CAP, initial_soc=1.0, ocv=OCV_TABLE).pulses
    both = ecm_table(p, direction="both")
    dis = ecm_table(p, direction="discharge")
    assert len(both) == len(dis) == 5
    assert (both.n_pulses == 2).all() and (dis.n_pulses == 1).all()
    # Ascending set-points at the true SoC of each discharge pulse's start (1.0, ~0.9, ...).
    starts = p.start_time_s[p.direction == "discharge"]
    np.testing.assert_allclose(dis.soc, np.sort(_true_soc_at(df, soc, starts)), atol=1e-4)
    np.testing.assert_allclose(dis.r0_ohm, r0_true(dis.soc), rtol=0.02)
    assert (both.temperature_c == 25.0).all()


def _arrhenius(ea_ev, temp_c, ref_c=25.0):
    return math.exp(ea_ev / BOLTZMANN_EV_PER_K * (1 / (temp_c + ZERO_C_IN_K)
                                                  - 1 / (ref_c + ZERO_C_IN_K)))


def test_activation_energy_of_r0_from_three_temperatures():
    ea = 0.30
    tables = []
    for k, temp in enumerate((10.0, 25.0, 40.0)):
        f = _arrhenius(ea, temp)
        truth = Truth(CAP, ocv_nmc, lambda s, f=f: f * r0_true(s), [(R1 * f, TAU1)])
        df, _ = simulate(truth, hppc_schedule(CAP, setpoints=6), 1.0, noise_v=0.1e-3,
                         temperature_c=temp, seed=10 + k)
        tables.append(hppc(df, capacity_ah=CAP, initial_soc=1.0, ocv=OCV_TABLE).pulses)
    table = ecm_table(pd.concat(tables, ignore_index=True))
    assert sorted(table.temperature_c.unique()) == [10.0, 25.0, 40.0]
    fit = activation_energy(table, "r0_ohm", soc_range=(0.5, 1.0))
    assert fit.activation_energy_ev == pytest.approx(ea, rel=0.03)
    assert 0 < fit.stderr_ev < 0.02
    assert fit.n_temperatures == 3
    fit1 = activation_energy(table, "r1_ohm", soc_range=(0.5, 1.0))
    assert fit1.activation_energy_ev == pytest.approx(ea, rel=0.1)


def test_arrhenius_fit_exact_on_exact_values():
    temps = np.array([0.0, 20.0, 45.0])
    values = 0.05 * np.array([_arrhenius(0.42, t) for t in temps])
    fit = arrhenius_fit(temps, values)
    assert fit.activation_energy_ev == pytest.approx(0.42, rel=1e-9)
    assert fit.stderr_ev == pytest.approx(0.0, abs=1e-9)
