"""`finalize`: a run's Parquet tables from its journal (or from the live tables that
watched it), and the journal state they were built from in run.json.

Apart from `tables.py` (which imports pyarrow) so that `labctl run`, whose tables a
child process encodes (store/table_writer.py), finalizes without importing pyarrow.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from labctl.errors import LabctlError
from labctl.store.atomic import describe_os_error, side_by_side
from labctl.store.digest import steps_text, write_digest
from labctl.store.freshness import journal_mark
from labctl.store.record_tables import build_records, write_records
from labctl.store.run_summary import summarize
from labctl.store.rundir import RunDir
from labctl.store.summaries import cycle_columns, step_columns
from labctl.store.table_writer import TableWriter, TableWriterError


def finalize(run_dir: str | Path, live: Any = None, meta_fields: Any = None) -> dict[str, Any]:
    """Build timeseries, steps and cycles Parquet files from the journal, atomically.

    One streaming pass: the timeseries goes out a row group at a time, so memory
    stays bounded however long the run. With `live` (a `LiveTables` that watched
    the journal being written) the tables come from it instead, when it saw the
    whole journal; otherwise from the journal. Records in run.json which journal
    state the tables were built from (`tables_journal_bytes`, `tables_journal`),
    together with `meta_fields` (a mapping, or a function of (steps, cycles,
    n_samples) giving one) in the same rewrite of run.json.
    Also writes the run's digest (store/digest.py: its summary and steps for `labctl show`).
    Returns {"steps", "cycles", "n_samples", "valid_bytes", "events"} so callers need
    not read the tables back ("events": every event but the instrument state snapshots).
    """
    run_dir = Path(run_dir)
    rundir = RunDir.open(run_dir)  # refuse a folder that is not a run before writing
    # The run has ended, so its steps are known: their columns and the digest's text are
    # made while the table writer still encodes and fsyncs the last rows (~5 of the ~13 ms
    # `finish` waits for it), and used if the live tables hold.
    early = _early_steps(live)
    built = live.finish() if live is not None else None
    if built is not None:
        try:
            os.replace(built["tmp"], run_dir / "timeseries.parquet")
        except OSError as exc:
            live.abandon()
            raise LabctlError(f"{run_dir / 'timeseries.parquet'}: cannot write "
                              f"({describe_os_error(exc)})") from None
        tracker, means, events = built["tracker"], built["means"], built["events"]
        n_samples, valid_bytes = built["n_samples"], built["file_bytes"]
        mark = journal_mark(built["file_bytes"], built["last_record"])
    else:
        from labctl.store.tables import _timeseries_from_journal

        if live is not None:  # say why the journal was read back (a fast path was lost)
            rundir.append_log(f"timeseries rebuilt from the journal ({live.error})")
        tracker, means, events, n_samples, reader = _timeseries_from_journal(run_dir)
        valid_bytes = reader.valid_bytes
        mark = journal_mark(reader.file_bytes, reader.last_record)
    steps, steps_json = early if built is not None and early is not None else \
        (step_columns(tracker.rows()), None)
    cycles = cycle_columns(steps, means)
    frames_written: Callable[[], None] | None = None
    try:  # while a table writer process encodes and fsyncs those, the rest is done here
        frames_written = _start_frames(getattr(live, "remote", None),
                                       [(run_dir / "steps.parquet", steps),
                                        (run_dir / "cycles.parquet", cycles)])
        write_records(run_dir, build_records(events))
        fields = dict(meta_fields(steps, cycles, n_samples)) if callable(meta_fields) else \
            dict(meta_fields or {})
        summary = fields.get("summary") or summarize(dict(rundir.meta, **fields), steps,
                                                     cycles, n_samples)
        write_digest(run_dir, mark, summary, steps, steps_json)  # before run.json names its mark
    except BaseException:
        if frames_written is not None:  # the pipe is free again for whoever comes next
            try:
                frames_written()
            except Exception:  # noqa: S110 - the first failure is the one reported
                pass
        raise
    frames_written()
    # No fsync of the folder for the renames above: run.json's rewrite fsyncs this same
    # folder after its own rename, which makes them durable with it.
    rundir.update_meta(tables_journal_bytes=valid_bytes, tables_journal=mark, **fields)
    return {"steps": steps, "cycles": cycles, "n_samples": n_samples,
            "valid_bytes": valid_bytes, "events": events}


def _early_steps(live: Any) -> tuple[dict[str, Any], str] | None:
    """(steps columns, the digest's steps text) from the live tables' tracker, or None
    where they will not be used (no live tables, or already failed) or cannot be made
    (then they are made after `finish` as before, and fail there as before)."""
    tracker = getattr(live, "tracker", None)
    if tracker is None or live.error is not None or tracker.open:
        return None
    try:
        steps = step_columns(tracker.rows())
        return steps, steps_text(steps)
    except Exception:  # only a head start: finish() must still run, whatever happens here
        return None


def _start_frames(writer: TableWriter | None,
                  frames: list[tuple[Path, dict[str, np.ndarray]]]) -> Callable[[], None]:
    """Small tables, each fsynced; side by side, so the waits for the disk overlap. By
    the table writer process when there is one (it has pyarrow), else here. The writer
    process starts at once; the function returned waits for it (and writes the tables
    here if it failed)."""
    if writer is not None and writer.alive:
        try:
            reply = writer.start_frames(frames)
        except TableWriterError:
            pass
        else:
            def wait() -> None:
                try:
                    reply()
                except TableWriterError:
                    _write_here(frames)  # the files are replaced atomically either way
            return wait
    return lambda: _write_here(frames)


def _write_here(frames: list[tuple[Path, dict[str, np.ndarray]]]) -> None:
    from labctl.store.tables import write_frame

    side_by_side(*((write_frame, path, cols, False) for path, cols in frames))
