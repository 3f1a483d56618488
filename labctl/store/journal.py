"""Append-only, self-checking run journal (`journal.bin`).

Every record is a 13-byte header -- magic (u32), type (u8), payload length
(u32), CRC32 of the payload (u32), little-endian -- followed by the payload.

* type 1, EVENT: a UTF-8 JSON object with a "type" key. The first record of a
  file is the `journal_header` event: format version, sample layout and the
  sample columns with their numpy dtypes, so a reader can refuse a newer
  format clearly and read an older column set by name.
* type 2, SAMPLES: a row count (u32), then each sample column, in the header's
  order, as contiguous little-endian arrays.

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
import json
import math
import os
import struct
import threading
import time
import weakref
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labctl.errors import LabctlError, StorageError
from labctl.records import SAMPLE_COLUMNS
from labctl.store.atomic import atomic_write_stream, describe_os_error, fsync_dir

try:  # advisory lock: one writer per journal (POSIX only)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

JOURNAL_NAME = "journal.bin"
FORMAT_VERSION = 1
MAGIC = 0x4C424A31  # b"1JBL" on disk
EVENT, SAMPLES = 1, 2
HEADER_TYPE = "journal_header"

_HEADER = struct.Struct("<IBII")
_COUNT = struct.Struct("<I")
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_MAX_PAYLOAD = 0xFFFF_FFFF
_CHUNK = 8 << 20  # bytes read at a time; bounds a reader's extra memory
# Split very large sample blocks so a record stays far below the u32 length
# limit and a streaming reader never needs more than a few chunks at once.
_MAX_ROWS_PER_RECORD = 1 << 20

_OUR_COLUMNS: list[tuple[str, np.dtype]] = list(SAMPLE_COLUMNS.items())
_OUR_ROW_BYTES = sum(d.itemsize for _, d in _OUR_COLUMNS)

_why = describe_os_error


def header_event() -> dict[str, Any]:
    """The first record of every journal this labctl writes."""
    return {
        "type": HEADER_TYPE,
        "format_version": FORMAT_VERSION,
        "sample_layout": "column-major",
        "byte_order": "little",
        "sample_dtype": [[name, dt.str] for name, dt in _OUR_COLUMNS],
    }


def _json_default(obj: Any) -> Any:
    # Instrument snapshots carry numpy scalars and arrays; keep them as numbers.
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


# What json.dumps(event, allow_nan=True, default=..., separators=...) builds on every call,
# built once: the engine encodes a few events per step.
_ENCODER = json.JSONEncoder(allow_nan=True, default=_json_default, separators=(",", ":"))


def encode_event(event: Mapping[str, Any]) -> bytes:
    if not isinstance(event, Mapping) or not isinstance(event.get("type"), str):
        raise ValueError(f"a journal event must be a dict with a 'type' string, got {event!r:.200}")
    return _ENCODER.encode(event).encode()


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
        self._append(EVENT, [payload], len(payload), zlib.crc32(payload))

    def append_samples(self, columns: Mapping[str, np.ndarray]) -> None:
        """Append one block of samples (keys = SAMPLE_COLUMNS, equal lengths)."""
        cols = _as_columns(columns)
        n = len(cols[0])
        for lo in range(0, n, _MAX_ROWS_PER_RECORD):
            hi = min(n, lo + _MAX_ROWS_PER_RECORD)
            parts: list[Any] = [_COUNT.pack(hi - lo)]
            parts += [c[lo:hi] for c in cols] if (lo, hi) != (0, n) else cols
            crc = 0
            for p in parts:
                crc = zlib.crc32(p, crc)
            self._append(SAMPLES, parts, _COUNT.size + (hi - lo) * _OUR_ROW_BYTES, crc)

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
            raise StorageError(
                f"{self.path}: cannot write the journal: {_why(exc)}; everything recorded "
                "before this point is safe in the journal") from None
        self._size += total
        self._seq += 1
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
    """fsync the journal when data is waiting and `interval` has passed since the last one."""
    timeout = interval
    try:
        while True:
            wake.wait(timeout)
            wake.clear()
            if stop.is_set():
                return
            writer = ref()
            if writer is None:
                return
            seq, synced, last = writer._seq, writer._synced_seq, writer._last_sync
            del writer
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


# -- reading ---------------------------------------------------------------------------------

@dataclass
class JournalData:
    """Everything valid in a journal."""

    events: list[dict]
    samples: dict[str, np.ndarray]
    valid_bytes: int  # offset just past the last valid record
    torn_tail: bool  # bytes after the last valid record were ignored
    file_bytes: int = 0
    corrupt_ranges: list[tuple[int, int]] = field(default_factory=list)  # skipped, mid-file
    last_record: tuple[int, int] | None = None  # (offset, crc32) of the last valid record

    @property
    def n_samples(self) -> int:
        return len(self.samples["test_time_s"])


def empty_samples() -> dict[str, np.ndarray]:
    return {name: np.empty(0, dtype=dt) for name, dt in _OUR_COLUMNS}


class _Layout:
    """How a sample block's columns sit in a payload.

    Neighbouring columns of one dtype are read with a single `np.frombuffer`
    as a 2-D (columns x rows) array: a few numpy calls per block instead of
    one per column.
    """

    def __init__(self, columns: list[tuple[str, np.dtype]]):
        self.columns = columns
        self.row_bytes = sum(d.itemsize for _, d in columns)
        self.runs: list[tuple[np.dtype, list[str]]] = []
        for name, dtype in columns:
            if self.runs and self.runs[-1][0] == dtype:
                self.runs[-1][1].append(name)
            else:
                self.runs.append((dtype, [name]))

    def rows(self, payload: memoryview) -> int | None:
        if len(payload) < _COUNT.size:
            return None
        (n,) = _COUNT.unpack_from(payload, 0)
        return n if len(payload) == _COUNT.size + n * self.row_bytes else None

    def blocks(self, payload: memoryview, n: int) -> Iterator[tuple[np.dtype, list[str], np.ndarray]]:
        offset = _COUNT.size
        for dtype, names in self.runs:
            arr = np.frombuffer(payload, dtype=dtype, count=n * len(names), offset=offset)
            yield dtype, names, arr.reshape(len(names), n)
            offset += n * len(names) * dtype.itemsize

    def columns_of(self, payload: memoryview, n: int) -> dict[str, np.ndarray]:
        """{name: 1-D view} in this labctl's column set (missing ones filled, extra dropped)."""
        found = {name: arr[i] for _, names, arr in self.blocks(payload, n)
                 for i, name in enumerate(names)}
        if self.columns == _OUR_COLUMNS:
            return found
        out = {}
        for name, dtype in _OUR_COLUMNS:
            if name in found:
                out[name] = found[name].astype(dtype, copy=False)
            else:  # a column this file's writer did not have
                out[name] = np.full(n, math.nan if dtype.kind == "f" else 0, dtype=dtype)
        return out


_OUR_LAYOUT = _Layout(_OUR_COLUMNS)


class JournalReader:
    """Walks a journal's records in file order, a chunk at a time.

    After `records()` is exhausted: `valid_bytes`, `torn_tail`, `corrupt_ranges`,
    `last_record`, `file_bytes`, `has_header` and `layout` describe the file.
    Damaged bytes are skipped: the reader looks for the next record whose
    header and CRC check out, so one bad sector does not hide what follows.
    """

    def __init__(self, path: str | Path, skip_event_types: tuple[str, ...] = ()):
        self.path = Path(path)
        # Events of these types, as labctl writes them ("type" first), are checked but
        # neither decoded nor yielded: finalize has no use for the instrument snapshots,
        # which are most of a long run's events.
        self._skip = tuple(b'{"type":' + json.dumps(t).encode() + b"," for t in skip_event_types)
        self._skip_len = max((len(p) for p in self._skip), default=0)
        self.valid_bytes = 0
        self.file_bytes = 0
        self.torn_tail = False
        self.corrupt_ranges: list[tuple[int, int]] = []
        self.last_record: tuple[int, int] | None = None
        self.has_header = False
        self.layout = _OUR_LAYOUT
        self.problems: list[str] = []

    def records(self, reuse_buffer: bool = False) -> Iterator[tuple[int, Any, int]]:
        """Yield (EVENT, event dict, 0) and (SAMPLES, payload memoryview, rows) in file order.

        With `reuse_buffer` the payload is only valid until the next record is
        requested (no fresh memory per chunk: faster, for callers that copy at once).
        """
        try:
            f = open(self.path, "rb", buffering=0)
        except FileNotFoundError:
            raise LabctlError(f"{self.path}: no journal here (is this a run directory?)") from None
        except OSError as exc:
            raise LabctlError(f"{self.path}: cannot read the journal: {_why(exc)}") from None
        with f:
            self.file_bytes = os.fstat(f.fileno()).st_size
            yield from self._walk(_Buffer(f, self.file_bytes, reuse_buffer))

    def _walk(self, buf: _Buffer) -> Iterator[tuple[int, Any, int]]:
        pos, bad_start, first = 0, None, True
        while True:
            rec = buf.record_at(pos)
            if rec is None:
                if pos >= self.file_bytes:
                    break
                if bad_start is None:
                    bad_start = pos
                nxt = buf.find_magic(pos + 1)
                if nxt is None:
                    break
                pos = nxt
                continue
            kind, crc, payload, end = rec
            if first:
                first = False
                self._check_start(kind, payload, pos)
            if bad_start is not None:
                self.corrupt_ranges.append((bad_start, pos))
                bad_start = None
            self.last_record = (pos, crc)
            self.valid_bytes = pos = end
            if kind == EVENT:
                if self._skip and bytes(payload[:self._skip_len]).startswith(self._skip):
                    continue
                event = self._event(payload, end)
                if event is not None:
                    yield EVENT, event, 0
                continue
            n = self.layout.rows(payload)
            if n is None:
                self.problems.append(f"record ending at byte {end}: sample block of a wrong "
                                     "size; skipped")
                continue
            yield SAMPLES, payload, n
        self.torn_tail = self.valid_bytes < self.file_bytes
        if self.valid_bytes == 0 and self.file_bytes > 0:
            head = buf.head(4)
            if head != _MAGIC_BYTES[: len(head)]:
                raise LabctlError(f"{self.path}: not a labctl journal")

    def _check_start(self, kind: int, payload: memoryview, pos: int) -> None:
        if pos != 0 or kind != EVENT:
            return
        try:
            event = json.loads(bytes(payload))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return
        if not isinstance(event, dict) or event.get("type") != HEADER_TYPE:
            return
        version = event.get("format_version", 0)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise LabctlError(f"{self.path}: journal format {version} is newer than this labctl "
                              f"reads ({FORMAT_VERSION}); upgrade labctl to read this run")
        layout = event.get("sample_layout", "column-major")
        if layout != "column-major":
            raise LabctlError(f"{self.path}: unknown sample layout {layout!r}")
        try:
            columns = [(str(n), np.dtype(d)) for n, d in event["sample_dtype"]]
        except (KeyError, TypeError, ValueError):
            raise LabctlError(f"{self.path}: the journal header's sample_dtype is unreadable") \
                from None
        if columns != _OUR_COLUMNS:
            self.layout = _Layout(columns)
        self.has_header = True

    def _event(self, payload: memoryview, end: int) -> dict | None:
        try:
            event = json.loads(bytes(payload))
        except (UnicodeDecodeError, json.JSONDecodeError):
            self.problems.append(f"record ending at byte {end}: event is not JSON; skipped")
            return None
        if not isinstance(event, dict) or event.get("type") == HEADER_TYPE:
            return None
        return event

    def sample_runs(self, payload: memoryview, n: int) -> list[np.ndarray] | None:
        """A sample block as one 2-D (columns x rows) view per run of same-dtype columns,
        in this labctl's column order; None when the file's columns differ from ours."""
        if self.layout is not _OUR_LAYOUT:
            return None
        return [arr for _, _, arr in _OUR_LAYOUT.blocks(payload, n)]

    def sample_blocks(self, reuse_buffer: bool = False) -> Iterator[dict[str, np.ndarray]]:
        for kind, item, n in self.records(reuse_buffer):
            if kind == SAMPLES:
                yield self.layout.columns_of(item, n)


class _Buffer:
    """A window over the file, refilled a chunk at a time, so a reader never holds all of it."""

    def __init__(self, f: Any, size: int, reuse: bool):
        self.f = f
        self.size = size
        self.reuse = reuse
        self.data = np.empty(0, dtype=np.uint8)
        self.start = 0  # file offset of data[0]
        self.end = 0  # file offset just past the valid bytes in data

    def _ensure(self, pos: int, n: int) -> bool:
        """Make [pos, pos+n) available; False when the file ends first."""
        if pos + n > self.size:
            return False
        if self.start <= pos and pos + n <= self.end:
            return True
        keep = self.end - pos if self.start <= pos < self.end else 0
        want = min(max(n, _CHUNK), self.size - pos)
        if self.reuse and len(self.data) >= want:
            data = self.data
        else:
            data = np.empty(max(want, len(self.data)) if self.reuse else want, dtype=np.uint8)
        if keep:
            # Part of a record straddles two chunks: carry it to the front.
            data[:keep] = self.data[pos - self.start:self.end - self.start]
        else:
            self.f.seek(pos)
        got = keep
        view = memoryview(data)
        while got < want:
            k = self.f.readinto(view[got:want])
            if not k:
                break  # the file shrank under us
            got += k
        self.data, self.start, self.end = data, pos, pos + got
        return got >= n

    def head(self, n: int) -> bytes:
        n = min(n, self.size)
        return self.data[:n].tobytes() if self._ensure(0, n) else b""

    def record_at(self, pos: int) -> tuple[int, int, memoryview, int] | None:
        if not self._ensure(pos, _HEADER.size):
            return None
        magic, kind, length, crc = _HEADER.unpack_from(self.data, pos - self.start)
        if magic != MAGIC or kind not in (EVENT, SAMPLES):
            return None
        end = pos + _HEADER.size + length
        if not self._ensure(pos, _HEADER.size + length):
            return None
        off = pos - self.start + _HEADER.size
        payload = memoryview(self.data)[off:off + length]
        if zlib.crc32(payload) != crc:
            return None
        return kind, crc, payload, end

    def find_magic(self, pos: int) -> int | None:
        """Offset of the next magic number at or after `pos` (resync after damage)."""
        while pos < self.size:
            if not self._ensure(pos, min(_CHUNK, self.size - pos)):
                return None
            window = self.data[pos - self.start:self.end - self.start].tobytes()
            hit = window.find(_MAGIC_BYTES)
            if hit >= 0:
                return pos + hit
            if self.end >= self.size:
                return None
            pos = max(pos + 1, self.end - 3)  # the magic may straddle two chunks
        return None


def read_journal(run_dir: str | Path) -> JournalData:
    """Everything valid in a run's journal: events, and the samples as columns."""
    path = Path(run_dir) / JOURNAL_NAME
    reader = JournalReader(path)
    events: list[dict] = []
    try:
        capacity = os.stat(path).st_size // _OUR_ROW_BYTES
    except OSError:
        capacity = 0
    # One 2-D array per run of same-dtype columns, preallocated to an upper bound
    # and filled block by block: one copy of the data, a few numpy calls per block,
    # and the untouched tail of the over-allocation never becomes resident.
    runs = _OUR_LAYOUT.runs
    out = [np.empty((len(names), capacity), dtype=dtype) for dtype, names in runs]
    n = 0
    for kind, item, m in reader.records(reuse_buffer=True):
        if kind == EVENT:
            events.append(item)
            continue
        if n + m > capacity:  # the file grew while we read it (a live run)
            capacity = max(2 * capacity, n + m)
            out = [_grow(a, n, capacity) for a in out]
        if reader.layout is _OUR_LAYOUT:
            for dest, (_, _, arr) in zip(out, _OUR_LAYOUT.blocks(item, m), strict=True):
                dest[:, n:n + m] = arr
        else:
            cols = reader.layout.columns_of(item, m)
            for dest, (_, names) in zip(out, runs, strict=True):
                for i, name in enumerate(names):
                    dest[i, n:n + m] = cols[name]
        n += m
    by_name = {name: dest[i, :n] for dest, (_, names) in zip(out, runs, strict=True)
               for i, name in enumerate(names)}
    samples = {name: by_name[name] for name, _ in _OUR_COLUMNS}
    return JournalData(events, samples, reader.valid_bytes, reader.torn_tail, reader.file_bytes,
                       reader.corrupt_ranges, reader.last_record)


def _grow(arr: np.ndarray, n: int, capacity: int) -> np.ndarray:
    new = np.empty((arr.shape[0], capacity), dtype=arr.dtype)
    new[:, :n] = arr[:, :n]
    return new


def read_events(run_dir: str | Path) -> list[dict]:
    """Only the events (sample blocks are checked but not decoded)."""
    reader = JournalReader(Path(run_dir) / JOURNAL_NAME)
    return [item for kind, item, _ in reader.records(reuse_buffer=True) if kind == EVENT]


def iter_sample_blocks(run_dir: str | Path) -> Iterator[dict[str, np.ndarray]]:
    """Sample blocks one at a time, as {column: array}; memory stays about one chunk.

    The arrays stay valid after the iteration moves on (each chunk is fresh memory).
    """
    yield from JournalReader(Path(run_dir) / JOURNAL_NAME).sample_blocks(reuse_buffer=False)


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
        payload = encode_event(header_event())
        yield _HEADER.pack(MAGIC, EVENT, len(payload), zlib.crc32(payload)) + payload
        for kind, item, n in reader.records(reuse_buffer=True):
            if kind == EVENT:
                payload = encode_event(item)
            else:
                cols = reader.layout.columns_of(item, n)
                parts = [_COUNT.pack(n)] + [np.ascontiguousarray(cols[c], dtype=d).tobytes()
                                            for c, d in _OUR_COLUMNS]
                payload = b"".join(parts)
            yield _HEADER.pack(MAGIC, kind, len(payload), zlib.crc32(payload)) + payload

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
