"""Decimation for plots: at most a few thousand points per trace, whatever the run's length.

Min/max per bucket: the x range is cut into equal-width buckets (a plot's pixel
columns) and each bucket keeps its first sample's minimum and maximum of y, in
time order. A line drawn through what is kept reaches exactly the same extremes
in every column as the full data, so spikes (a safety stop, a pulse) never
vanish. Every kept point is an original sample, unchanged.

Written here with numpy (reduceat over bucket boundaries, O(n), ~10 ms per
million samples) rather than taken from a library: the plotting helpers that
offer it (plotly-resampler, tsdownsample) pull a Dash server or a Rust build
into the install for one function.
"""

from __future__ import annotations

import numpy as np

DEFAULT_MAX_POINTS = 4000


def minmax_indices(x: np.ndarray, y: np.ndarray, max_points: int = DEFAULT_MAX_POINTS) -> np.ndarray:
    """Sorted indices of the samples to keep: per bucket its first sample and the first
    minimum and first maximum of y, plus the last sample.

    `x` must be non-decreasing (test time). The buckets are (max_points - 1) // 3
    equal-width intervals of x, so the result never exceeds `max_points`. NaN in y
    is skipped when finding the extremes; a bucket's first sample is always kept,
    so a gap stays a gap. All indices come back when the data already fit.
    """
    return minmax_indices_many(x, [y], max_points)[0]


def minmax_indices_many(x: np.ndarray, ys: list[np.ndarray],
                        max_points: int = DEFAULT_MAX_POINTS) -> list[np.ndarray]:
    """`minmax_indices` for several traces sharing one x (the buckets are found once)."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    if n <= max_points:
        return [np.arange(n) for _ in ys]
    n_buckets = max(1, (max_points - 1) // 3)
    span = x[-1] - x[0]
    if not np.isfinite(span) or span <= 0:
        bucket = (np.arange(n) * n_buckets) // n  # no usable time axis: equal counts
    else:
        bucket = ((x - x[0]) * (n_buckets / span)).astype(np.int64)
        np.clip(bucket, 0, n_buckets - 1, out=bucket)
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    seg = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, n]))
    out = []
    for y in ys:
        y = np.asarray(y, dtype=float)
        keep = [starts, np.array([n - 1])]
        nan = np.isnan(y)
        for func, fill in ((np.minimum, np.inf), (np.maximum, -np.inf)):
            extreme = func.reduceat(np.where(nan, fill, y) if nan.any() else y, starts)
            hit = np.flatnonzero(y == extreme[seg])
            if len(hit):
                first = np.r_[True, seg[hit][1:] != seg[hit][:-1]]
                keep.append(hit[first])
        out.append(np.unique(np.concatenate(keep)))
    return out


def decimate(x: np.ndarray, y: np.ndarray, max_points: int = DEFAULT_MAX_POINTS
             ) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) reduced by min/max per bucket to at most `max_points` original samples."""
    idx = minmax_indices(x, y, max_points)
    return np.asarray(x)[idx], np.asarray(y)[idx]
