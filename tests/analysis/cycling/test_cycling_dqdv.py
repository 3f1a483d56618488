"""dQ/dV and dV/dQ against synthetic curves whose answer is known in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from labctl.analysis.cycling.dqdv import differential_voltage, find_peaks_v, incremental_capacity
from labctl.analysis.cycling.retention import fit_retention
from labctl.analysis.cycling.segments import parse_cycles, pick_cycles
from labctl.errors import LabctlError

PLATEAUS_V = np.array([3.32, 3.47, 3.61])  # where the synthetic cell's plateaus sit
WEIGHTS_AH = np.array([0.6, 1.0, 0.4])
WIDTH_V = 0.012


def q_of_v(v: np.ndarray) -> np.ndarray:
    """Capacity below voltage v: a sum of logistic steps, so dQ/dV peaks at the plateaus."""
    return sum(w / (1 + np.exp(-(v - v0) / WIDTH_V)) for w, v0 in zip(WEIGHTS_AH, PLATEAUS_V, strict=True))


def cc_samples(n: int, noise_v: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A constant-current charge sampled evenly in charge (as a cycler logs by time)."""
    fine_v = np.linspace(3.0, 3.9, 200_001)
    fine_q = q_of_v(fine_v)
    q = np.linspace(fine_q[0], fine_q[-1], n)
    v = np.interp(q, fine_q, fine_v)
    v = v + np.random.default_rng(seed).normal(0.0, noise_v, n) if noise_v else v
    v = np.round(v / 1e-4) * 1e-4  # a 0.1 mV resolution, like the simulated cycler
    return q - q[0], v


@pytest.mark.parametrize("noise_v", [0.0, 0.0002, 0.001])
def test_dqdv_peaks_sit_at_the_plateaus(noise_v):
    q, v = cc_samples(720, noise_v)  # 10 s logging of a 2 h charge
    ic = incremental_capacity(q, v, dv=0.002, smooth_v=0.008)
    peaks = find_peaks_v(ic["voltage_v"], ic["dqdv_ah_per_v"], min_prominence=0.1)
    assert len(peaks) == 3
    assert np.abs(peaks["voltage_v"].to_numpy() - PLATEAUS_V).max() < 0.005
    # The area under dQ/dV is the charge moved (binning conserves it; smoothing too).
    area = np.trapezoid(ic["dqdv_ah_per_v"], ic["voltage_v"])
    assert area == pytest.approx(q[-1], rel=1e-3)
    # Heights follow the plateau weights (w / (4 width) unsmoothed; smoothing lowers all).
    heights = peaks["height"].to_numpy()
    assert np.argsort(heights).tolist() == np.argsort(WEIGHTS_AH).tolist()


def test_dvdq_of_a_linear_curve_is_its_slope():
    q = np.linspace(0, 2.0, 500)
    v = 3.0 + 0.35 * q
    dvdq = differential_voltage(q, v)
    inner = dvdq["dvdq_v_per_ah"].to_numpy()[20:-20]
    assert np.allclose(inner, 0.35, rtol=1e-6)
    # On a plateau dV/dQ = 1 / (dQ/dV) = 4 width / weight at its centre (logistic step).
    qs, vs = cc_samples(2000)
    d = differential_voltage(qs, vs, smooth_q_fraction=0.01)
    q_mid = q_of_v(np.array([PLATEAUS_V[1]]))[0] - q_of_v(np.array([3.0]))[0]
    at_mid = np.interp(q_mid, d["capacity_ah"], d["dvdq_v_per_ah"])
    assert at_mid == pytest.approx(4 * WIDTH_V / WEIGHTS_AH[1], rel=0.1)
    between = np.interp(WEIGHTS_AH[0], d["capacity_ah"], d["dvdq_v_per_ah"])
    assert between > 5 * at_mid  # between two plateaus the voltage runs


def test_retention_fit_recovers_known_parameters():
    n = np.arange(1, 801, dtype=float)
    y_sqrt = 1.002 - 0.006 * np.sqrt(n)
    fits = fit_retention(n, y_sqrt, threshold=0.85)
    s = fits["sqrt"]
    assert s.parameters["a"] == pytest.approx(1.002, abs=1e-9)
    assert s.parameters["b"] == pytest.approx(-0.006, abs=1e-9)
    assert s.cycles_to_threshold == pytest.approx(((1.002 - 0.85) / 0.006) ** 2, rel=1e-6)
    y_pow = 1.0 - 2e-3 * n ** 0.75
    p = fit_retention(n, y_pow, threshold=0.8)["power"]
    assert p.parameters["z"] == pytest.approx(0.75, abs=1e-3)
    assert p.cycles_to_threshold == pytest.approx((0.2 / 2e-3) ** (1 / 0.75), rel=1e-3)
    assert fit_retention(n[:2], y_pow[:2]) == {}


def test_cycle_choice_and_parsing():
    assert parse_cycles("1, 100,500") == [1, 100, 500]
    assert parse_cycles("") is None
    with pytest.raises(LabctlError, match="not a cycle number"):
        parse_cycles("1,a")
    with pytest.raises(LabctlError, match="start at 1"):
        parse_cycles("0")
    assert pick_cycles(list(range(1, 11)), None) == [1, 4, 7, 10]
    with pytest.raises(LabctlError, match="no usable cycle 99"):
        pick_cycles(list(range(1, 11)), [2, 99])
