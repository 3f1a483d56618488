"""The timeseries, steps and cycles tables, built from the journal.

Conventions: the cumulative columns (charge_capacity_ah, ...) count from 0 at
the start of each cycle and never decrease within it, so what a step moved is
its last value minus its first. Means are time-weighted (trapezoid). A step's
first sample shares its time with the previous step's last one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from labctl.records import SAMPLE_COLUMNS
from labctl.store import summaries
from labctl.store.arrow_columns import to_arrow
from labctl.store.atomic import atomic_path
from labctl.store.freshness import TABLE_NAMES, tables_current  # noqa: F401
from labctl.store.journal import EVENT, JOURNAL_NAME, JournalReader
from labctl.store.step_summary import CUMULATIVE, StepAccumulator  # noqa: F401 - re-exported
from labctl.store.summaries import (  # noqa: F401 - the tables' names, re-exported
    _STEP_STR,
    CYCLE_COLUMNS,
    INTERRUPTED,
    STEP_COLUMNS,
    Columns,
    _CycleMeans,
    _StepTracker,
    _unique_inverse,
    cycle_columns,
    step_columns,
)

if TYPE_CHECKING:  # imported where a DataFrame is built: finalize writes with pyarrow alone
    import pandas as pd

# Snappy: decoded everywhere and cheap to write; zstd/gzip cost several times the
# time of the rest of finalize for a modest size gain on noisy float columns.
PARQUET_COMPRESSION = "snappy"
# Dictionary encoding pays on columns with few distinct values (the indices); on
# noisy readings and times it falls back to plain after costing time (measured:
# 15 % smaller files, 40 % slower writes with it on the readings too).
DICTIONARY_COLUMNS = ["step_index", "cycle_index"]
ROW_GROUP_ROWS = summaries.ROW_GROUP_ROWS  # tests change it here

def steps_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows of StepResult fields as a DataFrame with fixed column types."""
    import pandas as pd

    data: dict[str, Any] = step_columns(rows)
    for name in _STEP_STR:
        data[name] = pd.array(data[name].tolist(), dtype="str")
    return pd.DataFrame(data, columns=STEP_COLUMNS)


def build_steps(events: Iterable[Mapping[str, Any]], samples: Mapping[str, np.ndarray]
                ) -> pd.DataFrame:
    """One row per step_index: the recorded step_end result, or, for a step that started
    but never ended (a crash), a row computed from its samples with end_kind "interrupted"."""
    tracker = _StepTracker()
    for e in events:
        tracker.event(e)
    tracker.feed(samples)
    return tracker.frame()


# -- cycles ---------------------------------------------------------------------------------

def _cycles_frame(steps: pd.DataFrame, means: _CycleMeans) -> pd.DataFrame:
    import pandas as pd

    cols = cycle_columns({c: steps[c].to_numpy() for c in ("cycle_index", *CUMULATIVE,
                          "max_temperature_c", "start_time_s", "end_time_s")}, means)
    return pd.DataFrame(cols, columns=CYCLE_COLUMNS)


def build_cycles(steps: pd.DataFrame, samples: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """One row per cycle: capacities and energies summed over its steps, efficiencies,
    time-weighted mean charge/discharge voltages from the samples, max temperature,
    start/end time and the number of steps."""
    means = _CycleMeans()
    means.feed(samples)
    return _cycles_frame(steps, means)


# -- timeseries ----------------------------------------------------------------------------

def build_timeseries(samples: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """The samples as a DataFrame, columns in SAMPLE_COLUMNS order (no copy of the arrays)."""
    import pandas as pd

    data = {name: np.asarray(samples[name], dtype=dt) for name, dt in SAMPLE_COLUMNS.items()}
    return pd.DataFrame(data, columns=list(SAMPLE_COLUMNS), copy=False)


ARROW_SCHEMA = pa.schema([(n, pa.from_numpy_dtype(d)) for n, d in SAMPLE_COLUMNS.items()])


def _dtype_runs() -> list[tuple[np.dtype, list[str]]]:
    """SAMPLE_COLUMNS grouped into runs of neighbouring same-dtype columns."""
    runs: list[tuple[np.dtype, list[str]]] = []
    for name, dtype in SAMPLE_COLUMNS.items():
        if runs and runs[-1][0] == dtype:
            runs[-1][1].append(name)
        else:
            runs.append((dtype, [name]))
    return runs


class _RowGroup:
    """A reusable buffer of samples, written to Parquet one row group at a time."""

    def __init__(self, rows: int):
        # One 2-D buffer per run of same-dtype columns (the journal's own grouping), so
        # a journal block is copied in with a few numpy calls instead of one per column.
        self.runs: list[np.ndarray] = []
        self.cols: dict[str, np.ndarray] = {}
        for dtype, names in _dtype_runs():
            buf = np.empty((len(names), rows), dtype=dtype)
            self.runs.append(buf)
            self.cols.update((name, buf[i]) for i, name in enumerate(names))
        self.capacity, self.n = rows, 0

    def add(self, block: Mapping[str, np.ndarray], lo: int, hi: int) -> int:
        m = min(hi - lo, self.capacity - self.n)
        for name, col in self.cols.items():
            col[self.n:self.n + m] = block[name][lo:lo + m]
        self.n += m
        return lo + m

    def add_runs(self, runs: list[np.ndarray], lo: int, hi: int) -> int:
        """Like `add`, from a block given as `JournalReader.sample_runs` views."""
        m = min(hi - lo, self.capacity - self.n)
        for buf, arr in zip(self.runs, runs, strict=True):
            buf[:, self.n:self.n + m] = arr[:, lo:lo + m]
        self.n += m
        return lo + m

    def view(self) -> dict[str, np.ndarray]:
        return {name: col[: self.n] for name, col in self.cols.items()}


class _TimeseriesSink:
    """Streams samples into a Parquet file through one reusable row-group buffer.

    `on_group` sees each row group, in file order, before it is written. (A
    second buffer encoded on a worker thread was tried: no gain measured on a
    busy 2-core machine, so the simple form stays.)
    """

    def __init__(self, path: Path, on_group: Any):
        self.writer = _parquet_writer(path)
        self.on_group = on_group
        self.group = _RowGroup(ROW_GROUP_ROWS)

    def add(self, block: Mapping[str, np.ndarray], m: int) -> None:
        lo = 0
        while lo < m:
            lo = self.group.add(block, lo, m)
            if self.group.n == self.group.capacity:
                self._write()

    def add_runs(self, runs: list[np.ndarray], m: int) -> None:
        lo = 0
        while lo < m:
            lo = self.group.add_runs(runs, lo, m)
            if self.group.n == self.group.capacity:
                self._write()

    def _write(self) -> None:
        if self.group.n:
            cols = self.group.view()
            self.on_group(cols)
            self.writer.write_table(_arrow_table(cols))  # encoded now: the buffer is free
            self.group.n = 0

    def finish(self) -> None:
        self._write()
        self.writer.close()

    def abandon(self) -> None:
        """Close after a failure; the caller removes the file (keep the first error)."""
        try:
            self.writer.close()
        except Exception:  # the original error matters, not this one
            pass


def _parquet_writer(where: Any) -> pq.ParquetWriter:
    return pq.ParquetWriter(where, ARROW_SCHEMA, compression=PARQUET_COMPRESSION,
                            use_dictionary=DICTIONARY_COLUMNS)


def _arrow_table(cols: Mapping[str, np.ndarray]) -> pa.Table:
    return pa.Table.from_arrays([to_arrow(cols[n]) for n in SAMPLE_COLUMNS], schema=ARROW_SCHEMA)


def write_frame(path: Path, df: pd.DataFrame | Mapping[str, np.ndarray],
                sync_dir: bool = True) -> None:
    """A small table (a DataFrame, or columns) as Parquet, replacing `path` atomically
    (`sync_dir=False`: the caller fsyncs the folder once after several of them)."""
    if isinstance(df, Mapping):
        table = pa.Table.from_arrays([to_arrow(col) for col in df.values()], names=list(df))
    else:
        table = pa.Table.from_pandas(df, preserve_index=False)
    with atomic_path(path, sync_dir=sync_dir) as tmp:
        pq.write_table(table, tmp, compression=PARQUET_COMPRESSION)


# -- finalize (store/finalize.py) -----------------------------------------------------------

from labctl.store.finalize import finalize  # noqa: E402, F401 - re-exported


def _timeseries_from_journal(run_dir: Path):
    """Stream the journal into timeseries.parquet; the summaries and events it saw."""
    reader = JournalReader(run_dir / JOURNAL_NAME, skip_event_types=("state",))
    events: list[dict] = []
    tracker, means = _StepTracker(), _CycleMeans()
    n_samples = 0

    def summarise(cols: Mapping[str, np.ndarray]) -> None:
        # Fed a row group at a time, not at every step event: the cycle means only
        # need file order, and the step tracker only needs the samples of steps that
        # never end, which are still open at this point.
        tracker.feed(cols)
        means.feed(cols)

    with atomic_path(run_dir / "timeseries.parquet", sync_dir=False) as tmp:
        sink = _TimeseriesSink(tmp, summarise)
        try:
            for kind, item, m in reader.records(reuse_buffer=True):
                if kind == EVENT:
                    tracker.event(item)
                    events.append(item)
                else:
                    runs = reader.sample_runs(item, m)
                    if runs is not None:
                        sink.add_runs(runs, m)
                    else:  # a journal written with other columns
                        sink.add(reader.layout.columns_of(item, m), m)
                    n_samples += m
            sink.finish()
        except BaseException:
            sink.abandon()
            raise
    return tracker, means, events, n_samples, reader
