"""Incremental capacity dQ/dV and differential voltage dV/dQ of one CC segment.

dQ/dV by voltage binning: every sampling interval's charge goes to the bin of its
mid-voltage on an even grid (`dv` wide), divided by the bin width, then smoothed
with a Gaussian (`smooth_v`). Unlike differentiating Q(V), binning needs no
monotonic voltage, so measurement noise that makes V step back and forth costs
nothing but spreads charge over neighbouring bins, which the smoothing evens out.
A symmetric kernel does not move an isolated peak. Peaks are located by
scipy.signal.find_peaks and refined to a fraction of a bin by a parabola through
the top three points.

dV/dQ: the voltage interpolated on an even capacity grid, smoothed with a
Gaussian (`smooth_q_fraction` of the capacity), differentiated with np.gradient.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks


def incremental_capacity(capacity_ah: np.ndarray, voltage_v: np.ndarray, *, dv: float = 0.002,
                         smooth_v: float = 0.008) -> pd.DataFrame:
    """dQ/dV (Ah/V, >= 0) on an even voltage grid of bin centres.

    `capacity_ah`: charge moved since the segment's start (either sign, monotonic);
    `voltage_v`: the voltage at the same samples.
    """
    q = np.asarray(capacity_ah, dtype=float)
    v = np.asarray(voltage_v, dtype=float)
    ok = np.isfinite(q) & np.isfinite(v)
    q, v = q[ok], v[ok]
    if len(q) < 3:
        return pd.DataFrame({"voltage_v": [], "dqdv_ah_per_v": []})
    dq = np.abs(np.diff(q))
    vm = 0.5 * (v[1:] + v[:-1])
    pad = 4.0 * smooth_v
    lo = np.floor((vm.min() - pad) / dv) * dv
    hi = np.ceil((vm.max() + pad) / dv) * dv
    edges = lo + dv * np.arange(int(round((hi - lo) / dv)) + 1)
    hist, _ = np.histogram(vm, bins=edges, weights=dq)
    dens = hist / dv
    if smooth_v > 0:
        dens = gaussian_filter1d(dens, smooth_v / dv, mode="constant")
    centres = 0.5 * (edges[1:] + edges[:-1])
    return pd.DataFrame({"voltage_v": centres, "dqdv_ah_per_v": dens})


def find_peaks_v(voltage_v: np.ndarray, values: np.ndarray, *, min_prominence: float = 0.05,
                 max_peaks: int = 6) -> pd.DataFrame:
    """Peaks of a curve on an even grid: position (parabola-refined), height, prominence.

    Peaks smaller than `min_prominence` x the curve's maximum are ignored; the
    `max_peaks` most prominent are kept, in order of voltage.
    """
    x = np.asarray(voltage_v, dtype=float)
    y = np.asarray(values, dtype=float)
    if len(y) < 3 or not np.any(y > 0):
        return pd.DataFrame({"voltage_v": [], "height": [], "prominence": []})
    idx, props = find_peaks(y, prominence=min_prominence * float(np.max(y)))
    order = np.argsort(props["prominences"])[::-1][:max_peaks]
    idx, prom = idx[order], props["prominences"][order]
    step = x[1] - x[0]
    pos = []
    for k in idx:
        y0, y1, y2 = y[k - 1], y[k], y[k + 1]
        denom = y0 - 2 * y1 + y2
        shift = 0.5 * (y0 - y2) / denom if denom != 0 else 0.0
        pos.append(x[k] + float(np.clip(shift, -0.5, 0.5)) * step)
    out = pd.DataFrame({"voltage_v": pos, "height": y[idx], "prominence": prom})
    return out.sort_values("voltage_v").reset_index(drop=True)


def differential_voltage(capacity_ah: np.ndarray, voltage_v: np.ndarray, *, points: int = 400,
                         smooth_q_fraction: float = 0.01) -> pd.DataFrame:
    """dV/dQ (V/Ah) on an even grid of |capacity| from 0 to the segment's end."""
    q = np.abs(np.asarray(capacity_ah, dtype=float))
    v = np.asarray(voltage_v, dtype=float)
    ok = np.isfinite(q) & np.isfinite(v)
    q, v = q[ok], v[ok]
    if len(q) < 3 or q.max() <= q.min():
        return pd.DataFrame({"capacity_ah": [], "voltage_v": [], "dvdq_v_per_ah": []})
    q, first = np.unique(q, return_index=True)  # a rest inside the segment moves no charge
    v = v[first]
    grid = np.linspace(q.min(), q.max(), points)
    vg = np.interp(grid, q, v)
    step = grid[1] - grid[0]
    sigma = smooth_q_fraction * (q.max() - q.min()) / step
    vs = gaussian_filter1d(vg, sigma, mode="nearest") if sigma > 0 else vg
    return pd.DataFrame({"capacity_ah": grid, "voltage_v": vs,
                         "dvdq_v_per_ah": np.gradient(vs, step)})
