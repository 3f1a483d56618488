"""Whether a run's Parquet tables still match its journal (no pyarrow needed to tell)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from labctl.store.rundir import JOURNAL_NAME

TABLE_NAMES = ("timeseries", "steps", "cycles")
# run.json of a run whose Parquet tables are its record (no journal: imported runs).
RECORD_KEY = "record"
TABLES_ARE_THE_RECORD = "tables"


def tables_are_the_record(meta: Mapping[str, Any]) -> bool:
    """An imported run: no journal; its tables, written once, are all there is."""
    return meta.get(RECORD_KEY) == TABLES_ARE_THE_RECORD


def journal_mark(file_bytes: int, last_record: tuple[int, int] | None) -> dict[str, Any]:
    offset, crc = last_record if last_record else (None, None)
    return {"file_bytes": file_bytes, "last_record_offset": offset, "last_record_crc32": crc}


def tables_current(run_dir: str | Path, meta: Mapping[str, Any]) -> bool:
    """Whether the Parquet tables were built from the journal as it is now.

    The journal only grows (or loses a torn tail on resume), so its size plus
    the CRC of its last record tell whether it changed since the tables were built.
    """
    run_dir = Path(run_dir)
    if not all((run_dir / f"{n}.parquet").is_file() for n in TABLE_NAMES):
        return False
    if tables_are_the_record(meta):
        return True
    mark = meta.get("tables_journal")
    try:
        size = (run_dir / JOURNAL_NAME).stat().st_size
    except OSError:
        return False
    if not isinstance(mark, dict):
        return meta.get("tables_journal_bytes") == size  # written by an older labctl
    if mark.get("file_bytes") != size:
        return False
    offset, crc = mark.get("last_record_offset"), mark.get("last_record_crc32")
    if offset is None:
        return True
    try:
        with open(run_dir / JOURNAL_NAME, "rb") as f:
            f.seek(int(offset) + 9)  # the CRC field of the record header
            return int.from_bytes(f.read(4), "little") == crc
    except (OSError, ValueError):
        return False
