"""Min/max per bucket: what is kept, checked against a plain loop over the buckets."""

from __future__ import annotations

import numpy as np
import pytest

from labctl.console.decimate import decimate, minmax_indices


def _reference_extremes(x, y, n_buckets):
    """Per equal-width bucket of x: (min, max) of y, by a plain Python loop."""
    edges = np.linspace(x[0], x[-1], n_buckets + 1)
    out = []
    for b in range(n_buckets):
        hi = edges[b + 1]
        sel = (x >= edges[b]) & ((x < hi) if b < n_buckets - 1 else (x <= hi))
        vals = y[sel]
        vals = vals[~np.isnan(vals)]
        if len(vals):
            out.append((edges[b], hi, vals.min(), vals.max()))
    return out


@pytest.mark.parametrize("n, max_points", [(100_000, 4000), (12_345, 301), (5000, 1000)])
def test_every_bucket_keeps_its_min_and_max_exactly(n, max_points):
    rng = np.random.default_rng(7)
    x = np.cumsum(rng.uniform(0.5, 1.5, n))  # uneven sampling
    y = np.sin(x / 500.0) + 0.05 * rng.standard_normal(n)
    y[rng.integers(0, n, 20)] += rng.uniform(-3, 3, 20)  # spikes
    idx = minmax_indices(x, y, max_points)
    assert len(idx) <= max_points
    assert np.all(np.diff(idx) > 0)  # original order, no duplicates
    kx, ky = x[idx], y[idx]
    n_buckets = (max_points - 1) // 3
    for lo, hi, ymin, ymax in _reference_extremes(x, y, n_buckets):
        inside = (kx >= lo) & (kx <= hi)
        assert ymin in ky[inside] and ymax in ky[inside]
    assert y.min() in ky and y.max() in ky
    assert idx[0] == 0 and idx[-1] == n - 1


def test_kept_points_are_original_samples_and_short_data_untouched():
    x = np.linspace(0, 10, 50)
    y = x ** 2
    dx, dy = decimate(x, y, 4000)
    assert np.array_equal(dx, x) and np.array_equal(dy, y)
    rng = np.random.default_rng(1)
    x = np.arange(200_000, dtype=float)
    y = rng.standard_normal(200_000)
    dx, dy = decimate(x, y, 2000)
    pairs = dict(zip(x.tolist(), y.tolist(), strict=True))
    assert all(pairs[a] == b for a, b in zip(dx.tolist(), dy.tolist(), strict=True))


def test_a_single_spike_in_a_million_samples_survives():
    x = np.arange(1_000_000) * 0.1
    y = np.full(1_000_000, 3.3)
    y[654_321] = 4.5  # one sample over the limit
    dx, dy = decimate(x, y, 3000)
    assert len(dx) <= 3000
    assert 4.5 in dy and dx[np.argmax(dy)] == x[654_321]


def test_nan_gaps_stay_gaps_and_do_not_hide_extremes():
    x = np.arange(10_000, dtype=float)
    y = np.where((x > 3000) & (x < 6000), np.nan, np.cos(x / 300.0))
    idx = minmax_indices(x, y, 400)
    assert len(idx) <= 400
    kept = y[idx]
    assert np.isnan(kept).any()  # the gap is drawn as a gap
    assert np.nanmin(y) in kept and np.nanmax(y) in kept
