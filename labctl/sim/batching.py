"""Pieces of a simulated step's batches: their grid, the aged model, running totals.

Helpers of `SimCyclerChannel` (labctl/sim/cycler.py), kept apart from the channel.
"""

from __future__ import annotations

import numpy as np

from labctl.np_kernels import accumulate, amax, amin, filled
from labctl.sim.ecm import grid_index
from labctl.sim.logging_grid import LogGrid
from labctl.sim.params import Params


def aged_params(p: Params, resistance_factor: float) -> Params:
    return p if resistance_factor == 1.0 else p.scaled(resistance_factor, p.temperature_c)


def batch_intervals(grid: LogGrid, horizon: int, span_cap: float | None) -> int:
    n = horizon
    if span_cap is not None:
        n = min(n, int(span_cap / grid.dt_s))
    return max(grid.every, n // grid.every * grid.every)


def batch_times(grid: LogGrid, k: int, n: int, end_t: float, extra: np.ndarray | None
                 ) -> tuple[np.ndarray, np.ndarray | None, float | None]:
    """Grid times of the batch cut at the step's end, profile change times inserted,
    and the grid spacing if the result is uniform."""
    times = grid.times(k, k + n)
    step_s: float | None = grid.dt_s
    tol = 1e-9 * max(1.0, end_t)
    if times[-1] >= end_t - tol:
        if len(times) > 1 and times[-2] < end_t - tol:  # only the last: end it at end_t
            times[-1] = end_t  # (a fresh array: grid.times computes it)
        else:
            times = np.concatenate((times[times < end_t - tol], (end_t,)))
        if len(times) > 1 and abs(times[-1] - times[-2] - grid.dt_s) > tol:
            step_s = None
    on_grid = None
    if extra is not None and len(times) > 1:
        inside = extra[(extra > times[0]) & (extra < times[-1])]
        inside = inside[~np.isin(inside, times)]
        if len(inside):
            merged = np.concatenate([times, inside])
            order = np.argsort(merged, kind="stable")
            flags = np.concatenate([np.ones(len(times), bool), np.zeros(len(inside), bool)])
            times, on_grid, step_s = merged[order], flags[order], None
    return times, on_grid, step_s


def gross_charge(totals: np.ndarray, dq_ah: np.ndarray) -> np.ndarray:
    out = np.empty(len(dq_ah) + 1)
    out[0] = totals[0] + totals[1]
    accumulate(np.abs(dq_ah), out=out[1:])
    out[1:] += out[0]
    return out


def split_cumulative(pos0: float, neg0: float, x: np.ndarray,
                      constant: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative positive and negative parts of x (as magnitudes), from pos0 / neg0.

    `constant`: every x is this value (a constant current on a uniform grid).
    """
    n = len(x) + 1
    if constant is not None:
        ramp = grid_index(n) * abs(constant)
        ramp += pos0 if constant >= 0 else neg0
        flat = filled(n, neg0 if constant >= 0 else pos0)
        return (ramp, flat) if constant >= 0 else (flat, ramp)
    if n == 1 or amin(x) >= 0:
        pos = np.empty(n)
        pos[0] = pos0
        accumulate(x, out=pos[1:])
        pos[1:] += pos0
        return pos, filled(n, neg0)
    if amax(x) <= 0:
        neg = np.empty(n)
        neg[0] = neg0
        accumulate(x, out=neg[1:])
        neg[1:] *= -1.0
        neg[1:] += neg0
        return filled(n, pos0), neg
    pos, _ = split_cumulative(pos0, 0.0, np.maximum(x, 0.0))
    neg, _ = split_cumulative(neg0, 0.0, np.maximum(-x, 0.0))
    return pos, neg
