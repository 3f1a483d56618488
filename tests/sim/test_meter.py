"""The simulated meter's quantisation: a short batch is quantised as one (3, n) block, a
long one row by row (sim/measure.py); both must give the same readings."""

from __future__ import annotations

import numpy as np
import pytest

from labctl.sim import measure
from labctl.sim.measure import Meter
from labctl.sim.pcg64 import default_rng

RESOLUTION = {"voltage_v": 0.0001, "current_a": 0.0005, "temperature_c": 0.01}


def _values(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(42)
    return 3.0 + 1.2 * rng.random(n), rng.uniform(-5.0, 5.0, n), 20.0 + 10.0 * rng.random(n)


def test_a_short_batch_reads_as_the_same_rows_of_a_long_one():
    # Without noise: the noise's stretch of the table depends on the batch's length.
    n_short = measure._BLOCK_ROWS_MAX
    values = _values(n_short + 1)
    meter = Meter(None, RESOLUTION, default_rng(5))
    assert meter._block is not None  # every row quantised: the short batch takes the block
    block = meter.read_all(*(v[:n_short] for v in values))
    rows = Meter(None, RESOLUTION, default_rng(5)).read_all(*values)
    for b, r in zip(block, rows, strict=True):
        np.testing.assert_array_equal(b, r[:n_short])


@pytest.mark.parametrize("n", [1, 50, measure._BLOCK_ROWS_MAX, measure._BLOCK_ROWS_MAX + 1, 5000])
def test_readings_are_the_nearest_multiples_of_the_resolution(n):
    values = _values(n)
    readings = Meter(None, RESOLUTION, default_rng(1)).read_all(*values)
    for true, read, step in zip(values, readings, RESOLUTION.values(), strict=True):
        counts = read / step
        np.testing.assert_allclose(counts, np.round(counts), rtol=0, atol=1e-6)
        assert np.max(np.abs(read - true)) <= 0.5 * step * (1 + 1e-9)


def test_a_partly_quantised_meter_leaves_the_other_rows_alone():
    values = _values(100)
    readings = Meter(None, {"voltage_v": 0.001}, default_rng(1)).read_all(*values)
    np.testing.assert_array_equal(readings[1], values[1])
    np.testing.assert_array_equal(readings[2], values[2])
    assert np.max(np.abs(readings[0] - values[0])) <= 0.0005 * (1 + 1e-9)
