"""OCV-SoC curves: from a pseudo-OCV run (slow charge and discharge) and from rest end-points.

Pseudo-OCV (`pseudo_ocv`): the longest charge step and the longest discharge
step of the run are the two branches. Each branch's SoC is coulomb counted
against that branch's own measured capacity (the branch spans empty <-> full:
the discharge starts at SoC 1, the charge at SoC 0). Each branch goes onto a
common SoC grid by a local linear fit of the samples nearest each grid point
(smooths noise without the bias a plain bin mean has at the steep ends), then is
made monotone non-decreasing by isotonic regression (pool adjacent violators).
OCV = mean of the branches (polarisation at the same small current cancels);
hysteresis = charge - discharge (true hysteresis plus twice the polarisation).

Rest end-points (`rest_ocv_points`): the voltage at the end of each long enough
rest (mean of its last `average_s`) at the coulomb-counted SoC; `ocv_curve`
makes a monotone table of them (isotonic regression, then PCHIP onto a grid).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from labctl.analysis.ecm.cell_model import write_long_csv
from labctl.analysis.ecm.segments import (
    REST,
    Samples,
    charge_moved_ah,
    coulomb_soc,
    load_samples,
    require_columns,
    split_segments,
)
from labctl.errors import LabctlError

OCV_COLUMNS = ["soc", "charge_v", "discharge_v", "ocv_v", "hysteresis_v"]


def isotonic_increasing(y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Least-squares non-decreasing fit to y (pool adjacent violators)."""
    y = np.asarray(y, dtype=float)
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=float)
    means: list[float] = []
    wsum: list[float] = []
    counts: list[int] = []
    for yi, wi in zip(y, w, strict=True):
        means.append(yi)
        wsum.append(wi)
        counts.append(1)
        # Merge blocks from the right while they violate the order.
        while len(means) > 1 and means[-2] > means[-1]:
            w_new = wsum[-2] + wsum[-1]
            m_new = (means[-2] * wsum[-2] + means[-1] * wsum[-1]) / w_new
            c_new = counts[-2] + counts[-1]
            del means[-1], wsum[-1], counts[-1]
            means[-1], wsum[-1], counts[-1] = m_new, w_new, c_new
    return np.repeat(means, counts)


def local_linear_on_grid(x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """y at each (uniform) grid point from a line fitted to the samples nearest that point.

    Grid points with fewer than 3 samples (or all at one x) fall back to linear
    interpolation of the raw samples.
    """
    n = len(grid)
    h = (grid[-1] - grid[0]) / (n - 1)
    k = np.clip(np.rint((x - grid[0]) / h).astype(np.int64), 0, n - 1)
    dx = x - grid[k]
    s0 = np.bincount(k, minlength=n).astype(float)
    s1 = np.bincount(k, dx, minlength=n)
    s2 = np.bincount(k, dx * dx, minlength=n)
    sy = np.bincount(k, y, minlength=n)
    sxy = np.bincount(k, dx * y, minlength=n)
    det = s0 * s2 - s1 * s1
    ok = (s0 >= 3) & (det > 1e-12 * np.maximum(s0 * s2, 1e-300))
    out = np.empty(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[ok] = (s2[ok] * sy[ok] - s1[ok] * sxy[ok]) / det[ok]  # intercept at dx = 0
    if not ok.all():
        order = np.argsort(x, kind="stable")
        out[~ok] = np.interp(grid[~ok], x[order], y[order])
    return out


@dataclass(frozen=True)
class PseudoOcvResult:
    table: pd.DataFrame  # OCV_COLUMNS on the SoC grid
    charge_capacity_ah: float  # measured on the charge branch
    discharge_capacity_ah: float  # measured on the discharge branch
    charge_step_index: int
    discharge_step_index: int
    temperature_c: float  # median cell temperature over both branches (NaN if not measured)


def _largest_step(s: Samples, q_all: np.ndarray, step_ids: np.ndarray, sign: int
                  ) -> tuple[int, int, int, float]:
    """(step_index, first row, stop row, charge moved) of the step moving most charge in `sign`."""
    best = None
    for sid in step_ids:
        rows = np.flatnonzero(s.step_index == sid)
        if len(rows) < 2:
            continue
        a, b = int(rows[0]), int(rows[-1]) + 1
        end = q_all[b] if b < len(q_all) else q_all[b - 1]
        moved = sign * (end - q_all[a])
        if moved > 0 and (best is None or moved > best[3]):
            best = (int(sid), a, b, float(moved))
    if best is None:
        raise LabctlError(f"pseudo-OCV: no {'charge' if sign > 0 else 'discharge'} step with "
                          "samples found; expected a slow charge and a slow discharge step")
    return best


def _step_ids(steps: pd.DataFrame, kind: str, given: int | None) -> np.ndarray:
    if given is not None:
        return np.array([given])
    require_columns(steps, ("step_index", "kind"), "pseudo-OCV steps table")
    return steps.loc[steps["kind"] == kind, "step_index"].to_numpy()


def pseudo_ocv(timeseries: pd.DataFrame, steps: pd.DataFrame, *, grid_points: int = 101,
               charge_step: int | None = None, discharge_step: int | None = None
               ) -> PseudoOcvResult:
    """OCV, both branches and hysteresis on a uniform SoC grid from a slow charge/discharge run.

    The branches are the charge and discharge steps (steps table `kind`) that move
    the most charge, unless `charge_step` / `discharge_step` name them.
    """
    if grid_points < 3:
        raise LabctlError(f"pseudo-OCV: grid_points must be >= 3, got {grid_points}")
    s = load_samples(timeseries, "pseudo-OCV timeseries")
    if "step_index" not in timeseries:
        raise LabctlError("pseudo-OCV timeseries: missing column step_index (which rows "
                          "belong to the charge and the discharge step)")
    q_all = charge_moved_ah(s.time_s, s.current_a)
    ch = _largest_step(s, q_all, _step_ids(steps, "charge", charge_step), +1)
    dis = _largest_step(s, q_all, _step_ids(steps, "discharge", discharge_step), -1)
    grid = np.linspace(0.0, 1.0, grid_points)
    branches = {}
    for name, (_, a, b, cap), sign in (("charge", ch, +1), ("discharge", dis, -1)):
        moved = sign * (q_all[a:b] - q_all[a])
        # Discharge runs from full: SoC = 1 - moved / capacity.
        soc = moved / cap if sign > 0 else 1.0 - moved / cap
        raw = local_linear_on_grid(soc, s.voltage_v[a:b], grid)
        branches[name] = isotonic_increasing(raw)
    temps = np.concatenate([s.temperature_c[ch[1]:ch[2]], s.temperature_c[dis[1]:dis[2]]])
    temps = temps[np.isfinite(temps)]
    table = pd.DataFrame({
        "soc": grid,
        "charge_v": branches["charge"],
        "discharge_v": branches["discharge"],
        "ocv_v": 0.5 * (branches["charge"] + branches["discharge"]),
        "hysteresis_v": branches["charge"] - branches["discharge"],
    })
    return PseudoOcvResult(table, ch[3], dis[3], ch[0], dis[0],
                           float(np.median(temps)) if len(temps) else float("nan"))


REST_POINT_COLUMNS = ["step_index", "end_time_s", "rest_duration_s", "soc", "ocv_v",
                      "temperature_c", "previous"]


def rest_ocv_points(timeseries: pd.DataFrame, *, capacity_ah: float | None = None,
                    initial_soc: float | None = None, min_rest_s: float = 600.0,
                    average_s: float = 30.0, rest_current_a: float | None = None
                    ) -> pd.DataFrame:
    """The relaxed voltage at the end of every rest at least `min_rest_s` long.

    SoC by coulomb counting (see `segments.coulomb_soc` for the defaults when
    capacity or initial SoC are not given). `previous` says whether the cell was
    charging or discharging before the rest (which side of the hysteresis).
    """
    s = load_samples(timeseries, "rest OCV timeseries")
    soc, _ = coulomb_soc(s.time_s, s.current_a, capacity_ah, initial_soc)
    segs = split_segments(s, rest_current_a)
    rows = []
    previous = None
    for seg in segs:
        if seg.kind != REST:
            previous = seg.kind
            continue
        duration = s.time_s[seg.stop - 1] - s.time_s[seg.start]
        if duration < min_rest_s:
            continue
        t = s.time_s[seg.start:seg.stop]
        tail = t >= t[-1] - average_s
        temp = s.temperature_c[seg.start:seg.stop][tail]
        temp = temp[np.isfinite(temp)]
        rows.append((seg.step_index, float(t[-1]), float(duration), float(soc[seg.stop - 1]),
                     float(np.mean(s.voltage_v[seg.start:seg.stop][tail])),
                     float(np.mean(temp)) if len(temp) else float("nan"), previous))
    if not rows:
        raise LabctlError(f"rest OCV: no rest of at least {min_rest_s:g} s found "
                          f"(|current| below the rest threshold); a shorter one counts with "
                          f"--min-rest-s (analyze ocv) or --ocv-rest-s (analyze hppc)")
    return pd.DataFrame(rows, columns=REST_POINT_COLUMNS)


def ocv_curve(soc: np.ndarray, ocv_v: np.ndarray, grid_points: int | None = None) -> pd.DataFrame:
    """A monotone OCV table (soc, ocv_v) from scattered points.

    Points at the same SoC are averaged; isotonic regression makes the values
    non-decreasing; with `grid_points` a PCHIP (shape-preserving, so still
    monotone) interpolant is sampled on a uniform grid over the measured SoC range.
    """
    from scipy.interpolate import PchipInterpolator  # import cost only when needed

    soc = np.asarray(soc, dtype=float)
    ocv_v = np.asarray(ocv_v, dtype=float)
    ok = np.isfinite(soc) & np.isfinite(ocv_v)
    if ok.sum() < 2:
        raise LabctlError("OCV curve: need at least two points with finite soc and ocv_v")
    u, inv = np.unique(soc[ok], return_inverse=True)
    counts = np.bincount(inv)
    mean_v = np.bincount(inv, ocv_v[ok]) / counts
    if len(u) < 2:
        raise LabctlError("OCV curve: all points are at one SoC; need a range of SoC")
    mono = isotonic_increasing(mean_v, counts)
    if grid_points is None:
        return pd.DataFrame({"soc": u, "ocv_v": mono})
    grid = np.linspace(u[0], u[-1], grid_points)
    return pd.DataFrame({"soc": grid, "ocv_v": PchipInterpolator(u, mono)(grid)})


def ocv_table_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """Write the long cell-file table: columns [temperature_c,] soc, ocv_v (docs/cells.md).

    Several temperatures are written on one SoC grid (see `ecm.cell_model.write_long_csv`).
    """
    require_columns(df, ("soc", "ocv_v"), "OCV table")
    return write_long_csv(df, ["ocv_v"], path)


__all__ = ["OCV_COLUMNS", "PseudoOcvResult", "isotonic_increasing",
           "local_linear_on_grid", "ocv_curve", "ocv_table_csv", "pseudo_ocv", "rest_ocv_points"]
