"""Run directories made from data recorded elsewhere (`labctl import`), not by the engine.

An imported run holds what a recorded one holds: a journal with step_start /
step_end events, sample blocks and record events, and the timeseries, steps, cycles
and record Parquet tables `finalize` would build from it. So `open_run`, `doctor`,
`export` and every analysis read it unchanged; its status is "imported". The tables
are written straight from the column arrays (not by reading the journal back), with
the same code that summarises recorded runs' steps and cycles.

Atomic: everything is written in a hidden folder `.importing-<run id>` under the
results root, each file fsynced once, then the folder is renamed into place, so a
failed import leaves no run directory (the hidden folder is removed on failure).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labctl.errors import LabctlError
from labctl.records import SAMPLE_COLUMNS
from labctl.store.atomic import _json_default, describe_os_error, fsync_dir
from labctl.store.freshness import RECORD_KEY, TABLES_ARE_THE_RECORD, journal_mark
from labctl.store.journal import (
    EVENT,
    JOURNAL_NAME,
    MAGIC,
    SAMPLES,
    crc32,
    encode_event,
    header_event,
)
from labctl.store.rundir import (
    _RUN_ID,
    RUN_JSON,
    RUN_SCHEMA_VERSION,
    RunDirExists,
    _append_index,
    host_name,
    labctl_version,
)
from labctl.store.step_summary import CUMULATIVE, StepAccumulator

# The journal's record layout (labctl/store/journal.py's docstring): header = magic u32,
# type u8, payload length u32, CRC32 u32; a SAMPLES payload starts with its row count.
_RECORD_HEADER = struct.Struct("<IBII")
_ROW_COUNT = struct.Struct("<I")
MAX_ROWS_PER_RECORD = 1 << 20  # as JournalWriter splits large blocks
_IOV_MAX = 1024
# An imported run has no journal (recorded runs keep one to survive a crash mid-run; an
# import has no live data to recover, and its tables are written from the columns and
# renamed into place atomically). run.json says so: RECORD_KEY = TABLES_ARE_THE_RECORD.
# The journal writer is kept to check the tables against finalize's in the tests.
WRITE_JOURNAL = False

IMPORTED = "imported"
NAME_DRAWS = 20  # run names drawn before giving up (4 hex digits: a clash is already rare)
TMP_PREFIX = ".importing-"
BUILDER_PID = ".builder-pid"  # in a folder being built: who builds it


@dataclass(frozen=True)
class ImportedStep:
    """Rows [lo, hi) of the samples form one step (step_index = position + 1)."""

    lo: int
    hi: int
    kind: str  # charge, discharge, rest
    text: str  # what the source file called it, e.g. "CC_Chg (vendor step 3)"


def step_results(samples: Mapping[str, np.ndarray], steps: Iterable[ImportedStep]
                 ) -> list[dict[str, Any]]:
    """Each step's StepResult row, computed by the recorded runs' StepAccumulator.

    One difference: a vendor's first record of a step already carries what moved
    since the previous record, so a step's capacity and energy count from the
    previous record's counter (0 at a cycle start), not from its own first record;
    the steps of a cycle then add up to the cycle's counters exactly.
    """
    cycle = samples["cycle_index"]
    rows = []
    for k, s in enumerate(steps, start=1):
        part = {name: col[s.lo:s.hi] for name, col in samples.items()}
        acc = StepAccumulator(k, int(cycle[s.lo]), s.kind, s.text, f"import[{k - 1}]")
        acc.feed(part)
        row = acc.result("condition", "as recorded in the source file").as_dict()
        same_cycle = s.lo > 0 and cycle[s.lo - 1] == cycle[s.lo]
        for name in CUMULATIVE:
            before = float(samples[name][s.lo - 1]) if same_cycle else 0.0
            row[name] = max(0.0, float(samples[name][s.hi - 1]) - before)
        rows.append(row)
    return rows


def create_imported_run(results_root: str | Path, run_id: str | Callable[[], str],
                        meta: Mapping[str, Any],
                        samples: Mapping[str, np.ndarray], steps: list[ImportedStep],
                        records: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                        inputs: Mapping[str, bytes] | None = None) -> Path:
    """Create the run directory `results_root/run_id` from columns, atomically.

    `samples`: every SAMPLE_COLUMNS column, equal lengths, step_index numbering
    `steps` 1, 2, ... `records`: table name -> columns (each with a step_index
    column), written as record tables (e.g. "spectra"). `inputs`: files kept in
    inputs/. Returns the new run directory.

    `run_id` may be a callable that draws a name (e.g. `new_run_id`'s random suffix):
    then a name already taken in the store (two imports with the same label started in
    the same second drawing the same suffix) is drawn again, as recorded runs do; a
    fixed name that is taken raises RunDirExists.
    """
    missing = [c for c in SAMPLE_COLUMNS if c not in samples]
    if missing:
        raise LabctlError(f"imported samples lack columns {missing}")
    root = Path(results_root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        _remove_abandoned(root)
    except OSError as exc:
        raise LabctlError(f"{root}: cannot create the results folder "
                          f"({describe_os_error(exc)})") from None
    draws = NAME_DRAWS if callable(run_id) else 1
    for attempt in range(draws):
        drawn = run_id() if callable(run_id) else run_id
        try:
            final, tmp = _claim(root, drawn)
            break
        except RunDirExists:
            if attempt == draws - 1:
                raise
    try:
        full = {"schema_version": RUN_SCHEMA_VERSION, "labctl_version": labctl_version(),
                "run_id": drawn, "host": host_name(), "pid": None,
                **meta, "status": IMPORTED}
        (tmp / "inputs").mkdir()
        for name, data in (inputs or {}).items():
            _write_durably(tmp / "inputs" / Path(name).name, data)
        if inputs:
            fsync_dir(tmp / "inputs")
        on_disk = _write_run_files(tmp, full, samples, steps, records or {})
        _write_durably(tmp / RUN_JSON, json_bytes(on_disk))
        (tmp / BUILDER_PID).unlink()
        fsync_dir(tmp)
        os.rename(tmp, final)
        fsync_dir(root)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise LabctlError(f"{final}: cannot write the imported run "
                              f"({describe_os_error(exc)}); nothing was kept") from None
        raise
    _append_index(root, full)
    return final


def _claim(root: Path, run_id: str) -> tuple[Path, Path]:
    """Reserve `run_id`: its hidden build folder is made (mkdir is atomic, so two
    imports drawing the same name cannot both get it). RunDirExists if taken."""
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
        raise LabctlError(f"run id {run_id!r}: use letters, digits, '.', '_' and '-' only")
    final = root / run_id
    tmp = root / f"{TMP_PREFIX}{run_id}"
    if final.exists():
        raise RunDirExists(f"{final}: a run directory of that name already exists")
    try:
        tmp.mkdir()
    except FileExistsError:
        raise RunDirExists(f"{final}: a run directory of that name is being built") from None
    except OSError as exc:
        raise LabctlError(f"{tmp}: cannot create the run directory "
                          f"({describe_os_error(exc)})") from None
    try:
        (tmp / BUILDER_PID).write_text(str(os.getpid()))
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise LabctlError(f"{tmp}: cannot create the run directory "
                          f"({describe_os_error(exc)})") from None
    return final, tmp


def _write_run_files(folder: Path, meta: dict[str, Any], samples: Mapping[str, np.ndarray],
                     steps: list[ImportedStep], records: Mapping[str, Mapping[str, np.ndarray]]
                     ) -> dict[str, Any]:
    """The journal and the Parquet tables of a new imported run, straight from the columns.

    What `finalize` would build from the journal, without reading the journal back:
    the same step rows (`step_results`, the recorded runs' StepAccumulator), cycle rows
    (`cycle_columns` fed in finalize's row groups), timeseries row groups and record
    tables. Each file is written once and fsynced once (the caller renames the folder
    into place), instead of atomic replacements with several fsyncs each: the folder is
    not visible until it is complete. Returns run.json's content as it must be written.
    """
    from labctl.store.run import summarize
    from labctl.store.tables import (
        ROW_GROUP_ROWS,
        _arrow_table,
        _CycleMeans,
        _parquet_writer,
        cycle_columns,
        step_columns,
    )

    cols = {name: np.ascontiguousarray(samples[name], dtype=dt)
            for name, dt in SAMPLE_COLUMNS.items()}
    n = len(cols["test_time_s"])
    results = step_results(cols, steps)
    written: list[Path] = []
    mark = None
    if WRITE_JOURNAL:  # only to check these tables against finalize's (tests)
        mark = write_journal(folder, cols, steps, _events(cols, steps, results, records),
                             sync=False)
        written.append(folder / JOURNAL_NAME)
    means = _CycleMeans()
    for lo in range(0, n, ROW_GROUP_ROWS):  # the groups finalize feeds: identical sums
        means.feed({k: v[lo:lo + ROW_GROUP_ROWS] for k, v in cols.items()})
    step_cols = step_columns(results)
    cycle_cols = cycle_columns(step_cols, means)
    path = folder / "timeseries.parquet"
    pw = _parquet_writer(path)
    try:
        pw.write_table(_arrow_table(cols), row_group_size=ROW_GROUP_ROWS)
    finally:
        pw.close()
    written.append(path)
    written.append(_write_table(folder / "steps.parquet", step_cols))
    written.append(_write_table(folder / "cycles.parquet", cycle_cols))
    tables = record_frames(records)
    if tables:
        import pyarrow as pa

        from labctl.store.record_tables import RECORDS_DIR

        (folder / RECORDS_DIR).mkdir()
        for name, df in tables.items():
            written.append(_write_table(folder / RECORDS_DIR / f"{name}.parquet",
                                        pa.Table.from_pandas(df, preserve_index=False)))
        written.append(folder / RECORDS_DIR)
    _fsync_all(written)
    out = {**meta, RECORD_KEY: TABLES_ARE_THE_RECORD}
    if mark is not None:
        out.pop(RECORD_KEY)
        out["tables_journal_bytes"] = mark[0]
        out["tables_journal"] = journal_mark(*mark)
    out["summary"] = summarize(out, step_cols, cycle_cols, n)
    return out


def record_frames(records: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, Any]:
    """The record tables `build_records` makes from the journal's record events (one per
    table and step, steps in order; the columns as JSON gives them back), built from the
    columns at once instead of a DataFrame per step."""
    out: dict[str, Any] = {}
    for table, columns in records.items():
        if not columns:
            continue
        order = np.argsort(np.asarray(columns["step_index"]), kind="stable")
        if len(order) == 0:
            continue
        import pandas as pd

        data = {}
        for name, values in columns.items():
            arr = np.asarray(values)[order]
            kind = arr.dtype.kind
            # what a JSON round trip gives pandas: Python ints, floats, bools; else as listed
            data[name] = (arr.astype(np.int64) if kind in "iu" else arr.astype(np.float64)
                          if kind == "f" else arr if kind == "b" else arr.tolist())
        df = pd.DataFrame(data)
        front = [c for c in ("step_index", "cycle_index", "test_time_s") if c in df.columns]
        out[table] = df[front + [c for c in df.columns if c not in front]]
    return out


def _events(cols: Mapping[str, np.ndarray], steps: list[ImportedStep],
            results: list[dict[str, Any]], records: Mapping[str, Mapping[str, np.ndarray]]
            ) -> list[dict[str, Any]]:
    """The journal's events, in order; a None stands for the samples of the step before."""
    events: list[Any] = [{"type": "run_start", "imported": True}]
    for k, (s, result) in enumerate(zip(steps, results, strict=True), start=1):
        events.append({"type": "step_start", "step_index": k,
                       "cycle_index": int(cols["cycle_index"][s.lo]), "kind": s.kind,
                       "text": s.text, "path": result["path"]})
        events.append(None)
        events.append({"type": "step_end", "result": result})
    for table, columns in records.items():
        if not columns:
            continue
        steps_of = np.asarray(columns["step_index"])
        for step in np.unique(steps_of):
            mask = steps_of == step
            part = {k: np.asarray(v)[mask].tolist() for k, v in columns.items()}
            events.append({"type": "record", "table": table, "step_index": int(step),
                           "columns": part})
    events.append({"type": "run_end", "status": IMPORTED})
    return events


def write_journal(folder: Path, cols: Mapping[str, np.ndarray], steps: list[ImportedStep],
                  events: list[Any], sync: bool = True) -> tuple[int, tuple[int, int]]:
    """Write `journal.bin` in one pass, in the format `JournalWriter` writes (see
    labctl/store/journal.py): a header event, then `events`, each None replaced by the
    samples of the next step as one SAMPLES record. One fsync at the end (unless the
    caller fsyncs it with the other files): the run folder becomes visible only after
    it. Returns (file bytes, (last record offset, its CRC32))."""
    order = list(SAMPLE_COLUMNS)  # the journal header's column order
    buffers: list[Any] = []
    size = last_offset = last_crc = 0
    step_iter = iter(steps)

    def add(kind: int, parts: list[Any], length: int, crc: int) -> None:
        nonlocal size, last_offset, last_crc
        buffers.append(_RECORD_HEADER.pack(MAGIC, kind, length, crc))
        buffers.extend(parts)
        last_offset, last_crc = size, crc
        size += _RECORD_HEADER.size + length

    for event in [header_event(), *events]:
        if event is not None:
            payload = encode_event(event)
            add(EVENT, [payload], len(payload), crc32(payload))
            continue
        s = next(step_iter)
        for lo in range(s.lo, s.hi, MAX_ROWS_PER_RECORD):
            hi = min(s.hi, lo + MAX_ROWS_PER_RECORD)
            parts: list[Any] = [_ROW_COUNT.pack(hi - lo)]
            parts += [memoryview(cols[name][lo:hi]).cast("B") for name in order]
            crc = 0
            for part in parts:
                crc = crc32(part, crc)
            add(SAMPLES, parts, sum(len(p) for p in parts), crc)
    path = folder / JOURNAL_NAME
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        for k in range(0, len(buffers), _IOV_MAX):
            chunk = buffers[k:k + _IOV_MAX]
            total = sum(len(b) for b in chunk)
            written = os.writev(fd, chunk)
            if written != total:  # rare (signals, nearly full disks): the rest piece by piece
                rest = memoryview(b"".join(bytes(b) for b in chunk))[written:]
                while rest:
                    rest = rest[os.write(fd, rest):]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    return size, (last_offset, last_crc)


def _write_durably(path: Path, data: bytes) -> None:
    """A new file in the folder being built: written, fsynced once."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_all(paths: list[Path]) -> None:
    """fsync files (and folders) at once from threads: the file system commits them
    together instead of one journal commit per file, one after the other."""
    errors: list[BaseException] = []

    def sync(p: Path) -> None:
        try:
            _fsync_path(p)
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=sync, args=(p,), name="import-fsync") for p in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _write_table(path: Path, table: Any) -> Path:
    """A small table (columns, or a pyarrow Table) as Parquet, as `write_frame` writes it
    (not yet fsynced: see `_fsync_all`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from labctl.store.arrow_columns import to_arrow
    from labctl.store.tables import PARQUET_COMPRESSION

    if isinstance(table, Mapping):
        table = pa.Table.from_arrays([to_arrow(col) for col in table.values()], names=list(table))
    pq.write_table(table, path, compression=PARQUET_COMPRESSION)
    return path


def json_bytes(obj: Any) -> bytes:
    """run.json's bytes, as `atomic_write_json` writes them."""
    return json.dumps(obj, indent=2, default=_json_default, allow_nan=True).encode() + b"\n"


def _remove_abandoned(root: Path) -> None:
    """Folders of imports whose process died (killed mid-import): nothing to keep."""
    from labctl.store.rundir import pid_alive

    for folder in root.glob(f"{TMP_PREFIX}*"):
        try:
            pid = int((folder / BUILDER_PID).read_text())
        except (OSError, ValueError):
            pid = None
        if pid is None or not pid_alive(pid):
            shutil.rmtree(folder, ignore_errors=True)


def has_size(results_root: str | Path, size_bytes: int) -> bool:
    """Whether any imported run in the store came from a file of this size (if none, a
    file of that size cannot be a re-import, and its hash need not come first)."""
    return any(source.get("size_bytes") in (size_bytes, None)  # None: size not recorded
               for _, source in _sources(results_root))


def _sources(results_root: str | Path) -> Iterable[tuple[Path, dict]]:
    root = Path(results_root)
    if not root.is_dir():
        return
    with os.scandir(root) as it:
        folders = sorted(e.path for e in it if e.is_dir() and not e.name.startswith("."))
    for folder in folders:
        try:
            meta = json.loads((Path(folder) / RUN_JSON).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        source = meta.get("source") if isinstance(meta, dict) else None
        if isinstance(source, dict):
            yield Path(folder), source


def find_by_sha256(results_root: str | Path, sha256: str) -> Path | None:
    """The run directory in the store whose `source.sha256` is this one, if any."""
    for folder, source in _sources(results_root):
        if source.get("sha256") == sha256:
            return folder
    return None
