"""Append-only, self-checking run journal (journal.bin).

Record = header (magic u32, type u8, length u32, crc32 u32) + payload.
Types: 1 = JSON event, 2 = block of samples: row count (u32) then each column of
SAMPLE_COLUMNS in order, contiguous, raw little-endian. Column-major blocks make
both writing (the engine already holds columns) and reading (one memcpy per
column) cheap.
The first record is a JSON header with the format version and the sample dtype.
A torn or corrupt tail (a crash mid-write) is detected by length/CRC and ignored
by readers; `open_for_append` cuts it before appending.
"""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labctl.errors import LabctlError
from labctl.records import SAMPLE_COLUMNS

JOURNAL_NAME = "journal.bin"
FORMAT_VERSION = 1
MAGIC = 0x4C424A31  # "LBJ1"
EVENT, SAMPLES = 1, 2
_HEADER = struct.Struct("<IBII")
_COUNT = struct.Struct("<I")
_ROW_BYTES = sum(d.itemsize for d in SAMPLE_COLUMNS.values())


def _record(kind: int, payload: bytes) -> bytes:
    return _HEADER.pack(MAGIC, kind, len(payload), zlib.crc32(payload)) + payload


def _header_event() -> dict:
    return {"type": "journal_header", "format_version": FORMAT_VERSION,
            "sample_layout": "column-major",
            "sample_dtype": [[n, d.str] for n, d in SAMPLE_COLUMNS.items()]}


class JournalWriter:
    def __init__(self, path: Path, fd: int, fsync_interval_s: float = 1.0):
        self.path = path
        self._fd = fd
        self.fsync_interval_s = fsync_interval_s
        self._last_sync = time.monotonic()

    @classmethod
    def create(cls, run_dir: str | Path, fsync_interval_s: float = 1.0) -> JournalWriter:
        path = Path(run_dir) / JOURNAL_NAME
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        except OSError as exc:
            raise LabctlError(f"{path}: cannot create the journal: {exc.strerror}") from None
        writer = cls(path, fd, fsync_interval_s)
        writer.append_event(_header_event())
        writer.sync()
        return writer

    @classmethod
    def open_for_append(cls, run_dir: str | Path, fsync_interval_s: float = 1.0) -> JournalWriter:
        path = Path(run_dir) / JOURNAL_NAME
        valid, _ = _scan(path.read_bytes() if path.exists() else b"")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.ftruncate(fd, valid)
        except OSError as exc:
            raise LabctlError(f"{path}: cannot open the journal: {exc.strerror}") from None
        writer = cls(path, fd, fsync_interval_s)
        if valid == 0:
            writer.append_event(_header_event())
        writer.sync()
        return writer

    def _write(self, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError as exc:
            raise LabctlError(f"{self.path}: cannot write the journal ({exc.strerror}); "
                              "data written before this point is safe") from None
        if time.monotonic() - self._last_sync >= self.fsync_interval_s:
            self.sync()

    def append_event(self, event: dict) -> None:
        self._write(_record(EVENT, json.dumps(event, allow_nan=True).encode()))

    def append_samples(self, columns: Mapping[str, np.ndarray]) -> None:
        n = len(columns["test_time_s"])
        if n == 0:
            return
        parts = [_COUNT.pack(n)]
        for name, dtype in SAMPLE_COLUMNS.items():
            col = np.asarray(columns[name], dtype=dtype)
            if len(col) != n:
                raise ValueError(f"column {name} has {len(col)} rows, expected {n}")
            parts.append(col.tobytes())
        self._write(_record(SAMPLES, b"".join(parts)))

    def sync(self) -> None:
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise LabctlError(f"{self.path}: cannot sync the journal: {exc.strerror}") from None
        self._last_sync = time.monotonic()

    def close(self) -> None:
        if self._fd >= 0:
            try:
                self.sync()
            finally:
                os.close(self._fd)
                self._fd = -1


def _scan(data: bytes) -> tuple[int, list[tuple[int, int, int]]]:
    """Valid length and (kind, start, end) of each good record."""
    records = []
    pos, size, hsize = 0, len(data), _HEADER.size
    while pos + hsize <= size:
        magic, kind, length, crc = _HEADER.unpack_from(data, pos)
        end = pos + hsize + length
        if magic != MAGIC or kind not in (EVENT, SAMPLES) or end > size:
            break
        if zlib.crc32(data[pos + hsize:end]) != crc:
            break
        records.append((kind, pos + hsize, end))
        pos = end
    return pos, records


@dataclass
class JournalData:
    events: list[dict]
    samples: dict[str, np.ndarray]
    valid_bytes: int
    torn_tail: bool


def _empty_samples() -> dict[str, np.ndarray]:
    return {name: np.empty(0, dtype=dt) for name, dt in SAMPLE_COLUMNS.items()}


def _check_header(event: dict, path: Path) -> None:
    version = event.get("format_version", 0)
    if version > FORMAT_VERSION:
        raise LabctlError(f"{path}: journal format {version} is newer than this labctl "
                          f"understands ({FORMAT_VERSION}); upgrade labctl")


def _block_columns(data: bytes, start: int, end: int) -> dict[str, np.ndarray]:
    (n,) = _COUNT.unpack_from(data, start)
    offset = start + _COUNT.size
    if end - offset != n * _ROW_BYTES:
        raise LabctlError("journal sample block has an unexpected size")
    cols = {}
    for name, dtype in SAMPLE_COLUMNS.items():
        cols[name] = np.frombuffer(data, dtype=dtype, count=n, offset=offset)
        offset += n * dtype.itemsize
    return cols


def _concat(blocks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if not blocks:
        return _empty_samples()
    return {name: np.concatenate([b[name] for b in blocks]) for name in SAMPLE_COLUMNS}


def read_journal(run_dir: str | Path) -> JournalData:
    """Everything valid in a run's journal: events and the samples as columns."""
    path = Path(run_dir) / JOURNAL_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise LabctlError(f"{path}: no journal (is this a run directory?)") from None
    valid, records = _scan(data)
    events, blocks = [], []
    for kind, start, end in records:
        if kind == EVENT:
            event = json.loads(data[start:end])
            if event.get("type") == "journal_header":
                _check_header(event, path)
            else:
                events.append(event)
        else:
            blocks.append(_block_columns(data, start, end))
    return JournalData(events, _concat(blocks), valid, valid < len(data))


def iter_sample_blocks(run_dir: str | Path) -> Iterator[dict[str, np.ndarray]]:
    """Sample blocks one at a time, as column dicts (for building big tables in pieces)."""
    path = Path(run_dir) / JOURNAL_NAME
    data = path.read_bytes()
    _, records = _scan(data)
    for kind, start, end in records:
        if kind == SAMPLES:
            yield _block_columns(data, start, end)
