"""Coulomb counting, OCV lookup after rest, and the scoring/plotting helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labctl.analysis.soc import coulomb_count, evaluate, ocv_rest_soc, plot_soc
from labctl.errors import LabctlError
from tests.analysis.soc.drive import CAP, cell_model, drive_cycle, ocv, simulate


def test_coulomb_count_exact_without_errors():
    t, i = drive_cycle(3600, seed=1)
    soc, _ = simulate(t, i, 0.8)
    np.testing.assert_allclose(coulomb_count(t, i, CAP, 0.8), soc[:, 0], atol=1e-12)


def test_coulomb_count_offset_drifts_by_offset_times_time_over_capacity():
    t, i = drive_cycle(7200, seed=2)
    soc, _ = simulate(t, i, 0.8)
    est = coulomb_count(t, i, CAP, 0.8, current_offset_a=0.05)
    drift = est - soc[:, 0]
    # 0.05 A for t seconds on 2 Ah: 0.05 t / 7200; after 7199 s that is 5.0 % SoC.
    np.testing.assert_allclose(drift, 0.05 * t / (3600 * CAP), atol=1e-12)
    assert drift[-1] == pytest.approx(0.05 * 7199 / 7200)


def test_coulomb_count_noise_random_walk_over_many_cells():
    n_cells, n = 400, 3600
    t = np.arange(n, dtype=float)
    i = np.zeros((n, n_cells))
    est = coulomb_count(t, i, CAP, 0.5, current_noise_std_a=0.1, rng=0)
    assert est.shape == (n, n_cells)
    # Sum of n-1 independent 1 s draws: std 0.1 sqrt(n - 1) / 7200 SoC.
    expected = 0.1 * math.sqrt(n - 1) / (3600 * CAP)
    assert np.std(est[-1] - 0.5) == pytest.approx(expected, rel=0.1)


def test_coulomb_count_per_cell_offsets():
    t = np.arange(101.0)
    est = coulomb_count(t, np.zeros(101)[:, None] * np.ones(3), np.array([1.0, 2.0, 4.0]), 0.5,
                        current_offset_a=np.array([0.036, 0.036, -0.072]))
    np.testing.assert_allclose(est[-1] - 0.5, [1e-3, 5e-4, -5e-4])


def test_ocv_lookup_only_after_long_enough_rests():
    # 20 min at 1C down, 40 min rest, 10 min at 0.5C up, 40 min rest (1 s samples).
    sched = [(1200, -CAP), (2400, 0.0), (600, CAP / 2), (2400, 0.0)]
    i = np.concatenate([np.full(int(d), c) for d, c in sched])
    t = np.arange(len(i), dtype=float)
    soc, v = simulate(t, i, 0.9, noise_v=0.5e-3)
    est = ocv_rest_soc(t, i, v[:, 0], cell_model(), min_rest_s=1800.0)
    # Rest starts at 1200 s; the first estimate is at 1200 + 1800 s.
    assert np.isnan(est[: 1200 + 1800]).all()
    assert np.isfinite(est[3000:3600]).all()
    assert np.isnan(est[3600:4200 + 1800]).all()
    assert np.isfinite(est[4200 + 1800:]).all()
    # Relaxed by then (slowest tau 400 s): the OCV gives the SoC to a few 0.1 %.
    np.testing.assert_allclose(est[3000:3600], soc[3000:3600, 0], atol=3e-3)
    np.testing.assert_allclose(est[-300:], soc[-300:, 0], atol=3e-3)


def test_ocv_lookup_vectorised_and_from_dataframe():
    import pandas as pd

    s = np.array([0.2, 0.5, 0.8])
    v = ocv(s)[None, :].repeat(5, axis=0)
    table = pd.DataFrame({"soc": np.linspace(0, 1, 201), "ocv_v": ocv(np.linspace(0, 1, 201))})
    est = ocv_rest_soc(np.arange(5.0), np.zeros((5, 3)), v, table, min_rest_s=0.0)
    np.testing.assert_allclose(est, np.broadcast_to(s, (5, 3)), atol=1e-4)


def test_evaluate_on_known_errors():
    t = np.arange(10.0)
    ref = np.full(10, 0.5)
    err = np.array([0.2, 0.1, 0.05, 0.03, 0.01, -0.015, 0.0, 0.01, -0.01, 0.0])
    e = evaluate(ref + err, ref, t, tolerance=0.02)
    assert e["convergence_time_s"] == 4.0
    assert e["max_error_after_convergence"] == pytest.approx(0.015)
    after = err[4:]
    assert e["rmse_after_convergence"] == pytest.approx(np.sqrt(np.mean(after**2)))
    assert e["rmse"] == pytest.approx(np.sqrt(np.mean(err**2)))
    assert e["max_abs_error"] == pytest.approx(0.2)
    # Still outside the band at the end: never converged.
    e2 = evaluate(ref + np.linspace(0, 0.1, 10), ref, t)
    assert math.isnan(e2["convergence_time_s"])
    # Per cell, NaN estimates left out.
    est2 = np.column_stack([ref + err, np.where(t < 3, np.nan, ref)])
    e3 = evaluate(est2, ref, t)
    np.testing.assert_allclose(e3["convergence_time_s"], [4.0, 3.0])
    with pytest.raises(LabctlError):
        evaluate(np.zeros(3), np.zeros(3), np.arange(4.0))


def test_plot_soc_writes_a_png(tmp_path):
    t = np.arange(100.0)
    path = plot_soc(tmp_path / "soc.png", t, np.linspace(0.9, 0.8, 100),
                    {"ekf": np.linspace(0.7, 0.8, 100), "coulomb": np.full(100, 0.85)},
                    title="test")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_bad_input():
    with pytest.raises(LabctlError, match="capacity_ah"):
        coulomb_count(np.arange(3.0), np.zeros(3), 0.0, 0.5)
    with pytest.raises(LabctlError, match="same length"):
        ocv_rest_soc(np.arange(3.0), np.zeros(2), np.zeros(3), cell_model())
