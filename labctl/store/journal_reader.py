"""Reading a run's journal: every valid record in file order, a chunk at a time.

Damaged bytes are skipped (the reader resynchronises on the next record whose
header and CRC check out); a torn tail is reported, never an error. The format
is described in `labctl/store/journal.py`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labctl.errors import LabctlError
from labctl.store.journal_format import (
    _CHUNK,
    _HEADER,
    _MAGIC_BYTES,
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
    _Layout,
    _why,
    crc32,
)


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
        self.format_version = 0  # the header's (0 without one)
        self.layout = _OUR_LAYOUT
        self.problems: list[str] = []

    def records(self, reuse_buffer: bool = False) -> Iterator[tuple[int, Any, int]]:
        """Yield (EVENT, event dict, 0) and (SAMPLES, block, rows) in file order; a block
        is a SAMPLES record's payload (memoryview) or a PACKED record's `PackedBlock`:
        `layout.columns_of` and `layout.values_of` read either.

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
            if kind == PACKED:
                block = self.layout.packed(payload)
                item, n = block, (None if block is None else block.n)
            else:
                item, n = payload, self.layout.rows(payload)
            if n is None:
                self.problems.append(f"record ending at byte {end}: sample block of a wrong "
                                     "size; skipped")
                continue
            yield SAMPLES, item, n
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
        self.format_version = version

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
        if self.layout is not _OUR_LAYOUT or not isinstance(payload, memoryview):
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
        if magic != MAGIC or kind not in (EVENT, SAMPLES, PACKED):
            return None
        end = pos + _HEADER.size + length
        if not self._ensure(pos, _HEADER.size + length):
            return None
        off = pos - self.start + _HEADER.size
        payload = memoryview(self.data)[off:off + length]
        if crc32(payload) != crc:
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
        # Rows of a SAMPLES record take this much each: for them the bound is exact. Packed
        # records take fewer (a cycling run's ~47 bytes a row): their arrays grow as they
        # come (a copy or two), which costs less than reserving room for the fewest
        # bytes a row could take (address space a strict host refuses).
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
        if n + m > capacity:  # packed rows, or the file grew while we read it (a live run)
            capacity = max(2 * capacity, n + m)
            out = [_grow(a, n, capacity) for a in out]
        if reader.layout is _OUR_LAYOUT and isinstance(item, memoryview):
            for dest, (_, _, arr) in zip(out, _OUR_LAYOUT.blocks(item, m), strict=True):
                dest[:, n:n + m] = arr
        else:  # a packed block (constants broadcast), or a journal with other columns
            values = iter(reader.layout.values_of(item, m))
            for dest, (_, names) in zip(out, runs, strict=True):
                for i in range(len(names)):
                    dest[i, n:n + m] = next(values)
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
