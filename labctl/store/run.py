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
from labctl.store.freshness import tables_are_the_record, tables_current
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
    return table if table is not None else {}


# A step moved charge when its counter grew by more than this (rest noise is far below).
_MOVED_AH = 1e-6
# A cycle returns to where it started when its last leg ends within this of the voltage
# the leg before the cycle ended at (same cut-off, read the same way).
_SAME_END_V = 0.05


def _legs(steps: Mapping[str, Any]) -> list[tuple[int, int, str, float]]:
    """(cycle, direction +1 charge / -1 discharge, end_kind, end voltage) of every step that
    moved charge, in order."""
    out = []
    for cycle, ch, dis, kind, end_v in zip(steps["cycle_index"], steps["charge_capacity_ah"],
                                           steps["discharge_capacity_ah"], steps["end_kind"],
                                           steps["end_voltage_v"], strict=True):
        ch, dis = float(ch or 0.0), float(dis or 0.0)
        if max(ch, dis) <= _MOVED_AH:
            continue
        out.append((int(cycle), 1 if ch >= dis else -1, str(kind),
                    math.nan if end_v is None else float(end_v)))
    return out


def complete_cycles(steps: Any) -> list[int]:
    """Cycles whose efficiencies mean something: the cell went through a whole charge and a
    whole discharge and came back to where it started.

    A cycle is complete when it both charged and discharged, every step of it ended
    normally (on its condition or its time; none interrupted, none stopped by a limit),
    and its last charge-moving leg ends at the state the leg before the cycle ended at
    (same direction, same end voltage within 50 mV). A charge that starts
    from wherever the cell happened to be (a simulated cell half full, a fresh cell) is not
    a complete cycle: its coulombic efficiency would be ~200 %.

    `steps` is a DataFrame or a mapping of column arrays.
    """
    steps = _columns(steps)
    if "cycle_index" not in steps or not len(steps["cycle_index"]):
        return []
    bad = {int(c) for c, kind in zip(steps["cycle_index"], steps["end_kind"], strict=True)
           if str(kind) not in ("condition", "time")}
    legs = _legs(steps)
    by_cycle: dict[int, list[int]] = {}  # one pass: a scan per cycle was quadratic
    for k, leg in enumerate(legs):
        by_cycle.setdefault(leg[0], []).append(k)
    complete = []
    for cycle in sorted(by_cycle):
        idx = by_cycle[cycle]
        if cycle in bad or idx[0] == 0:
            continue
        mine = [legs[k] for k in idx]
        if {leg[1] for leg in mine} != {1, -1}:
            continue
        before, last = legs[idx[0] - 1], mine[-1]
        if (before[1] == last[1] and {before[2], last[2]} <= {"condition", "time"}
                and abs(before[3] - last[3]) <= _SAME_END_V):
            complete.append(cycle)
    return complete


def summarize(meta: dict, steps: Any, cycles: Any, n_samples: int) -> dict[str, Any]:
    """Status, counts, duration, and the numbers of the last complete cycle.

    `steps` and `cycles` are DataFrames or mappings of column arrays (what finalize
    returns, so `labctl run` needs no pandas). Efficiencies come only from a complete
    charge/discharge cycle (`complete_cycles`); without one, the last cycle's capacities
    and energies are reported, the efficiencies are None and `efficiency_note` says why.
    NaN becomes None.
    """
    import numpy as np

    steps, cycles = _columns(steps), _columns(cycles)
    out: dict[str, Any] = {"status": meta.get("status"), "reason": meta.get("reason")}
    n_cycles = len(cycles["cycle_index"]) if "cycle_index" in cycles else 0
    if n_cycles:
        complete = set(complete_cycles(steps))
        full = [k for k, c in enumerate(cycles["cycle_index"]) if int(c) in complete]
        row = full[-1] if full else n_cycles - 1
        for key in _SUMMARY_KEYS:
            value = cycles[key][row]
            # A null in Parquet (NaN written by pandas) comes back as None through pyarrow.
            out[key] = int(value) if key == "cycle_index" else (
                math.nan if value is None else float(value))
        out["complete_cycles"] = len(full)
        if not full:
            out["coulombic_efficiency"] = out["energy_efficiency"] = None
            out["efficiency_note"] = ("efficiencies: none (no complete charge/discharge "
                                      "cycle from and back to the same cut-off)")
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
        if tables_are_the_record(self._rundir.meta):  # imported: nothing to rebuild from
            source = (self.meta.get("source") or {}).get("path") or "its source file"
            raise LabctlError(f"{self.path}: an imported run's Parquet tables are missing or "
                              f"unreadable and it has no journal to rebuild them from; "
                              f"import {source} again (with --force)")
        return read_journal(self.path)

    @cached_property
    def events(self) -> list[dict]:
        if tables_are_the_record(self._rundir.meta) and self._from_tables:
            return self._imported_events()
        if "_journal" in self.__dict__ or not self._from_tables:
            return self._journal.events
        return read_events(self.path)  # tables are current: no need to decode samples

    def _imported_events(self) -> list[dict]:
        """An imported run's events (it has no journal): run_start, each step's
        step_start / step_end (its row of `steps`), run_end, as the importer's were."""
        events: list[dict] = [{"type": "run_start", "imported": True}]
        for row in self.steps.to_dict("records"):
            events.append({"type": "step_start", "step_index": int(row["step_index"]),
                           "cycle_index": int(row["cycle_index"]), "kind": row.get("kind"),
                           "text": row.get("text"), "path": row.get("path")})
            events.append({"type": "step_end", "result": row})
        events.append({"type": "run_end", "status": self.meta.get("status")})
        return events

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

    def columns(self, name: str) -> dict[str, list]:
        """A small table (`steps` or `cycles`) as lists by column name.

        Read with pyarrow alone when the Parquet file is current, so `labctl show`
        answers without importing pandas (~0.2 s, more than the rest of the command).
        """
        if self._from_tables and name not in self.__dict__:
            try:
                import pyarrow.parquet as pq

                table = pq.ParquetFile(self.path / f"{name}.parquet").read()
                # to_pylist, not to_numpy: the latter imports pandas.
                return {n: table.column(n).to_pylist() for n in table.column_names}
            except (OSError, ValueError):
                self._from_tables = False
        frame = getattr(self, name)
        return {c: frame[c].tolist() for c in frame.columns}

    def summary(self) -> dict[str, Any]:
        """Status, reason, duration, sample/step/cycle counts and the last complete cycle's
        capacities, energies and efficiencies."""
        return summarize(self.meta, self.columns("steps"), self.columns("cycles"),
                         self.n_samples())

    def record_tables(self) -> list[str]:
        """Names of the record tables steps wrote (spectra, pressure, bms_checks...)."""
        from labctl.store.record_tables import build_records

        if self._from_tables:
            folder = self.path / "records"
            return sorted(p.stem for p in folder.glob("*.parquet")) if folder.is_dir() else []
        return sorted(build_records(self.events))

    def records(self, table: str) -> pd.DataFrame:
        """A record table written by plugin steps, e.g. `run.records("spectra")`."""
        from labctl.store.record_tables import build_records

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


def find_run(run: str | Path, results: str | Path = "results") -> Path:
    """A run directory given as a path, or as a run-id prefix (as `labctl show` takes it):
    `20261205-0722` in the results store, or `store/20261205-0722` in that folder."""
    path = Path(run)
    if path.exists():
        return path  # a folder, or something else RunDir.open names clearly
    root, prefix = (path.parent, path.name) if path.parent != Path(".") else (Path(results), str(run))
    try:
        names = sorted(e.name for e in root.iterdir() if e.is_dir()) if root.is_dir() else []
    except OSError:
        names = []
    matches = [n for n in names if prefix and n.startswith(prefix)]
    if len(matches) == 1:
        return root / matches[0]
    if matches:
        from labctl.store.catalog import ambiguous_list

        raise LabctlError(f"run id {prefix!r} is ambiguous in {root}: {ambiguous_list(matches)}")
    from labctl.suggest import did_you_mean

    raise LabctlError(f"no run {str(run)!r}: not a folder, and no run id starting so in "
                      f"{root}{did_you_mean(prefix, names)}")


def open_run(path: str | Path, results: str | Path = "results") -> Run:
    """Open a run directory (finished, running or crashed), given as its path or a run-id
    prefix in `results`; LabctlError if it is not one."""
    return Run(find_run(path, results))
