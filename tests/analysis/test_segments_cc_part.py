"""dQ/dV and voltage curves use the constant-current part of a step: a CC-CV step recorded
as one (as other cyclers do) is cut where the current leaves the CC value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labctl.analysis.cycling.segments import segment


def _ts(current: np.ndarray, voltage: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"test_time_s": np.arange(len(current), dtype=float) * 10.0,
                         "step_index": 1, "current_a": current, "voltage_v": voltage})


def test_a_cc_cv_step_is_cut_at_the_end_of_its_cc_part():
    n_cc, n_cv = 200, 300
    cc_v = np.linspace(3.4, 4.2, n_cc)
    current = np.r_[np.full(n_cc, 1.0), np.exp(-np.arange(1, n_cv + 1) / 40.0)]
    voltage = np.r_[cc_v, np.full(n_cv, 4.2)]
    q, v = segment(_ts(current, voltage), 1)
    assert len(q) == n_cc and v[-1] == pytest.approx(4.2, abs=0.01)
    assert q[-1] == pytest.approx(1.0 * 10.0 * (n_cc - 1) / 3600.0, rel=1e-9)


def test_a_noisy_cc_step_is_kept_whole():
    rng = np.random.default_rng(3)
    current = -2.0 * (1 + 0.002 * rng.standard_normal(500))  # 0.2 % noise: a discharge
    q, v = segment(_ts(current, np.linspace(4.1, 3.0, 500)), 1)
    assert len(q) == 500
    assert q[-1] == pytest.approx(2.0 * 10.0 * 499 / 3600.0, rel=1e-3)
