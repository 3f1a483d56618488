"""`open_run`: a run directory as pandas DataFrames, finished, running or crashed."""

from __future__ import annotations

import math
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from labctl.errors import LabctlError
from labctl.store.journal import read_journal
from labctl.store.rundir import RunDir, effective_status
from labctl.store.tables import build_cycles, build_steps, build_timeseries, tables_current

_SUMMARY_KEYS = ("cycle_index", "charge_capacity_ah", "discharge_capacity_ah", "charge_energy_wh",
                 "discharge_energy_wh", "coulombic_efficiency", "energy_efficiency")


def summarize(meta: dict, steps: pd.DataFrame, cycles: pd.DataFrame, n_samples: int) -> dict[str, Any]:
    """Status, and the numbers of the last complete cycle (one that both charged and discharged)."""
    out: dict[str, Any] = {"status": meta.get("status"), "reason": meta.get("reason")}
    full = cycles[(cycles.charge_capacity_ah > 0) & (cycles.discharge_capacity_ah > 0)]
    row = full.iloc[-1] if len(full) else (cycles.iloc[-1] if len(cycles) else None)
    if row is not None:
        for key in _SUMMARY_KEYS:
            out[key] = int(row[key]) if key == "cycle_index" else float(row[key])
    out["n_samples"] = int(n_samples)
    out["n_steps"] = int(len(steps))
    out["n_cycles"] = int(len(cycles))
    out["duration_s"] = float(steps.end_time_s.max()) if len(steps) else 0.0
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}


class Run:
    """A run directory: `.meta`, `.timeseries`, `.steps`, `.cycles`, `.events`, `.summary()`."""

    def __init__(self, path: Path):
        self._rundir = RunDir.open(path)
        self.path = self._rundir.path
        self.meta: dict[str, Any] = dict(self._rundir.meta)
        self.meta["status"] = effective_status(self._rundir.meta)
        self._from_tables = tables_current(self.path, self._rundir.meta)

    @cached_property
    def _journal(self):
        return read_journal(self.path)

    @property
    def events(self) -> list[dict]:
        return self._journal.events

    @cached_property
    def timeseries(self) -> pd.DataFrame:
        if self._from_tables:
            return pd.read_parquet(self.path / "timeseries.parquet")
        return build_timeseries(self._journal.samples)

    @cached_property
    def steps(self) -> pd.DataFrame:
        if self._from_tables:
            return pd.read_parquet(self.path / "steps.parquet")
        return build_steps(self._journal.events, self._journal.samples)

    @cached_property
    def cycles(self) -> pd.DataFrame:
        if self._from_tables:
            return pd.read_parquet(self.path / "cycles.parquet")
        return build_cycles(self.steps, self._journal.samples)

    def n_samples(self) -> int:
        if self._from_tables and "timeseries" not in self.__dict__:
            return pq.ParquetFile(self.path / "timeseries.parquet").metadata.num_rows
        return len(self.timeseries)

    def summary(self) -> dict[str, Any]:
        return summarize(self.meta, self.steps, self.cycles, self.n_samples())

    def analysis(self, name: str) -> dict[str, pd.DataFrame]:
        """Tables an analysis stored under analysis/<name>/ as DataFrames, by file stem."""
        folder = self.path / "analysis" / name
        if not folder.is_dir():
            root = self.path / "analysis"
            existing = sorted(p.name for p in root.glob("*") if p.is_dir()) if root.is_dir() else []
            raise LabctlError(f"{self.path}: no analysis {name!r}; stored: {', '.join(existing) or 'none'}")
        return {p.stem: pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))}

    def __repr__(self) -> str:
        return f"<Run {self.path.name} {self.meta.get('status')}>"


def open_run(path: str | Path) -> Run:
    """Open a run directory (finished, running or crashed)."""
    return Run(Path(path))
