"""`open_run`: a run directory as pandas DataFrames, finished, running or crashed.

The Parquet tables are read when they were built from the journal as it is
now; otherwise (a run still going on, one whose process died, tables missing)
the same tables are built from the journal, so both give identical frames.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where a table is read: `labctl run` and `ls` never need pandas
    import pandas as pd

from labctl.errors import LabctlError
from labctl.store.freshness import tables_current
from labctl.store.journal import JournalData, read_events, read_journal
from labctl.store.rundir import RunDir, effective_status

_SUMMARY_KEYS = ("cycle_index", "charge_capacity_ah", "discharge_capacity_ah", "charge_energy_wh",
                 "discharge_energy_wh", "coulombic_efficiency", "energy_efficiency")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _columns(table: Any) -> Mapping[str, Any]:
    """A DataFrame or a mapping of column arrays, as a mapping of numpy arrays."""
    if hasattr(table, "columns") and hasattr(table, "to_numpy"):
        return {c: table[c].to_numpy() for c in table.columns}
    return table


def summarize(meta: dict, steps: Any, cycles: Any, n_samples: int) -> dict[str, Any]:
    """Status, counts, duration, and the numbers of the last complete cycle.

    `steps` and `cycles` are DataFrames or mappings of column arrays. A complete
    cycle is one that both charged and discharged; when there is none, the last
    cycle is reported. NaN becomes None (JSON-friendly).
    """
    import numpy as np

    steps, cycles = _columns(steps), _columns(cycles)
    out: dict[str, Any] = {"status": meta.get("status"), "reason": meta.get("reason")}
    n_cycles = len(cycles["cycle_index"]) if "cycle_index" in cycles else 0
    if n_cycles:
        full = np.flatnonzero((np.asarray(cycles["charge_capacity_ah"]) > 0)
                              & (np.asarray(cycles["discharge_capacity_ah"]) > 0))
        row = int(full[-1]) if len(full) else n_cycles - 1
        for key in _SUMMARY_KEYS:
            value = cycles[key][row]
            out[key] = int(value) if key == "cycle_index" else float(value)
    out["n_samples"] = int(n_samples)
    n_steps = len(steps["step_index"]) if "step_index" in steps else 0
    out["n_steps"] = int(n_steps)
    out["n_cycles"] = int(n_cycles)
    ends = np.asarray(steps["end_time_s"], dtype=np.float64) if n_steps else np.empty(0)
    ends = ends[~np.isnan(ends)]
    out["duration_s"] = float(ends.max()) if len(ends) else 0.0
    return {k: _clean(v) for k, v in out.items()}


class Run:
    """A run directory: `.meta`, `.timeseries`, `.steps`, `.cycles`, `.events`, `.summary()`."""

    def __init__(self, path: str | Path):
        self._rundir = RunDir.open(path)
        self.path = self._rundir.path
        self.meta: dict[str, Any] = dict(self._rundir.meta)
        self.meta["status"] = effective_status(self._rundir.meta)
        self._from_tables = tables_current(self.path, self._rundir.meta)

    @property
    def tables_current(self) -> bool:
        """True when the Parquet tables match the journal (they are what is read)."""
        return self._from_tables

    @cached_property
    def _journal(self) -> JournalData:
        return read_journal(self.path)

    @cached_property
    def events(self) -> list[dict]:
        if "_journal" in self.__dict__ or not self._from_tables:
            return self._journal.events
        return read_events(self.path)  # tables are current: no need to decode samples

    def _table(self, name: str) -> pd.DataFrame:
        import pandas as pd

        try:
            return pd.read_parquet(self.path / f"{name}.parquet")
        except (OSError, ValueError) as exc:  # damaged since: fall back to the journal
            self._from_tables = False
            raise _Rebuild from exc

    @cached_property
    def timeseries(self) -> pd.DataFrame:
        if self._from_tables:
            try:
                return self._table("timeseries")
            except _Rebuild:
                pass
        from labctl.store.tables import build_timeseries

        return build_timeseries(self._journal.samples)

    @cached_property
    def steps(self) -> pd.DataFrame:
        if self._from_tables:
            try:
                return self._table("steps")
            except _Rebuild:
                pass
        from labctl.store.tables import build_steps

        return build_steps(self._journal.events, self._journal.samples)

    @cached_property
    def cycles(self) -> pd.DataFrame:
        if self._from_tables:
            try:
                return self._table("cycles")
            except _Rebuild:
                pass
        from labctl.store.tables import build_cycles

        return build_cycles(self.steps, self._journal.samples)

    def n_samples(self) -> int:
        if self._from_tables and "timeseries" not in self.__dict__:
            try:
                import pyarrow.parquet as pq

                return pq.ParquetFile(self.path / "timeseries.parquet").metadata.num_rows
            except (OSError, ValueError):
                self._from_tables = False
        return len(self.timeseries)

    def summary(self) -> dict[str, Any]:
        """Status, reason, duration, sample/step/cycle counts and the last complete cycle's
        capacities, energies and efficiencies."""
        return summarize(self.meta, self.steps, self.cycles, self.n_samples())

    def record_tables(self) -> list[str]:
        """Names of the record tables steps wrote (spectra, pressure, bms_checks...)."""
        from labctl.store.records import build_records

        if self._from_tables:
            folder = self.path / "records"
            return sorted(p.stem for p in folder.glob("*.parquet")) if folder.is_dir() else []
        return sorted(build_records(self.events))

    def records(self, table: str) -> pd.DataFrame:
        """A record table written by plugin steps, e.g. `run.records("spectra")`."""
        from labctl.store.records import build_records

        if self._from_tables:
            p = self.path / "records" / f"{table}.parquet"
            if _NAME.match(str(table)) and p.is_file():
                import pandas as pd

                try:
                    return pd.read_parquet(p)
                except (OSError, ValueError):
                    pass  # damaged: rebuild from the journal below
        tables = build_records(self.events if not self._from_tables else self._journal.events)
        if table not in tables:
            raise LabctlError(f"{self.path}: no record table {table!r}; recorded: "
                              f"{', '.join(sorted(tables)) or 'none'}")
        return tables[table]

    def analysis(self, name: str) -> dict[str, pd.DataFrame]:
        """Tables an analysis stored under analysis/<name>/, by file stem."""
        root = self.path / "analysis"
        stored = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        folder = root / str(name)
        if not _NAME.match(str(name)) or not folder.is_dir():
            raise LabctlError(f"{self.path}: no analysis {name!r}; stored: "
                              f"{', '.join(stored) or 'none'}")
        import pandas as pd

        tables = {}
        for p in sorted(folder.glob("*.parquet")):
            try:
                tables[p.stem] = pd.read_parquet(p)
            except (OSError, ValueError) as exc:
                raise LabctlError(f"{p}: unreadable Parquet table ({exc})") from None
        return tables

    def analysis_summary(self, name: str) -> dict[str, Any]:
        """The headline numbers an analysis stored (analysis/<name>/summary.json)."""
        from labctl.store.analysis import load_summary

        return load_summary(self.path, name)

    def analyses(self) -> list[str]:
        """Names of the analyses stored with this run."""
        root = self.path / "analysis"
        return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []

    def __repr__(self) -> str:
        return f"<Run {self.path.name} {self.meta.get('status')}>"


class _Rebuild(Exception):
    """A Parquet table could not be read: build it from the journal instead."""


def open_run(path: str | Path) -> Run:
    """Open a run directory (finished, running or crashed); LabctlError if it is not one."""
    return Run(Path(path))
