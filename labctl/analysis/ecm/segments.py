"""Cutting a timeseries into rests and constant-direction current segments.

Shared by the OCV, GITT and HPPC analyses. Conventions (docs/soc.md):

- Samples are zero-order hold: the current logged at a sample flows until the
  next sample, and the first sample of a step already carries the step's current
  (how labctl's cyclers log). A segment's edge time is therefore the time of its
  first sample.
- SoC comes from coulomb counting the logged current with that same hold.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from labctl.errors import LabctlError

REST, CHARGE, DISCHARGE = "rest", "charge", "discharge"
AS_PER_AH = 3600.0


def require_columns(df: pd.DataFrame | None, columns: Iterable[str], what: str) -> None:
    """Raise a LabctlError naming the missing columns (and that the table is empty)."""
    if df is None:
        raise LabctlError(f"{what}: no table given; expected columns {', '.join(columns)}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise LabctlError(f"{what}: missing column(s) {', '.join(missing)}; "
                          f"present: {', '.join(map(str, df.columns)) or 'none'}")
    if len(df) == 0:
        raise LabctlError(f"{what}: the table is empty; expected samples with columns "
                          f"{', '.join(columns)}")


@dataclass(frozen=True)
class Samples:
    """The timeseries columns the analyses use, as float arrays sorted by time."""

    time_s: np.ndarray
    voltage_v: np.ndarray
    current_a: np.ndarray
    step_index: np.ndarray  # all zeros when the table has no step_index
    temperature_c: np.ndarray  # NaN when not measured

    def __len__(self) -> int:
        return len(self.time_s)


def load_samples(timeseries: pd.DataFrame, what: str) -> Samples:
    """Validated arrays from a `timeseries` table; rows with NaN V or I are dropped."""
    require_columns(timeseries, ("test_time_s", "voltage_v", "current_a"), what)
    t = timeseries["test_time_s"].to_numpy(dtype=float)
    v = timeseries["voltage_v"].to_numpy(dtype=float)
    i = timeseries["current_a"].to_numpy(dtype=float)
    step = (timeseries["step_index"].to_numpy(dtype=np.int64) if "step_index" in timeseries
            else np.zeros(len(t), dtype=np.int64))
    temp = (timeseries["temperature_c"].to_numpy(dtype=float) if "temperature_c" in timeseries
            else np.full(len(t), np.nan))
    keep = np.isfinite(t) & np.isfinite(v) & np.isfinite(i)
    if not keep.any():
        raise LabctlError(f"{what}: no sample has finite test_time_s, voltage_v and current_a")
    t, v, i, step, temp = t[keep], v[keep], i[keep], step[keep], temp[keep]
    if np.any(np.diff(t) < 0):
        # Stable sort keeps samples logged at the same time in their logged order.
        order = np.argsort(t, kind="stable")
        t, v, i, step, temp = t[order], v[order], i[order], step[order], temp[order]
    return Samples(t, v, i, step, temp)


def default_rest_current(current_a: np.ndarray) -> float:
    """|I| at or below this counts as rest: 0.2 % of the largest current, at least 10 µA."""
    peak = float(np.max(np.abs(current_a))) if len(current_a) else 0.0
    return max(2e-3 * peak, 1e-5)


@dataclass(frozen=True)
class Segment:
    """Consecutive samples of one step with one current direction (or rest)."""

    kind: str  # rest, charge, discharge
    start: int  # first row
    stop: int  # one past the last row
    step_index: int
    start_time_s: float  # edge: time of the first sample
    end_time_s: float  # edge of the next segment (its first sample), or the last sample
    mean_current_a: float

    @property
    def duration_s(self) -> float:
        return self.end_time_s - self.start_time_s


def split_segments(s: Samples, rest_current_a: float | None = None) -> list[Segment]:
    """Split where the step index changes or the current changes direction/rest state."""
    if len(s) == 0:
        return []
    thr = default_rest_current(s.current_a) if rest_current_a is None else rest_current_a
    cls = np.where(s.current_a > thr, 1, np.where(s.current_a < -thr, -1, 0))
    change = (np.diff(cls) != 0) | (np.diff(s.step_index) != 0)
    starts = np.concatenate([[0], np.flatnonzero(change) + 1])
    stops = np.concatenate([starts[1:], [len(s)]])
    names = {0: REST, 1: CHARGE, -1: DISCHARGE}
    out = []
    for a, b in zip(starts, stops, strict=True):
        end_t = s.time_s[b] if b < len(s) else s.time_s[b - 1]
        out.append(Segment(names[int(cls[a])], int(a), int(b), int(s.step_index[a]),
                           float(s.time_s[a]), float(end_t), float(np.mean(s.current_a[a:b]))))
    return out


def charge_moved_ah(time_s: np.ndarray, current_a: np.ndarray) -> np.ndarray:
    """Cumulative charge (Ah) at each sample, zero-order hold on the logged current."""
    q = np.empty(len(time_s))
    if len(time_s):
        q[0] = 0.0
        np.cumsum(current_a[:-1] * np.diff(time_s), out=q[1:])
    return q / AS_PER_AH


def coulomb_soc(time_s: np.ndarray, current_a: np.ndarray, capacity_ah: float | None = None,
                initial_soc: float | None = None) -> tuple[np.ndarray, float]:
    """SoC at each sample and the capacity used.

    Without `capacity_ah` the run is taken to span empty to full (a GITT or
    pseudo-OCV run from full to the cut-off): capacity = range of the charge moved.
    Without `initial_soc` the fullest point of the run is taken as SoC 1.
    """
    q = charge_moved_ah(time_s, current_a)
    if capacity_ah is None:
        capacity_ah = float(q.max() - q.min())
        if capacity_ah <= 0:
            raise LabctlError("cannot infer the capacity: no charge moved; pass capacity_ah")
    elif capacity_ah <= 0:
        raise LabctlError(f"capacity_ah must be > 0, got {capacity_ah}")
    if initial_soc is None:
        return 1.0 + (q - q.max()) / capacity_ah, capacity_ah
    return initial_soc + q / capacity_ah, capacity_ah


def edge_value(time_s: np.ndarray, voltage_v: np.ndarray, edge_time_s: float,
               window_s: float = 2.0, min_samples: int = 3) -> float:
    """Voltage at `edge_time_s` from a straight line through the samples given.

    The caller passes only the samples on one side of the edge (ordered by time,
    nearest to the edge first or last does not matter). It uses those within
    `window_s` of the edge, and at least `min_samples` of the nearest ones; a line
    extrapolated to the edge removes most of the RC drift a single sample carries.
    """
    n = len(time_s)
    if n == 0:
        return float("nan")
    dist = np.abs(time_s - edge_time_s)
    order = np.argsort(dist, kind="stable")
    k = max(int(np.count_nonzero(dist <= window_s)), min(min_samples, n))
    sel = order[:k]
    if k < 3 or np.ptp(time_s[sel]) == 0:
        return float(voltage_v[order[0]])
    slope, intercept = np.polyfit(time_s[sel] - edge_time_s, voltage_v[sel], 1)
    return float(intercept)


def cluster_values(values: np.ndarray, gap: float) -> np.ndarray:
    """Cluster labels (0, 1, ...) for values, a new cluster wherever sorted values jump > gap."""
    values = np.asarray(values, dtype=float)
    labels = np.full(len(values), -1)
    finite = np.isfinite(values)
    if not finite.any():
        return labels
    order = np.argsort(values[finite], kind="stable")
    sorted_v = values[finite][order]
    lab_sorted = np.concatenate([[0], np.cumsum(np.diff(sorted_v) > gap)])
    idx = np.flatnonzero(finite)[order]
    labels[idx] = lab_sorted
    return labels


def segment_temperature(s: Samples, seg: Segment, default_c: float) -> float:
    """Median measured temperature over a segment, or `default_c` when not measured."""
    temp = s.temperature_c[seg.start:seg.stop]
    temp = temp[np.isfinite(temp)]
    return float(np.median(temp)) if len(temp) else float(default_c)
