"""The per-step, per-cycle and timeseries tables, built from the journal."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from labctl.records import SAMPLE_COLUMNS, StepResult
from labctl.store.journal import JOURNAL_NAME, read_journal
from labctl.store.rundir import RunDir, atomic_write_bytes

PARQUET_COMPRESSION = "snappy"  # read everywhere; lz4/zstd gained little speed here
# Dictionary-encode only columns with few distinct values (indices, quantised readings):
# on unique floats such as times it costs time and saves nothing.
DICTIONARY_COLUMNS = ["step_index", "cycle_index", "voltage_v", "current_a", "temperature_c"]
ROW_GROUP = 500_000


class StepAccumulator:
    """Summary of one step, fed batch by batch in O(1) memory."""

    def __init__(self, step_index: int, cycle_index: int, kind: str, text: str, path: str):
        self.step_index, self.cycle_index = step_index, cycle_index
        self.kind, self.text, self.path = kind, text, path
        self.n = 0
        self._first: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self._vt = 0.0  # integral of V dt
        self._it = 0.0  # integral of I dt
        self._max_t = -math.inf

    def feed(self, columns: Mapping[str, np.ndarray]) -> None:
        t = np.asarray(columns["test_time_s"], dtype=float)
        if len(t) == 0:
            return
        v = np.asarray(columns["voltage_v"], dtype=float)
        i = np.asarray(columns["current_a"], dtype=float)
        if self.n:
            t = np.concatenate([[self._last["t"]], t])
            v = np.concatenate([[self._last["v"]], v])
            i = np.concatenate([[self._last["i"]], i])
        else:
            self._first = {"t": float(t[0]), "v": float(v[0])}
            for name in ("charge_capacity_ah", "discharge_capacity_ah", "charge_energy_wh",
                         "discharge_energy_wh"):
                self._first[name] = float(columns[name][0])
        if len(t) > 1:
            dt = np.diff(t)
            self._vt += float(np.dot(0.5 * (v[1:] + v[:-1]), dt))
            self._it += float(np.dot(0.5 * (i[1:] + i[:-1]), dt))
        temp = np.asarray(columns["temperature_c"], dtype=float)
        tmax = np.fmax.reduce(temp)
        if tmax > self._max_t:
            self._max_t = float(tmax)
        self._last = {"t": float(t[-1]), "v": float(v[-1]), "i": float(i[-1]),
                      "temp": float(temp[-1])}
        for name in ("charge_capacity_ah", "discharge_capacity_ah", "charge_energy_wh",
                     "discharge_energy_wh"):
            self._last[name] = float(columns[name][-1])
        self.n += len(columns["test_time_s"])

    def result(self, end_kind: str, end_reason: str) -> StepResult:
        nan = math.nan
        if self.n == 0:
            return StepResult(self.step_index, self.cycle_index, self.kind, self.text, self.path,
                              end_kind, end_reason, nan, nan, 0.0, 0, 0.0, 0.0, 0.0, 0.0,
                              nan, nan, nan, nan, nan, nan, nan)
        duration = self._last["t"] - self._first["t"]
        mean_v = self._vt / duration if duration > 0 else self._last["v"]
        mean_i = self._it / duration if duration > 0 else self._last["i"]

        def moved(name: str) -> float:
            return max(0.0, self._last[name] - self._first[name])

        return StepResult(
            step_index=self.step_index, cycle_index=self.cycle_index, kind=self.kind,
            text=self.text, path=self.path, end_kind=end_kind, end_reason=end_reason,
            start_time_s=self._first["t"], end_time_s=self._last["t"], duration_s=duration,
            n_samples=self.n,
            charge_capacity_ah=moved("charge_capacity_ah"),
            discharge_capacity_ah=moved("discharge_capacity_ah"),
            charge_energy_wh=moved("charge_energy_wh"),
            discharge_energy_wh=moved("discharge_energy_wh"),
            start_voltage_v=self._first["v"], end_voltage_v=self._last["v"],
            mean_voltage_v=mean_v, mean_current_a=mean_i, end_current_a=self._last["i"],
            max_temperature_c=self._max_t if math.isfinite(self._max_t) else nan,
            end_temperature_c=self._last["temp"],
        )


_STEP_COLUMNS = list(StepResult.__dataclass_fields__)


def build_steps(events: list[dict], samples: Mapping[str, np.ndarray]) -> pd.DataFrame:
    rows = {e["result"]["step_index"]: e["result"] for e in events if e.get("type") == "step_end"}
    for e in events:
        if e.get("type") != "step_start" or e["step_index"] in rows:
            continue
        acc = StepAccumulator(e["step_index"], e["cycle_index"], e.get("kind", ""),
                              e.get("text", ""), e.get("path", ""))
        mask = samples["step_index"] == e["step_index"]
        if mask.any():
            acc.feed({k: v[mask] for k, v in samples.items()})
        rows[e["step_index"]] = acc.result("interrupted", "the run stopped during this step").as_dict()
    df = pd.DataFrame([rows[k] for k in sorted(rows)], columns=_STEP_COLUMNS)
    return df


CYCLE_COLUMNS = ["cycle_index", "charge_capacity_ah", "discharge_capacity_ah", "charge_energy_wh",
                 "discharge_energy_wh", "coulombic_efficiency", "energy_efficiency",
                 "mean_charge_voltage_v", "mean_discharge_voltage_v", "max_temperature_c",
                 "start_time_s", "end_time_s", "n_steps"]


def _mean_voltage_per_cycle(samples: Mapping[str, np.ndarray], cycles: np.ndarray,
                            sign: int) -> np.ndarray:
    """Time-weighted mean voltage per cycle over intervals charging (sign=+1) or discharging.

    An interval counts when the cycle's charge (or discharge) counter grows over it
    — the instrument's own integration, so measurement noise on a resting cell's
    current does not make a rest look like charging — and both ends are in the
    same cycle. The voltage is the trapezoid mean over the interval.
    """
    t, v = samples["test_time_s"], samples["voltage_v"]
    counter = samples["charge_capacity_ah" if sign > 0 else "discharge_capacity_ah"]
    cyc = samples["cycle_index"]
    out = np.full(len(cycles), math.nan)
    if len(t) < 2:
        return out
    sel = (np.diff(counter) > 0) & (cyc[1:] == cyc[:-1])
    dt = np.where(sel, np.diff(t), 0.0)
    vdt = 0.5 * (v[1:] + v[:-1]) * dt
    # Sum per cycle: intervals are attributed to the cycle of their first sample.
    idx = np.searchsorted(cycles, cyc[:-1])
    idx = np.clip(idx, 0, len(cycles) - 1)
    total_dt = np.bincount(idx, weights=dt, minlength=len(cycles))
    total_vdt = np.bincount(idx, weights=vdt, minlength=len(cycles))
    good = total_dt > 0
    out[good] = total_vdt[good] / total_dt[good]
    return out


def build_cycles(steps: pd.DataFrame, samples: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """One row per cycle, from the steps table (sums) and the samples (mean voltages)."""
    if steps.empty:
        return pd.DataFrame(columns=CYCLE_COLUMNS)
    g = steps.groupby("cycle_index", sort=True)
    sums = g[["charge_capacity_ah", "discharge_capacity_ah", "charge_energy_wh",
              "discharge_energy_wh"]].sum()
    out = sums.reset_index()
    ch, dis = out.charge_capacity_ah.to_numpy(), out.discharge_capacity_ah.to_numpy()
    ech, edis = out.charge_energy_wh.to_numpy(), out.discharge_energy_wh.to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        out["coulombic_efficiency"] = np.where(ch > 0, dis / np.where(ch > 0, ch, 1), math.nan)
        out["energy_efficiency"] = np.where(ech > 0, edis / np.where(ech > 0, ech, 1), math.nan)
    cycles = out.cycle_index.to_numpy()
    out["mean_charge_voltage_v"] = _mean_voltage_per_cycle(samples, cycles, +1)
    out["mean_discharge_voltage_v"] = _mean_voltage_per_cycle(samples, cycles, -1)
    out["max_temperature_c"] = g.max_temperature_c.max().to_numpy()
    out["start_time_s"] = g.start_time_s.min().to_numpy()
    out["end_time_s"] = g.end_time_s.max().to_numpy()
    out["n_steps"] = g.size().to_numpy()
    out["cycle_index"] = out.cycle_index.astype(int)
    return out[CYCLE_COLUMNS]


def build_timeseries(samples: Mapping[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame({name: samples[name] for name in SAMPLE_COLUMNS})


_ARROW_SCHEMA = pa.schema([(n, pa.from_numpy_dtype(d)) for n, d in SAMPLE_COLUMNS.items()])


def _write_parquet_atomic(path: Path, df: pd.DataFrame) -> None:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False, compression=PARQUET_COMPRESSION)
    atomic_write_bytes(path, buf.getvalue())


def _arrow_slice(samples: Mapping[str, np.ndarray], lo: int, hi: int) -> pa.Table:
    return pa.Table.from_arrays([pa.array(samples[n][lo:hi]) for n in SAMPLE_COLUMNS],
                                schema=_ARROW_SCHEMA)


def finalize(run_dir: str | Path) -> dict:
    """Build timeseries/steps/cycles Parquet files from the journal, atomically.

    Returns the steps and cycles tables and the sample count, so callers need
    not read them back.
    """
    run_dir = Path(run_dir)
    data = read_journal(run_dir)
    samples = data.samples
    n = len(samples["test_time_s"])
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, _ARROW_SCHEMA, compression=PARQUET_COMPRESSION,
                          use_dictionary=DICTIONARY_COLUMNS, write_statistics=False) as writer:
        for lo in range(0, max(n, 1), ROW_GROUP):
            writer.write_table(_arrow_slice(samples, lo, min(lo + ROW_GROUP, n)))
    atomic_write_bytes(run_dir / "timeseries.parquet", sink.getvalue().to_pybytes())
    steps = build_steps(data.events, data.samples)
    cycles = build_cycles(steps, data.samples)
    _write_parquet_atomic(run_dir / "steps.parquet", steps)
    _write_parquet_atomic(run_dir / "cycles.parquet", cycles)
    RunDir.open(run_dir).update_meta(tables_journal_bytes=data.valid_bytes)
    return {"steps": steps, "cycles": cycles, "n_samples": len(data.samples["test_time_s"])}


def tables_current(run_dir: Path, meta: dict) -> bool:
    journal = run_dir / JOURNAL_NAME
    if not all((run_dir / f"{n}.parquet").exists() for n in ("timeseries", "steps", "cycles")):
        return False
    try:
        size = journal.stat().st_size
    except OSError:
        return True
    return meta.get("tables_journal_bytes") == size
