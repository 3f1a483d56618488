"""`open_run`: a run directory as pandas DataFrames, finished, running or crashed.

The Parquet tables are read when they were built from the journal as it is
now; otherwise (a run still going on, one whose process died, tables missing)
the same tables are built from the journal, so both give identical frames.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where a table is read: `labctl run` and `ls` never need pandas
    import pandas as pd

    from labctl.store.journal import JournalData

from labctl.errors import LabctlError
from labctl.store.digest import read_digest
from labctl.store.freshness import tables_are_the_record, tables_current
from labctl.store.run_summary import complete_cycles, summarize  # noqa: F401 - public here too
from labctl.store.rundir import RunDir, effective_status

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


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
        from labctl.store.journal import read_journal

        return read_journal(self.path)

    @cached_property
    def events(self) -> list[dict]:
        if tables_are_the_record(self._rundir.meta) and self._from_tables:
            return self._imported_events()
        if "_journal" in self.__dict__ or not self._from_tables:
            return self._journal.events
        from labctl.store.journal import read_events

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

    @cached_property
    def _digest(self) -> dict[str, Any] | None:
        """The run's digest (store/digest.py) when it was written with the current tables."""
        if not self._from_tables:
            return None
        return read_digest(self.path, self._rundir.meta.get("tables_journal"))

    def columns(self, name: str) -> dict[str, list]:
        """A small table (`steps` or `cycles`) as lists by column name.

        The steps come from the run's digest when it is current (no pyarrow, no numpy);
        otherwise a current Parquet file is read with pyarrow alone, so `labctl show`
        answers without importing pandas (~0.2 s, more than the rest of the command).
        """
        if name == "steps" and name not in self.__dict__ and self._digest is not None:
            return {k: list(v) for k, v in self._digest["steps"].items()}
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
        if self._digest is not None:  # as finalize summarized it; the status is today's
            return {**self._digest["summary"], "status": self.meta.get("status"),
                    "reason": self.meta.get("reason")}
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
