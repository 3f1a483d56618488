"""`labctl analyze cycling` never extrapolates a fade fit past 3x the observed cycles or
when the fade is inside the noise; `analyze rate`/`cycling` print no matplotlib warning."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from labctl.analysis.cycling import plots
from labctl.analysis.cycling.retention import fit_retention, threshold_crossing
from tests.support import labctl_cmd


def test_a_crossing_inside_three_times_the_data_is_given():
    n = np.arange(1, 101, dtype=float)
    y = 1.0 - 0.015 * np.sqrt(n)  # crosses 0.8 at (0.2 / 0.015)^2 = 177.8 cycles
    y += np.random.default_rng(3).normal(0, 2e-4, n.size)
    fit = fit_retention(n, y, 0.8)["sqrt"]
    cross, why = threshold_crossing(fit)
    assert why is None and cross == pytest.approx((0.2 / 0.015) ** 2, rel=0.02)


def test_no_crossing_beyond_three_times_the_data():
    n = np.arange(1, 101, dtype=float)
    y = 1.0 - 0.008 * np.sqrt(n)  # would cross at 625 cycles: > 3 x 100
    fit = fit_retention(n, y, 0.8)["sqrt"]
    assert fit.cycles_to_threshold == pytest.approx(625, rel=1e-6)  # the fit itself
    cross, why = threshold_crossing(fit)
    assert cross is None and "beyond 3x the 100 cycles" in why


def test_no_crossing_when_the_fade_is_inside_the_noise():
    n = np.arange(1, 51, dtype=float)
    y = 1.0 + np.random.default_rng(5).normal(0, 1e-3, n.size)  # no fade at all, 0.1 % noise
    for fit in fit_retention(n, y, 0.8).values():
        cross, why = threshold_crossing(fit)
        assert cross is None and "inside the noise" in why


def test_a_three_cycle_run_gets_no_crossing(tmp_path):
    proc = labctl_cmd("run", "procedures/cycling.yaml", "--param", "n_cycles=3", "--results",
                      str(tmp_path), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    run = next(p for p in tmp_path.iterdir() if p.is_dir())
    text = labctl_cmd("analyze", "cycling", str(run))
    assert text.returncode == 0, text.stderr
    summary = json.loads((run / "analysis" / "cycling" / "summary.json").read_text())
    assert summary["cycles_to_threshold"] is None and summary["cycles_to_threshold_note"]
    assert "no 80% prediction" in text.stdout and "at cycle" not in text.stdout
    assert "Warning" not in text.stderr and "legend" not in text.stderr


def test_an_empty_curves_figure_makes_no_legend_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plots.curves_figure({}, "x", "y", "nothing")


def test_analyze_rate_prints_no_matplotlib_warning(tmp_path):
    proc = labctl_cmd("run", "procedures/rate-capability.yaml", "--results", str(tmp_path),
                      "--no-progress")
    assert proc.returncode == 0, proc.stderr
    run = next(p for p in tmp_path.iterdir() if p.is_dir())
    proc = labctl_cmd("analyze", "rate", str(run))
    assert proc.returncode == 0, proc.stderr
    assert "legend" not in proc.stderr and "Warning" not in proc.stderr
