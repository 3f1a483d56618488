"""EKF and UKF against a drive cycle whose voltage comes from the known model in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from labctl.analysis.soc import (
    EcmGrid,
    ExtendedKalmanFilter,
    FilterSettings,
    UnscentedKalmanFilter,
    evaluate,
    run_filter,
)
from labctl.cells.spec import BOLTZMANN_EV_PER_K, CellModel, Table
from labctl.errors import LabctlError
from tests.analysis.soc.drive import CAP, cell_model, drive_cycle, simulate

FILTERS = [ExtendedKalmanFilter, UnscentedKalmanFilter]


@pytest.fixture(scope="module")
def drive():
    t, i = drive_cycle(2 * 3600, seed=0)
    soc, v = simulate(t, i, 0.9, noise_v=1.5e-3, seed=1)
    assert soc.min() > 0.15  # the cycle stays inside the table
    return t, i, soc[:, 0], v[:, 0]


@pytest.mark.parametrize("cls", FILTERS)
def test_recovers_from_a_20_percent_initial_error(cls, drive):
    t, i, soc, v = drive
    # Two cells at once: started 20 % too high and 20 % too low.
    flt = cls(cell_model(), CAP, 0.9, initial_soc_error=np.array([0.2, -0.2]))
    est = run_filter(flt, t, i, v)
    assert est.shape == (len(t), 2)
    e = evaluate(est, soc, t, tolerance=0.02)
    assert np.all(e["convergence_time_s"] <= 120.0)
    assert np.all(e["rmse_after_convergence"] <= 0.01)
    assert np.all(e["max_error_after_convergence"] <= 0.03)
    assert np.all(np.abs(est[0] - soc[0]) < 0.2)  # the first update already moved


@pytest.mark.parametrize("cls", FILTERS)
def test_one_rc_filter_on_one_rc_cell(cls):
    t, i = drive_cycle(2 * 3600, seed=4)
    soc, v = simulate(t, i, 0.6, n_rc=1, noise_v=2e-3, seed=2)
    flt = cls(cell_model(n_rc=1), CAP, 0.6, initial_soc_error=-0.2)
    assert flt.x.shape == (1, 2) and flt.P.shape == (1, 2, 2)
    e = evaluate(run_filter(flt, t, i, v)[:, 0], soc[:, 0], t)
    assert e["convergence_time_s"] <= 120.0
    assert e["rmse_after_convergence"] <= 0.01
    assert e["max_error_after_convergence"] <= 0.03


def test_textbook_ekf_converges_more_slowly_but_converges(drive):
    """One linearisation per update: a 20 % error leaves a tail, yet it gets inside 2 %."""
    t, i, soc, v = drive
    flt = ExtendedKalmanFilter(cell_model(), CAP, 0.9, initial_soc_error=0.2,
                               settings=FilterSettings(ekf_iterations=1))
    e = evaluate(run_filter(flt, t, i, v)[:, 0], soc, t)
    assert e["convergence_time_s"] < 3600.0
    assert e["rmse_after_convergence"] <= 0.01


@pytest.mark.parametrize("cls", FILTERS)
def test_vectorised_equals_one_cell_at_a_time(cls):
    n_cells, n_steps = 100, 150
    rng = np.random.default_rng(3)
    t, base = drive_cycle(n_steps, seed=5)
    current = base[:, None] * rng.uniform(0.5, 1.5, n_cells)
    true0 = rng.uniform(0.3, 0.9, n_cells)
    _, v = simulate(t, current, true0, noise_v=2e-3, seed=6)
    start = np.clip(true0 + rng.uniform(-0.2, 0.2, n_cells), 0.05, 1.0)
    cap = rng.uniform(1.9, 2.1, n_cells)
    together = run_filter(cls(cell_model(), cap, start), t, current, v)
    cells = range(n_cells) if cls is ExtendedKalmanFilter else range(0, n_cells, 10)
    for c in cells:
        alone = run_filter(cls(cell_model(), cap[c], start[c]), t, current[:, c], v[:, c])
        np.testing.assert_allclose(together[:, c], alone[:, 0], rtol=1e-12, atol=1e-14)


def test_arrhenius_scaling_of_soc_only_resistance_tables():
    m = cell_model()
    m = CellModel(m.ocv_v, m.r0_ohm, m.rc_pairs, m.thermal, activation_energy_ev=0.3,
                  reference_temperature_c=25.0)
    grid = EcmGrid(m)
    factor = np.exp(0.3 / BOLTZMANN_EV_PER_K * (1 / 283.15 - 1 / 298.15))
    np.testing.assert_allclose(grid.at(10.0).r0_ohm, grid.at(25.0).r0_ohm * factor)
    np.testing.assert_allclose(grid.at(10.0).r_ohm, grid.at(25.0).r_ohm * factor)
    np.testing.assert_allclose(grid.at(10.0).tau_s, grid.at(25.0).tau_s)  # taus unscaled
    # A table over temperature is used as it is.
    t2 = Table(np.array([0.0, 1.0]), np.array([[0.05, 0.05], [0.02, 0.02]]), np.array([0.0, 40.0]))
    m2 = CellModel(m.ocv_v, t2, m.rc_pairs, m.thermal, activation_energy_ev=0.3)
    np.testing.assert_allclose(EcmGrid(m2).at(20.0).r0_ohm, 0.035)


def test_bad_input():
    with pytest.raises(LabctlError, match="RC pair"):
        ExtendedKalmanFilter(cell_model(n_rc=1), CAP, 0.5, n_rc=2)
    flt = ExtendedKalmanFilter(cell_model(), CAP, np.full(3, 0.5))
    with pytest.raises(LabctlError, match="3 values"):
        flt.update(np.zeros(4), np.full(4, 3.7))
    with pytest.raises(LabctlError, match="one value per step"):
        flt.predict(0.0, 1.0, temperature_c=np.array([20.0, 25.0, 30.0]))
    with pytest.raises(LabctlError, match="expected shape"):
        run_filter(flt, np.arange(5.0), np.zeros((5, 2)), np.full(5, 3.7))
    with pytest.raises(LabctlError, match="n_cells"):
        ExtendedKalmanFilter(cell_model(), np.full(2, CAP), np.full(3, 0.5))
