"""`labctl doctor`: check a run directory and repair what the journal can rebuild.

The journal is the record; everything else (Parquet tables, the status in
run.json) is derived from it and can be rebuilt. Doctor never deletes a sample:
the only bytes it may drop are a torn record at the journal's end, which no
reader can use anyway.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labctl.errors import LabctlError
from labctl.store.atomic import remove_stale_temp_files
from labctl.store.freshness import TABLE_NAMES, tables_are_the_record
from labctl.store.journal import JOURNAL_NAME, JournalWriter, read_journal, rewrite_journal
from labctl.store.rundir import RUN_SCHEMA_VERSION, RunDir, effective_status
from labctl.store.tables import finalize, tables_current


@dataclass
class Finding:
    check: str
    ok: bool
    detail: str
    repaired: bool = False


@dataclass
class DoctorReport:
    path: Path
    findings: list[Finding] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return all(f.ok or f.repaired for f in self.findings)

    def as_dict(self) -> dict:
        return {"path": str(self.path), "healthy": self.healthy,
                "findings": [f.__dict__ for f in self.findings]}


def _largest_gap(times: np.ndarray) -> float:
    return float(np.diff(times).max()) if len(times) > 1 else 0.0


def check_run(path: str | Path, repair: bool = False, max_gap_s: float = 3600.0) -> DoctorReport:
    """Check journal, tables and metadata of a run; with `repair`, rebuild what can be."""
    rundir = RunDir.open(path)
    report = DoctorReport(rundir.path)
    meta = rundir.meta
    add = report.findings.append

    version = meta.get("schema_version")
    add(Finding("schema", version == RUN_SCHEMA_VERSION,
                f"run.json schema_version {version} (this labctl writes {RUN_SCHEMA_VERSION})"))

    if tables_are_the_record(meta):
        _check_imported(rundir.path, meta, add, max_gap_s)
        return report
    data = read_journal(rundir.path)
    size = (rundir.path / JOURNAL_NAME).stat().st_size
    healthy = not data.torn_tail and not data.corrupt_ranges
    journal = Finding("journal", healthy,
                      f"{data.valid_bytes} valid bytes of {size}; {len(data.events)} events, "
                      f"{len(data.samples['test_time_s'])} samples")
    if data.corrupt_ranges:
        spans = ", ".join(f"{a}..{b}" for a, b in data.corrupt_ranges)
        journal.detail += f"; damaged bytes skipped at {spans}"
    tables_before = tables_current(rundir.path, meta)
    if data.corrupt_ranges and tables_before:
        # The tables were built before the damage and still hold every sample;
        # rebuilding from the journal would throw the damaged block away.
        journal.detail += ("; the Parquet tables were built before the damage and hold all "
                           "the data, so the journal is left as it is")
    elif not healthy and repair and effective_status(meta) != "running":
        if data.corrupt_ranges:
            aside = rewrite_journal(rundir.path)
            journal.detail += f"; rewritten with the valid records (original kept as {aside.name})"
        else:
            JournalWriter.open_for_append(rundir.path).close()  # cuts the torn record
            journal.detail += "; torn record at the end removed"
        journal.repaired = True
    add(journal)

    times = data.samples["test_time_s"]
    backwards = int((np.diff(times) < 0).sum()) if len(times) > 1 else 0
    add(Finding("time order", backwards == 0, f"{backwards} samples go back in time"))
    gap = _largest_gap(times)
    add(Finding("time gaps", gap <= max_gap_s, f"largest gap between samples {gap:.1f} s "
                f"(flagged above {max_gap_s:g} s)"))

    status = effective_status(meta)
    if status == "running":
        add(Finding("status", True, "run is in progress; tables are built when it ends"))
        return report
    current = tables_current(rundir.path, rundir.meta)
    tables = Finding("tables", current, "Parquet tables match the journal" if current
                     else "Parquet tables missing or older than the journal")
    if not current and repair:
        finalize(rundir.path)
        tables.repaired = True
        tables.detail += "; rebuilt from the journal"
    add(tables)
    leftovers = sorted(p.name for p in rundir.path.glob(".*.tmp"))
    if leftovers:  # a kill between writing a file's temporary copy and renaming it
        temp = Finding("temporary files", False, f"{len(leftovers)} left by a killed process: "
                       f"{', '.join(leftovers[:5])}")
        if repair:
            remove_stale_temp_files(rundir.path)
            temp.repaired = True
            temp.detail += "; removed"
        add(temp)
    if status == "interrupted":
        add(Finding("status", False, "the process that ran it died; `labctl resume` continues it"))
    return report


def _check_imported(path: Path, meta: dict, add: Any, max_gap_s: float) -> None:
    """An imported run has no journal: its Parquet tables, written once from the source
    file and renamed into place whole, are its record. Check they read; nothing to
    repair from (the source file is: import it again)."""
    import pyarrow.parquet as pq

    source = (meta.get("source") or {}).get("path") or "the source file"
    add(Finding("journal", True, "none: an imported run's Parquet tables are its record"))
    bad, times = [], None
    for name in TABLE_NAMES:
        try:
            table = pq.read_table(path / f"{name}.parquet")
        except (OSError, ValueError) as exc:
            bad.append(f"{name}.parquet ({exc})")
            continue
        if name == "timeseries":
            times = table.column("test_time_s").to_numpy()
    tables = Finding("tables", not bad, "Parquet tables readable" if not bad else
                     f"unreadable: {'; '.join(bad)}; import {source} again (with --force)")
    if times is not None:
        backwards = int((np.diff(times) < 0).sum()) if len(times) > 1 else 0
        add(Finding("time order", backwards == 0, f"{backwards} samples go back in time"))
        gap = _largest_gap(times)
        add(Finding("time gaps", gap <= max_gap_s, f"largest gap between samples {gap:.1f} s "
                    f"(flagged above {max_gap_s:g} s)"))
    add(tables)


def doctor_many(paths: list[Path], repair: bool) -> list[DoctorReport]:
    reports = []
    for p in paths:
        if not (Path(p) / "run.json").exists():
            raise LabctlError(f"{p}: not a run directory (no run.json)")
        if repair and not os.access(p, os.W_OK):
            raise LabctlError(f"{p}: cannot repair a run directory that is not writable")
        reports.append(check_run(p, repair=repair))
    return reports
