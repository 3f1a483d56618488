"""Step and cycle summaries of a run, from its events and samples (numpy only).

What `finalize` and the live tables (store/live_tables.py) both build: kept free
of pyarrow and pandas, so the engine's thread never waits for their import.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from operator import itemgetter
from typing import Any

import numpy as np

from labctl.records import StepResult
from labctl.store.step_summary import CUMULATIVE, StepAccumulator

# ~5.5 MB of samples held at a time while streaming (per channel and buffer). Encoding
# costs the same per row as with 131,072-row groups (measured: 127 against 131 ms for the
# 100-cycle bench's 847,160 rows; the file 0.03 % larger), and the last, partial group,
# encoded after the run's end, is half as long at most.
ROW_GROUP_ROWS = 65_536

STEP_COLUMNS = list(StepResult.__dataclass_fields__)
_STEP_INT = {"step_index", "cycle_index", "n_samples"}
_STEP_STR = {"kind", "text", "path", "end_kind", "end_reason"}

CYCLE_COLUMNS = ["cycle_index", "charge_capacity_ah", "discharge_capacity_ah", "charge_energy_wh",
                 "discharge_energy_wh", "coulombic_efficiency", "energy_efficiency",
                 "mean_charge_voltage_v", "mean_discharge_voltage_v", "max_temperature_c",
                 "start_time_s", "end_time_s", "n_steps"]

INTERRUPTED = "interrupted"
_INTERRUPTED_REASON = "the run stopped during this step"


class _StepTracker:
    """Follows step_start / step_end events; summarises steps that never got a step_end."""

    def __init__(self) -> None:
        self.ended: dict[int, dict] = {}
        self.open: dict[int, StepAccumulator] = {}

    def event(self, e: Mapping[str, Any]) -> None:
        kind = e.get("type")
        if kind == "step_start":
            try:
                index = int(e["step_index"])
            except (KeyError, TypeError, ValueError):
                return
            if index not in self.ended and index not in self.open:
                self.open[index] = StepAccumulator(
                    index, int(e.get("cycle_index", 0) or 0), str(e.get("kind", "")),
                    str(e.get("text", "")), str(e.get("path", "")))
        elif kind == "step_end" and isinstance(e.get("result"), dict):
            try:
                index = int(e["result"]["step_index"])
            except (KeyError, TypeError, ValueError):
                return
            self.ended[index] = e["result"]
            self.open.pop(index, None)

    def feed(self, samples: Mapping[str, np.ndarray]) -> None:
        """Samples in file order; only steps still open need them."""
        if not self.open or len(samples["step_index"]) == 0:
            return
        si = samples["step_index"]
        for index, acc in self.open.items():  # rarely more than one step is open
            mask = si == index
            if mask.all():
                acc.feed(samples)
            elif mask.any():
                acc.feed({k: v[mask] for k, v in samples.items()})

    def rows(self) -> list[dict]:
        rows = dict(self.ended)
        for index, acc in self.open.items():
            rows[index] = acc.result(INTERRUPTED, _INTERRUPTED_REASON).as_dict()
        return [rows[k] for k in sorted(rows)]

    def frame(self) -> Any:
        """The rows as a DataFrame (imports pandas)."""
        from labctl.store.tables import steps_frame

        return steps_frame(self.rows())


# A table as columns (name -> numpy array, strings as object arrays): what finalize
# builds and writes without pandas, which costs ~0.2 s to import on every `labctl run`.
Columns = dict[str, np.ndarray]


def step_columns(rows: Iterable[Mapping[str, Any]]) -> Columns:
    """Rows of StepResult fields as columns with fixed types."""
    rows = list(rows)
    try:  # every row has every field (the engine's rows): one pass over the rows
        table = list(zip(*map(_ALL_FIELDS, rows), strict=True)) if rows else \
            [()] * len(STEP_COLUMNS)
    except (KeyError, TypeError):  # rows missing fields (older journals, imports)
        table = [[r.get(name) for r in rows] for name in STEP_COLUMNS]
    data: Columns = {}
    for name, values in zip(STEP_COLUMNS, table, strict=True):
        # Values already of the column's type (the engine's rows) go to numpy as they are.
        plain = set(map(type, values))
        if name in _STEP_INT:
            data[name] = np.array(values if plain <= _INT else
                                  [0 if v is None else int(v) for v in values], dtype=np.int64)
        elif name in _STEP_STR:
            data[name] = np.array(values if plain <= _STR else
                                  ["" if v is None else str(v) for v in values], dtype=object)
        else:  # numpy makes float() of Python numbers, and NaN of None
            data[name] = np.array(values if plain <= _FLOAT else
                                  [math.nan if v is None else float(v) for v in values],
                                  dtype=np.float64)
    return data


_ALL_FIELDS = itemgetter(*STEP_COLUMNS)
_INT, _STR, _FLOAT = {int}, {str}, {float, int, type(None)}


_ZERO_START = np.zeros(1, dtype=np.intp)


def _masked_sums(x: np.ndarray, keep: np.ndarray, out: np.ndarray, starts: np.ndarray
                 ) -> np.ndarray:
    """np.add.reduceat(np.where(keep, x, 0.0), starts) through x * keep, which is the same
    for finite x and far cheaper; where a sum is not finite (a NaN or infinite x, which
    x * False keeps) it is made as written."""
    with np.errstate(invalid="ignore"):  # inf * False: the sum is redone below
        sums = np.add.reduceat(np.multiply(x, keep, out=out), starts)
    if not np.isfinite(sums).all():
        sums = np.add.reduceat(np.where(keep, x, 0.0), starts)
    return sums


class _CycleMeans:
    """Time-weighted mean voltage per cycle while charging and while discharging.

    An interval counts as charging when the cycle's charge counter grows over
    it (the instrument's own integration, so current noise on a resting cell
    is not charging), likewise for discharging, and only when both its ends are
    in the same cycle. Fed in file order; carries the last sample between feeds.
    """

    COLUMNS = ("test_time_s", "voltage_v", "charge_capacity_ah", "discharge_capacity_ah",
               "cycle_index")  # what `feed` reads

    def __init__(self) -> None:
        self.sums: dict[int, list[float]] = {}  # cycle -> [dt_c, vdt_c, dt_d, vdt_d]
        self._carry: tuple[float, float, float, float, int] | None = None
        self._buffers: tuple[np.ndarray, ...] | None = None  # see feed

    def _add(self, cycle: int, at: int, dt: float, vdt: float) -> None:
        if dt:
            s = self.sums.setdefault(cycle, [0.0, 0.0, 0.0, 0.0])
            s[at] += dt
            s[at + 1] += vdt

    def feed(self, samples: Mapping[str, np.ndarray]) -> None:
        t = np.asarray(samples["test_time_s"], dtype=np.float64)
        if len(t) == 0:
            return
        v = np.asarray(samples["voltage_v"], dtype=np.float64)
        qc = np.asarray(samples["charge_capacity_ah"], dtype=np.float64)
        qd = np.asarray(samples["discharge_capacity_ah"], dtype=np.float64)
        cyc = np.asarray(samples["cycle_index"])
        if self._carry is not None:  # the interval from the previous feed's last sample
            tp, vp, qcp, qdp, cp = self._carry
            if cp == cyc[0]:
                dt = float(t[0]) - tp
                vdt = 0.5 * (vp + float(v[0])) * dt
                if qc[0] > qcp:
                    self._add(cp, 0, dt, vdt)
                if qd[0] > qdp:
                    self._add(cp, 2, dt, vdt)
        self._carry = (float(t[-1]), float(v[-1]), float(qc[-1]), float(qd[-1]), int(cyc[-1]))
        if len(t) < 2:
            return
        # Runs of one cycle index (a handful per feed): sum each with one reduceat.
        starts = np.flatnonzero(cyc[1:-1] != cyc[:-2]) + 1
        starts = np.concatenate(([0], starts)) if len(starts) else _ZERO_START
        labels = cyc[:-1][starts].tolist()
        # Into arrays kept from feed to feed: a row group's fresh 1 MB temporaries cost
        # more in page faults than the arithmetic (~1.8 ms a 131 k-row feed, with the GIL
        # held, on the live tables' thread, against ~0.4 ms).
        dt, vdt, grows, same, masked = self._scratch(len(t) - 1)
        np.subtract(t[1:], t[:-1], out=dt)  # np.diff
        np.add(v[1:], v[:-1], out=vdt)
        vdt *= 0.5
        vdt *= dt  # 0.5 * (v[1:] + v[:-1]) * dt, in the same order
        np.equal(cyc[1:], cyc[:-1], out=same)
        for at, counter in ((0, qc), (2, qd)):
            np.greater(counter[1:], counter[:-1], out=grows)  # diff > 0
            grows &= same
            sum_dt = _masked_sums(dt, grows, masked, starts)
            sum_vdt = _masked_sums(vdt, grows, masked, starts)
            for label, a, b in zip(labels, sum_dt.tolist(), sum_vdt.tolist(), strict=True):
                self._add(label, at, a, b)

    def _scratch(self, n: int) -> tuple[np.ndarray, ...]:
        if self._buffers is None or len(self._buffers[0]) < n:
            self._buffers = (np.empty(n), np.empty(n), np.empty(n, dtype=bool),
                             np.empty(n, dtype=bool), np.empty(n))
        return tuple(b[:n] for b in self._buffers)

    def means(self, cycle: int) -> tuple[float, float]:
        s = self.sums.get(int(cycle))
        if s is None:
            return math.nan, math.nan
        charge = s[1] / s[0] if s[0] > 0 else math.nan
        discharge = s[3] / s[2] if s[2] > 0 else math.nan
        return float(charge), float(discharge)


def cycle_columns(steps: Mapping[str, np.ndarray], means: _CycleMeans) -> Columns:
    """One row per cycle from the steps' columns (numpy only, sorted by cycle)."""
    cyc = np.asarray(steps["cycle_index"], dtype=np.int64)
    labels, inverse = _unique_inverse(cyc)
    n = len(labels)
    out: Columns = {"cycle_index": labels.astype(np.int64)}

    def per_cycle(name: str, how: Any, empty: float) -> np.ndarray:
        acc = np.full(n, empty, dtype=np.float64)
        how.at(acc, inverse, np.asarray(steps[name], dtype=np.float64))
        return acc

    for name in CUMULATIVE:
        out[name] = per_cycle(name, np.add, 0.0)
    ch, dis = out["charge_capacity_ah"], out["discharge_capacity_ah"]
    ech, edis = out["charge_energy_wh"], out["discharge_energy_wh"]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["coulombic_efficiency"] = np.where(ch > 0, dis / ch, math.nan)
        out["energy_efficiency"] = np.where(ech > 0, edis / ech, math.nan)
    pairs = [means.means(c) for c in labels.tolist()]
    out["mean_charge_voltage_v"] = np.array([p[0] for p in pairs], dtype=np.float64)
    out["mean_discharge_voltage_v"] = np.array([p[1] for p in pairs], dtype=np.float64)
    # Like pandas' groupby max/min: NaN rows are skipped, all-NaN groups give NaN.
    out["max_temperature_c"] = _nan_reduce(steps["max_temperature_c"], inverse, n, np.fmax)
    out["start_time_s"] = _nan_reduce(steps["start_time_s"], inverse, n, np.fmin)
    out["end_time_s"] = _nan_reduce(steps["end_time_s"], inverse, n, np.fmax)
    out["n_steps"] = np.bincount(inverse, minlength=n).astype(np.int64)
    return {name: out[name] for name in CYCLE_COLUMNS}


def _unique_inverse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(values, return_inverse=True) for a 1-D integer array, without the import
    of numpy.ma that np.unique makes on its first call (~10 ms of every `labctl run`)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    first = np.ones(len(ordered), dtype=bool)
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    inverse = np.empty(len(values), dtype=np.intp)
    inverse[order] = np.cumsum(first) - 1
    return ordered[first], inverse


def _nan_reduce(values: Any, inverse: np.ndarray, n: int, how: Any) -> np.ndarray:
    acc = np.full(n, math.nan, dtype=np.float64)
    how.at(acc, inverse, np.asarray(values, dtype=np.float64))
    return acc
