"""Potentiostat qualification on a dummy cell: 10 Ohm + (100 Ohm || 1 uF).

The truth is the network's impedance, Z(f) = 10 + 100 / (1 + j 2 pi f R C); the
limits are those of a typical EIS instrument in this impedance range: 1 % of |Z|
and 1 degree of phase.
"""

from __future__ import annotations

import numpy as np
import pytest

from labctl.capabilities.potentiostat import EisSweep

pytestmark = pytest.mark.labctl_qualification

R_SERIES, R_PAR, C_PAR = 10.0, 100.0, 1e-6


def true_z(f: np.ndarray) -> np.ndarray:
    return R_SERIES + R_PAR / (1 + 1j * 2 * np.pi * f * R_PAR * C_PAR)


def test_impedance_accuracy_on_dummy_cell(dummy_cell_pstat, measure):
    top = min(1e5, dummy_cell_pstat.ranges.max_frequency_hz)
    bottom = max(20.0, dummy_cell_pstat.ranges.min_frequency_hz)
    sweep = EisSweep(start_frequency_hz=top, stop_frequency_hz=bottom, points_per_decade=5,
                     amplitude=0.01)
    result = dummy_cell_pstat.measure_spectrum(sweep)
    z = true_z(np.asarray(result.frequency_hz))
    mag_err = np.abs(np.abs(result.z) / np.abs(z) - 1) * 100
    phase_err = np.abs(np.degrees(np.angle(result.z) - np.angle(z)))
    measure("impedance_magnitude_error_max", mag_err.max(), high=1.0, unit="%")
    measure("impedance_phase_error_max", phase_err.max(), high=1.0, unit="deg")
    # The arc's apex (where -Z'' peaks) is at 1 / (2 pi R C) = 1591.5 Hz.
    f_apex = result.frequency_hz[int(np.argmax(-np.asarray(result.z_imag_ohm)))]
    measure("arc_apex_frequency", f_apex, low=1591.5 / 10 ** 0.2, high=1591.5 * 10 ** 0.2, unit="Hz")
