"""Append-only, self-checking run journal (`journal.bin`).

Every record is a 13-byte header -- magic (u32), type (u8), payload length
(u32), CRC32 of the payload (u32), little-endian -- followed by the payload.

* type 1, EVENT: a UTF-8 JSON object with a "type" key. The first record of a
  file is the `journal_header` event: format version, sample layout and the
  sample columns with their numpy dtypes, so a reader can refuse a newer
  format clearly and read an older column set by name.
* type 2, SAMPLES: a row count (u32), then each sample column, in the header's
  order, as contiguous little-endian arrays.
* type 3, PACKED (format 2): the same block with each column that holds one value
  all through it stored once, and the unix time as the test time plus one number
  (`store/journal_packing.py`). This labctl writes its sample blocks so; it reads
  both kinds, and appends SAMPLES to a journal whose header says format 1.

Why columns and not rows of a structured dtype: the engine already holds
columns, so a block is written with one `writev` of the column buffers (no
copy in Python), and read back with one `np.frombuffer` per run of same-typed
columns; a row layout costs an extra interleaving copy on write and a strided
gather on read. Neither involves per-row Python.

Crash safety: each append is one `writev` on an O_APPEND descriptor, so the
bytes are in the operating system (and survive a SIGKILL) when it returns.
Every append checks whether `fsync_interval_s` has passed since the last
fsync and, if so, wakes the writer's fsync thread, which also wakes by itself
when data waits and no append comes: at most about one interval of data is at
risk on a power cut, and the engine's loop never waits for the disk. A crash can leave a torn last record; readers detect it by
length and CRC and ignore it, and `open_for_append` cuts it before appending.
"""
from __future__ import annotations

import errno
import itertools
import os
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from labctl.errors import LabctlError, StorageError
from labctl.records import SAMPLE_COLUMNS
from labctl.store.atomic import atomic_write_stream, fsync_dir
from labctl.store.disk_hints import start_writeback
from labctl.store.journal_format import (  # noqa: F401 - the journal's public names live here too
    _COUNT,
    _HEADER,
    _MAX_PAYLOAD,
    _MAX_ROWS_PER_RECORD,
    _OUR_COLUMNS,
    _OUR_LAYOUT,
    _OUR_ROW_BYTES,
    EVENT,
    FORMAT_VERSION,
    HEADER_TYPE,
    JOURNAL_NAME,
    MAGIC,
    PACKED,
    SAMPLES,
    _why,
    crc32,
    encode_event,
    header_event,
)
from labctl.store.journal_packing import pack
from labctl.store.journal_reader import (  # noqa: F401
    JournalData,
    JournalReader,
    empty_samples,
    iter_sample_blocks,
    read_events,
    read_journal,
)

# Appended bytes between two early writebacks (see _sync_loop).
WRITEBACK_BYTES = 8 << 20

try:  # advisory lock: one writer per journal (POSIX only)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

# -- writing ---------------------------------------------------------------------------------

class JournalWriter:
    """Appends events and sample blocks to a run's journal.

    One writer per journal at a time (an advisory lock refuses a second one).
    Use `create` for a new run and `open_for_append` to continue one.
    `fsync_interval_s=0` fsyncs on every append.
    """

    def __init__(self, path: Path, fd: int, size: int, fsync_interval_s: float = 1.0):
        self.path = path
        self.fsync_interval_s = float(fsync_interval_s)
        self._fd = fd
        self._size = size  # bytes of whole records; a failed write is cut back to this
        self._broken: str | None = None
        self._seq = 0  # appends so far; the background syncer compares it with _synced_seq
        self._synced_seq = 0
        self._last_sync = time.monotonic()
        self._async_error: OSError | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._syncer: threading.Thread | None = None
        # Sees each record once it is in the journal (store/live_tables.LiveTables), or None.
        self.tap: Any = None
        self._writeback_mark = size  # bytes handed to early writeback (see _sync_loop)
        # Sample blocks as PACKED records; a journal begun by a labctl that reads only
        # format 1 gets SAMPLES records (open_for_append).
        self.packs = True
        if self.fsync_interval_s > 0:
            self._start_syncer()

    # -- opening ------------------------------------------------------------------------
    @classmethod
    def create(cls, run_dir: str | Path, fsync_interval_s: float = 1.0) -> JournalWriter:
        """Start a new journal in `run_dir` (refuses to overwrite one)."""
        path = Path(run_dir) / JOURNAL_NAME
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o666)
        except FileExistsError:
            raise LabctlError(f"{path}: a journal already exists; resume the run instead") from None
        except OSError as exc:
            raise StorageError(f"{path}: cannot create the journal: {_why(exc)}") from None
        try:
            _lock(fd, path)
        except LabctlError:
            os.close(fd)
            raise
        writer = cls(path, fd, 0, fsync_interval_s)
        writer.append_event(header_event())
        writer.sync()
        fsync_dir(path.parent)  # the new directory entry must survive a power cut too
        return writer

    @classmethod
    def open_for_append(cls, run_dir: str | Path, fsync_interval_s: float = 1.0) -> JournalWriter:
        """Continue a journal: cut a torn or corrupt tail at the last valid record, then append.

        A damaged record in the middle of the file (valid records after it) is not
        cut: that would drop good data. `labctl doctor --repair` rewrites such a file.
        """
        path = Path(run_dir) / JOURNAL_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
        except OSError as exc:
            raise LabctlError(f"{path}: cannot open the journal for writing: {_why(exc)}") from None
        try:
            _lock(fd, path)
            scan = JournalReader(path)
            for _ in scan.records(reuse_buffer=True):
                pass
            if scan.corrupt_ranges:
                start, end = scan.corrupt_ranges[0]
                raise LabctlError(
                    f"{path}: damaged bytes {start}..{end} in the middle of the journal, with "
                    "valid records after them; run `labctl doctor --repair` before appending")
            if scan.layout is not _OUR_LAYOUT:
                raise LabctlError(f"{path}: the journal's sample columns differ from this "
                                  "labctl's; cannot append to it")
            if scan.torn_tail:
                os.ftruncate(fd, scan.valid_bytes)
                os.fsync(fd)
        except LabctlError:
            os.close(fd)
            raise
        except OSError as exc:
            os.close(fd)
            raise LabctlError(f"{path}: cannot repair the journal's tail: {_why(exc)}") from None
        writer = cls(path, fd, scan.valid_bytes, fsync_interval_s)
        writer.packs = scan.format_version >= 2 or scan.valid_bytes == 0
        if not scan.has_header:
            writer.append_event(header_event())
        writer.sync()
        return writer

    # -- appending ------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Bytes of whole records in the file."""
        return self._size

    def append_event(self, event: Mapping[str, Any]) -> None:
        payload = encode_event(event)
        crc = crc32(payload)
        start = self._size
        self._append(EVENT, [payload], len(payload), crc)
        if self.tap is not None:
            self.tap.record(EVENT, payload, self._size, start, crc, event)

    def append_samples(self, columns: Mapping[str, np.ndarray],
                       unix_origin_s: float | None = None) -> None:
        """Append one block of samples (keys = SAMPLE_COLUMNS, equal lengths).

        `unix_origin_s`: the block comes from the engine's accounting, which built
        unix_time_s as this plus test_time_s and the step and cycle index constant: those
        columns are stored as one number each without a check."""
        cols = _as_columns(columns)
        n = len(cols[0])
        for lo in range(0, n, _MAX_ROWS_PER_RECORD):
            hi = min(n, lo + _MAX_ROWS_PER_RECORD)
            block = [c[lo:hi] for c in cols] if (lo, hi) != (0, n) else cols
            kind, parts, length = _sample_record(block, unix_origin_s, self.packs)
            crc = 0
            for p in parts:
                crc = crc32(p, crc)
            start = self._size
            self._append(kind, parts, length, crc)
            if self.tap is not None:
                self.tap.record(SAMPLES, block, self._size, start, crc)

    def _append(self, kind: int, parts: list[Any], length: int, crc: int) -> None:
        if self._fd < 0:
            raise LabctlError(f"{self.path}: the journal is closed")
        if self._broken:
            raise StorageError(self._broken)
        if self._async_error is not None:
            self._raise_async()
        if length > _MAX_PAYLOAD:
            raise ValueError(f"journal record of {length} bytes is too large")
        buffers = [_HEADER.pack(MAGIC, kind, length, crc), *parts]
        total = _HEADER.size + length
        try:
            _writev_all(self._fd, buffers, total)
        except OSError as exc:
            self._undo_partial_write()
            if self.tap is not None:
                self.tap.write_failed()
            raise StorageError(
                f"{self.path}: cannot write the journal: {_why(exc)}; everything recorded "
                "before this point is safe in the journal") from None
        self._size += total
        self._seq += 1
        if self._size - self._writeback_mark >= WRITEBACK_BYTES and self._syncer is not None:
            # Many megabytes since the last look: the fsync thread starts writing them
            # out now, so the fsync at the end of the run has little left to wait for.
            self._writeback_mark = self._size
            self._wake.set()
        if time.monotonic() - self._last_sync >= self.fsync_interval_s:
            # Due: the fsync thread does it, so the engine's loop never waits for the
            # disk (a slow fsync must not delay safety checks on the next samples).
            if self._syncer is not None and self._syncer.is_alive():
                self._wake.set()
            else:
                self.sync()

    def _undo_partial_write(self) -> None:
        # A half-written record followed by later records would hide them from
        # readers; cut it so the file ends at the last whole record.
        try:
            os.ftruncate(self._fd, self._size)
        except OSError as exc:
            self._broken = (f"{self.path}: a failed write left a partial record that could not "
                            f"be removed ({_why(exc)}); no further appends are accepted")

    def sync(self) -> None:
        """Flush to stable storage now."""
        if self._fd < 0:
            return
        seq = self._seq
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot sync the journal to disk: {_why(exc)}") from None
        self._synced_seq = max(self._synced_seq, seq)
        self._last_sync = time.monotonic()
        if self._async_error is not None:
            self._raise_async()

    def close(self) -> None:
        """Sync and close; safe to call twice."""
        if self._fd < 0:
            return
        self._stop.set()
        self._wake.set()
        if self._syncer is not None and self._syncer is not threading.current_thread():
            self._syncer.join()
        try:
            if self._seq != self._synced_seq or self._async_error is not None:
                self.sync()
        finally:
            os.close(self._fd)  # also releases the lock
            self._fd = -1

    def __enter__(self) -> JournalWriter:
        return self

    def __del__(self) -> None:
        # Forgotten writers: the bytes are already in the OS; just release the file.
        fd, self._fd = getattr(self, "_fd", -1), -1
        if fd >= 0:
            for event in (getattr(self, "_stop", None), getattr(self, "_wake", None)):
                if event is not None:
                    event.set()
            try:
                os.close(fd)
            except OSError:
                pass

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _raise_async(self) -> None:
        exc, self._async_error = self._async_error, None
        assert exc is not None
        raise StorageError(f"{self.path}: cannot sync the journal to disk: {_why(exc)}")

    # -- the background fsync -------------------------------------------------------------
    def _start_syncer(self) -> None:
        # The thread fsyncs through its own duplicate descriptor, so it never races
        # with close(), and holds only a weak reference, so a writer nobody closes
        # can still be collected.
        dup = os.dup(self._fd)
        ref = weakref.ref(self)
        self._syncer = threading.Thread(target=_sync_loop,
                                        args=(ref, dup, self._stop, self._wake,
                                              self.fsync_interval_s),
                                        name=f"journal-fsync-{self.path.parent.name}",
                                        daemon=True)
        self._syncer.start()


def _sync_loop(ref: weakref.ref, fd: int, stop: threading.Event, wake: threading.Event,
               interval: float) -> None:
    """fsync the journal when data is waiting and `interval` has passed since the last one.

    In between, every WRITEBACK_BYTES appended are handed to the disk at once without
    waiting (`start_writeback`): no more fsyncs, but the next one, above all the one at
    the end of a run, finds little left to write."""
    timeout = interval
    written_back = 0
    try:
        while True:
            wake.wait(timeout)
            wake.clear()
            if stop.is_set():
                return
            writer = ref()
            if writer is None:
                return
            seq, synced, last, size = (writer._seq, writer._synced_seq, writer._last_sync,
                                       writer._size)
            del writer
            if size - written_back >= WRITEBACK_BYTES:
                start_writeback(fd, written_back, size - written_back)
                written_back = size
            if seq == synced:
                timeout = interval
                continue
            early = last + interval - time.monotonic()
            if early > 0:
                timeout = early  # synced recently: come back when the next one is due
                continue
            try:
                os.fsync(fd)
            except OSError as exc:
                writer = ref()
                if writer is not None:
                    writer._async_error = exc
                return
            writer = ref()
            if writer is None:
                return
            writer._synced_seq = max(writer._synced_seq, seq)
            writer._last_sync = time.monotonic()
            del writer
            timeout = interval
    finally:
        os.close(fd)


def _lock(fd: int, path: Path) -> None:
    if fcntl is None:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise LabctlError(f"{path}: another process is writing this journal "
                          "(is the run still going?)") from None
    except OSError:
        pass  # a file system without locks: go on unguarded


def _writev_all(fd: int, buffers: list[Any], total: int) -> None:
    written = os.writev(fd, buffers)
    if written == total:
        return
    # A short write (rare: signals, near-full disks): write the rest piece by piece.
    flat = memoryview(b"".join(memoryview(b).cast("B") for b in buffers))[written:]
    while flat:
        n = os.write(fd, flat)
        if n <= 0:
            raise OSError(errno.EIO, "short write")
        flat = flat[n:]


_UNIX_COLUMN = [name for name, _ in _OUR_COLUMNS].index("unix_time_s")
_CONSTANT_IN_ENGINE_BLOCKS = tuple(k for k, (name, _) in enumerate(_OUR_COLUMNS)
                                   if name in ("step_index", "cycle_index"))


def _sample_record(block: list[np.ndarray], unix_origin_s: float | None, packs: bool = True
                   ) -> tuple[int, list[Any], int]:
    """A block's record: its type, the payload's buffers and its length. PACKED where that
    is smaller (with the engine's columns as `append_samples` describes), else SAMPLES."""
    if packs:
        hints = ((), ()) if unix_origin_s is None else (
            _CONSTANT_IN_ENGINE_BLOCKS, ((_UNIX_COLUMN, unix_origin_s),))
        packed = pack(block, *hints)
        if packed is not None:
            return PACKED, *packed
    n = len(block[0])
    return SAMPLES, [_COUNT.pack(n), *block], _COUNT.size + n * _OUR_ROW_BYTES


def record_bytes(columns: Mapping[str, np.ndarray], unix_origin_s: float | None = None) -> int:
    """The bytes `append_samples` adds to a journal for this block (at least one row, fewer
    than _MAX_ROWS_PER_RECORD): the planner's disk estimate."""
    return _HEADER.size + _sample_record(_as_columns(columns), unix_origin_s)[2]


def _as_columns(columns: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """The sample columns in journal order as contiguous little-endian arrays."""
    if isinstance(columns, np.ndarray) and columns.dtype.names:
        columns = {name: columns[name] for name in columns.dtype.names}
    out, n = [], None
    for name, dtype in _OUR_COLUMNS:
        if name not in columns:
            missing = [c for c, _ in _OUR_COLUMNS if c not in columns]
            raise ValueError(f"sample block lacks column(s) {', '.join(missing)}; "
                             f"expected {', '.join(SAMPLE_COLUMNS)}")
        col = np.ascontiguousarray(columns[name], dtype=dtype)
        if col.ndim != 1:
            raise ValueError(f"sample column {name} must be one-dimensional")
        if n is None:
            n = len(col)
        elif len(col) != n:
            raise ValueError(f"sample column {name} has {len(col)} rows, expected {n}")
        out.append(col)
    return out


def rewrite_journal(run_dir: str | Path) -> Path:
    """Rewrite a damaged journal with only its valid records, keeping the original aside.

    For damage in the middle of the file, which `open_for_append` refuses to cut.
    Returns the path the original was moved to.
    """
    path = Path(run_dir) / JOURNAL_NAME
    try:
        guard = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise LabctlError(f"{path}: cannot open the journal: {_why(exc)}") from None
    try:
        _lock(guard, path)  # no writer may append to the inode we are about to replace
        return _rewrite_locked(path)
    finally:
        try:
            os.close(guard)
        except OSError:
            pass


def _rewrite_locked(path: Path) -> Path:
    reader = JournalReader(path)

    def chunks() -> Iterator[bytes]:
        records = reader.records(reuse_buffer=True)
        first = next(records, None)  # reading it reads the header, if the file has one
        # The records are written back as SAMPLES, which format 1 has: a journal begun in
        # format 1 stays in it, readable by the labctl that began it (and continued so).
        version = 1 if reader.has_header and reader.format_version < 2 else FORMAT_VERSION
        payload = encode_event(header_event(version))
        yield _HEADER.pack(MAGIC, EVENT, len(payload), crc32(payload)) + payload
        for kind, item, n in itertools.chain([first] if first else [], records):
            if kind == EVENT:
                payload = encode_event(item)
            else:
                cols = reader.layout.columns_of(item, n)
                parts = [_COUNT.pack(n)] + [np.ascontiguousarray(cols[c], dtype=d).tobytes()
                                            for c, d in _OUR_COLUMNS]
                payload = b"".join(parts)
            yield _HEADER.pack(MAGIC, kind, len(payload), crc32(payload)) + payload

    aside = path.with_name(f"{JOURNAL_NAME}.damaged-{int(time.time())}")
    try:
        os.link(path, aside)  # keep every original byte for forensics
    except FileExistsError:
        pass
    except OSError as exc:
        raise LabctlError(f"{path}: cannot keep a copy of the damaged journal: {_why(exc)}") \
            from None
    atomic_write_stream(path, chunks())
    return aside
