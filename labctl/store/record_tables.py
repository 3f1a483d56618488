"""Record tables: rows that plugin steps write besides the timeseries (spectra, checks...).

A step appends rows with `StepRun.record(table, rows)`; each call is one
journal event `{"type": "record", "table": ..., "columns": {...}}`. The tables
are built from those events: at the end of a run as `records/<table>.parquet`,
and on demand (running or crashed runs) by `Run.records`.

A step interrupted by a crash runs again from its start on `labctl resume`;
only the rows of its last attempt are kept, so nothing appears twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported only when a run has record tables
    import pandas as pd

RECORDS_DIR = "records"


def build_records(events: Iterable[Mapping[str, Any]]) -> dict[str, pd.DataFrame]:
    """Every record table in the events, rows in journal order."""
    attempt = 0
    chunks: dict[str, list[tuple[int, int, dict]]] = {}
    for e in events:
        kind = e.get("type")
        if kind == "resume":
            attempt += 1
        elif kind == "record" and isinstance(e.get("columns"), dict):
            chunks.setdefault(str(e.get("table")), []).append(
                (attempt, int(e.get("step_index", 0)), e["columns"]))
    if not chunks:
        return {}
    import pandas as pd

    tables = {}
    for table, items in chunks.items():
        last = {}
        for att, step, _ in items:
            last[step] = max(att, last.get(step, att))
        frames = [pd.DataFrame(cols) for att, step, cols in items if att == last[step]]
        df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        front = [c for c in ("step_index", "cycle_index", "test_time_s") if c in df.columns]
        tables[table] = df[front + [c for c in df.columns if c not in front]]
    return tables


def write_records(run_dir: Path, tables: Mapping[str, pd.DataFrame]) -> None:
    """Write each table as records/<table>.parquet, atomically."""
    if not tables:
        return  # a cycling run's: pyarrow stays unimported (store/table_writer.py)
    from labctl.store.tables import write_frame

    folder = Path(run_dir) / RECORDS_DIR
    folder.mkdir(exist_ok=True)
    for name, df in tables.items():
        write_frame(folder / f"{name}.parquet", df)
