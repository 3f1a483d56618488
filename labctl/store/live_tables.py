"""The run's tables built while it runs, from what the journal writer appends.

`finalize` used to read the whole journal back at the end of a run to write the
timeseries Parquet: a second pass over every byte (read, CRC, copy), about a
third of a simulated run's time. `LiveTables` is a tap on `JournalWriter`: it
sees every record the moment it is safely in the journal, keeps the step
summaries up to date and copies the sample blocks into one of two reusable
row-group buffers; a full buffer goes to a worker thread that encodes it into a
temporary Parquet file (pyarrow releases the GIL while it encodes, so on a
second core this overlaps the simulation), adds it to the cycle means and hands
it back. The worker also imports pyarrow, so `labctl run` does not wait for it.
Given a `TableWriter` (store/table_writer.py: what `labctl run` does), samples are not
copied at all: that child process reads them back from the journal, encodes them and
keeps the cycle means; the worker thread only tells it how far to read, once per row
group, and never imports pyarrow.

The journal stays the record. The temporary file is only renamed into place
by `finish`, and only when the tap saw exactly what the journal holds (same
size, every step ended, no error); otherwise `finalize` rebuilds the tables
from the journal as before. A crash leaves the temporary file behind, which
`labctl resume` removes (`remove_stale_temp_files`) before rebuilding.
"""

from __future__ import annotations

import json
import os
import queue
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from labctl.records import SAMPLE_COLUMNS
from labctl.store.atomic import current_umask
from labctl.store.disk_hints import start_writeback
from labctl.store.journal_format import EVENT, JOURNAL_NAME
from labctl.store.summaries import _CycleMeans, _StepTracker
from labctl.store.table_writer import TableWriter, TableWriterError, row_group_rows

_NAMES = list(SAMPLE_COLUMNS)
_SKIP = (b'{"type":"state",',)  # instrument snapshots: finalize never decodes them
_MEANS_COLUMNS = [(_NAMES.index(n), n) for n in _CycleMeans.COLUMNS]
# Events whose fields are plain JSON values as the engine writes them (step_end's result
# is StepResult.as_dict()): no need to decode them back.
_PLAIN_EVENTS = frozenset({"step_start", "step_end", "log", "run_start", "run_end"})
_CLOSE = object()  # tells the encoder to close and fsync the file


class _ReadTo:
    """Tells the encoder to have the writer process read the journal up to byte `end`."""

    __slots__ = ("end",)

    def __init__(self, end: int):
        self.end = end

# Row-group buffers per run: one filling while the others wait for or are in the encoder.
# Three, not two: on a busy machine the encoder thread falls behind now and then, and
# with two the engine's thread then waited for a buffer (~8 ms a 100-cycle run in a slow
# spell, measured; median run 2.5 % faster with three).
_BUFFERS = 3


class _GroupBuffer:
    """One row group's samples, copied in block by block; reused from run to run.

    A copy, not references to the engine's arrays: those are freed at once and their
    memory reused for the next batch (holding a row group's worth of them made every
    batch fault in fresh pages, which cost more than this copy). Same-dtype columns
    share one 2-D array, so a block is copied with a few numpy calls.
    """

    def __init__(self, rows: int):
        self.capacity, self.n = rows, 0
        self.cols: list[np.ndarray] = [np.empty(0)] * len(_NAMES)
        k = 0
        for dtype, count in _dtype_runs():
            block = np.empty((count, rows), dtype=dtype)
            for i in range(count):
                self.cols[k + i] = block[i]
            k += count

    def add(self, cols: list[np.ndarray], lo: int, hi: int) -> int:
        """Copy rows lo..hi of a block (as many as fit); returns where it stopped."""
        m = min(hi - lo, self.capacity - self.n)
        n = self.n
        for dest, col in zip(self.cols, cols, strict=True):
            dest[n:n + m] = col[lo:lo + m]
        self.n = n + m
        return lo + m

    def view(self) -> list[np.ndarray]:
        return [c[: self.n] for c in self.cols]


def _dtype_runs() -> list[tuple[np.dtype, int]]:
    runs: list[tuple[np.dtype, int]] = []
    for dtype in SAMPLE_COLUMNS.values():
        if runs and runs[-1][0] == dtype:
            runs[-1] = (dtype, runs[-1][1] + 1)
        else:
            runs.append((dtype, 1))
    return runs


_POOL: list[_GroupBuffer] = []  # buffers of finished runs (a process runs many in a row)
_POOL_LOCK = threading.Lock()


def _take_buffer(rows: int) -> _GroupBuffer:
    with _POOL_LOCK:
        for k, buf in enumerate(_POOL):
            if buf.capacity == rows:
                buf.n = 0
                return _POOL.pop(k)
    return _GroupBuffer(rows)


def _give_back(buf: _GroupBuffer) -> None:
    with _POOL_LOCK:
        if len(_POOL) < _BUFFERS:  # ~16 MB kept for the next run of this process
            _POOL.append(buf)


class LiveTables:
    """Tables of a run fed record by record (see the module doc); one per journal writer."""

    def __init__(self, run_dir: str | Path, row_group_rows: int | None = None,
                 writer: TableWriter | None = None):
        self.run_dir = Path(run_dir)
        self.row_group_rows = row_group_rows or _row_group_rows()
        fd, name = tempfile.mkstemp(dir=self.run_dir, prefix=".timeseries.parquet.",
                                    suffix=".tmp")
        try:
            os.fchmod(fd, 0o666 & ~current_umask())  # what a plain open() gives (see atomic)
        finally:
            os.close(fd)
        self.tmp = Path(name)
        self.tracker = _StepTracker()
        self.means = _CycleMeans()
        self.events: list[dict] = []
        self.n_samples = 0
        self.journal_bytes = 0  # the journal's size after the last record seen
        self.last_record: tuple[int, int] | None = None
        self.error: str | None = None
        self._closed = False  # the encoder thread has been stopped
        self._released = False  # the writer process is given back
        self._sealed = False  # no more samples expected (the run ended)
        self._written = False  # the file is complete and fsynced
        self._writer: Any = None  # opened on the encoder's thread (it imports pyarrow)
        self._queue: queue.Queue = queue.Queue()
        # Free row-group buffers; the one being filled (none: the writer process reads the
        # journal itself, and is told to once the journal has another row group's samples).
        self._free: queue.Queue = queue.Queue()
        self._filling: _GroupBuffer | None = None
        self._next_group = self.row_group_rows
        # The child process that encodes (None: this process's worker thread does),
        # claimed last: nothing below can fail and leave it claimed.
        self.remote = writer if writer is not None and writer.take(self.row_group_rows) \
            else None
        if self.remote is None:
            buffers = [_take_buffer(self.row_group_rows) for _ in range(_BUFFERS)]
            for buf in buffers[1:]:
                self._free.put(buf)
            self._filling = buffers[0]
        try:
            self._encoder = threading.Thread(target=self._encode_loop, daemon=True,
                                             name=f"live-tables-{self.run_dir.name}")
            self._encoder.start()
        except BaseException:
            self._release_writer()
            self.tmp.unlink(missing_ok=True)
            raise

    # -- the tap (called by JournalWriter after each successful append) ------------------
    def record(self, kind: int, item: Any, end: int, start: int, crc: int,
               event: Mapping[str, Any] | None = None) -> None:
        """A record now in the journal: an event's JSON payload (and the event it encodes)
        or a block's columns (journal order), ending at byte `end`; `start`/`crc` identify
        it."""
        if self.error is not None:
            return
        try:
            if kind == EVENT:
                if not item.startswith(_SKIP):
                    event = self._decoded(event, item)
                    if event.get("type") != "journal_header":
                        self.tracker.event(event)
                        self.events.append(event)
                    if event.get("type") == "run_end":
                        # Close and fsync the file now, on the encoder's thread, while the
                        # engine fsyncs the journal: the two waits for the disk overlap.
                        self._seal()
            else:
                self._samples(item)
                if self.remote is not None and self.n_samples >= self._next_group:
                    self._queue.put(_ReadTo(end))  # another row group: the writer reads it
                    self._next_group += self.row_group_rows * (
                        1 + (self.n_samples - self._next_group) // self.row_group_rows)
        except Exception as exc:  # the journal is the record: only the fast path is lost
            self.fail(f"live tables: {exc}")
        self.journal_bytes = end
        self.last_record = (start, crc)

    @staticmethod
    def _decoded(event: Mapping[str, Any] | None, payload: bytes) -> dict:
        """The event as a journal reader would read it back. The engine's own events hold
        plain numbers and strings, so a copy of the dict is the same; anything else
        (record tables, plugin events with numpy values) goes through JSON."""
        if event is not None and event.get("type") in _PLAIN_EVENTS:
            return dict(event)
        return json.loads(payload)

    def write_failed(self) -> None:
        """An append failed: the journal and what we saw may differ now."""
        self.fail("an append to the journal failed")

    def _samples(self, cols: list[np.ndarray]) -> None:
        n = len(cols[0])
        if n == 0:
            return
        if self._sealed:
            raise ValueError("samples after the end of the run")
        if self.remote is not None:  # the writer process reads them from the journal
            self.n_samples += n
            return
        lo = 0
        while lo < n:
            if self._filling is None:  # waits while every buffer is with the encoder
                self._filling = self._free.get()
            lo = self._filling.add(cols, lo, n)
            if self._filling.n == self._filling.capacity:
                self._flush()
        self.n_samples += n

    def _flush(self) -> None:
        # The encoder takes the full buffer; this thread goes on with the other one.
        if self._filling is not None and self._filling.n:
            self._queue.put(self._filling)
            self._filling = None

    def _encode_loop(self) -> None:
        # Only this thread touches `means` and the writer until finish() joins it. It also
        # imports pyarrow (~50 ms), while the engine goes on with the run.
        if self.remote is not None:
            try:
                self.remote.open_file(self.tmp, self.run_dir / JOURNAL_NAME)
            except TableWriterError as exc:
                self.error = f"live tables: cannot write {self.tmp.name}: {exc}"
            self._encode(-1, None, None, None)
            return
        try:
            import pyarrow as pa

            from labctl.store.arrow_columns import to_arrow
            from labctl.store.tables import ARROW_SCHEMA, _parquet_writer

            self._writer = _parquet_writer(self.tmp)
            watch = os.open(self.tmp, os.O_RDONLY)  # to start each row group's writeback
        except Exception as exc:
            self.error = f"live tables: cannot write {self.tmp.name}: {exc}"
            watch, pa, to_arrow, ARROW_SCHEMA = -1, None, None, None
        try:
            self._encode(watch, pa, to_arrow, ARROW_SCHEMA)
        finally:
            if watch >= 0:
                os.close(watch)

    def _encode(self, watch: int, pa: Any, to_arrow: Any, schema: Any) -> None:
        written_back = 0
        while True:
            buf = self._queue.get()
            if buf is None:
                return
            if self.error is not None:
                if isinstance(buf, _GroupBuffer):
                    self._free.put(buf)  # the engine's thread may be waiting for it
                continue
            if isinstance(buf, _ReadTo):
                try:
                    self.remote.read_journal(buf.end)
                except Exception as exc:
                    self.error = f"live tables: cannot write {self.tmp.name}: {exc}"
                continue
            if buf is _CLOSE:
                try:
                    if self.remote is not None:  # it kept the cycle means too
                        self._close_remote()
                    else:
                        self._writer.close()
                        os.fsync(watch)  # the file's data, whichever descriptor wrote it
                    self._written = True
                except Exception as exc:
                    self.error = f"live tables: cannot write {self.tmp.name}: {exc}"
                continue
            try:
                cols = buf.view()  # Arrow wraps each column without copying
                self._writer.write_table(pa.Table.from_arrays(
                    [to_arrow(c) for c in cols], schema=schema))
                # Hand the group to the disk now: the fsync at the end has less to wait for.
                size = os.fstat(watch).st_size
                start_writeback(watch, written_back, size - written_back)
                written_back = size
                # The cycle means in file order, a row group at a time.
                self.means.feed({name: cols[k] for k, name in _MEANS_COLUMNS})
            except Exception as exc:
                self.error = f"live tables: cannot write {self.tmp.name}: {exc}"
            buf.n = 0
            self._free.put(buf)

    def _close_remote(self) -> None:
        """The writer encodes the last rows and closes the file, which must hold exactly
        the samples the tap counted."""
        done = self.remote.close_file()
        if done["rows"] != self.n_samples:
            raise ValueError(f"the writer read {done['rows']} samples back from the journal, "
                             f"the run wrote {self.n_samples}")
        self.means.sums = done["sums"]

    # -- the end ---------------------------------------------------------------------------
    def fail(self, why: str) -> None:
        if self.error is None:
            self.error = why

    def _seal(self) -> None:
        """No more samples: the last row group out, then the file closed and fsynced."""
        if not self._sealed:
            self._flush()
            self._sealed = True
            if self.remote is not None:  # every sample is before the record seen last
                self._queue.put(_ReadTo(self.journal_bytes))
            self._queue.put(_CLOSE)

    def _stop_encoder(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._encoder.join()
            if self._filling is not None:
                self._free.put(self._filling)
                self._filling = None
            while not self._free.empty():  # every buffer is back: keep them for the next run
                _give_back(self._free.get())

    def _release_writer(self) -> None:
        """Let another run take the writer process, once this run's file there is closed
        or abandoned (a process's runs share one: store/shared_writer.py)."""
        if self.remote is not None and not self._released:
            self._released = True
            self.remote.release()

    def finish(self) -> dict[str, Any] | None:
        """Write the timeseries (fsynced, not yet renamed) if the tap saw the whole journal.

        Returns what `finalize` needs, or None (nothing left behind) when the tables
        must be rebuilt from the journal instead.
        """
        try:
            size = (self.run_dir / JOURNAL_NAME).stat().st_size
        except OSError:
            size = -1
        if size != self.journal_bytes:
            self.fail("the journal holds records the tables did not see")
        if self.tracker.open:
            self.fail("a step never ended")  # finalize summarises it from its samples
        if self.error is None:
            try:
                self._seal()
            except Exception as exc:
                self.fail(f"live tables: {exc}")
        self._stop_encoder()
        if self.error is None and not self._written:
            self.fail("live tables: the file was not completed")
        if self.error is not None:
            self.abandon()
            return None
        self._release_writer()  # the file is closed: finalize's frames need no claim
        return {"tmp": self.tmp, "tracker": self.tracker, "means": self.means,
                "events": self.events, "n_samples": self.n_samples,
                "file_bytes": self.journal_bytes, "last_record": self.last_record}

    def abandon(self) -> None:
        """Stop and remove the temporary file (safe to call more than once)."""
        self.fail("abandoned")
        self._stop_encoder()
        if self.remote is not None and not self._released:
            self.remote.abandon_file()  # still ours: no other run's file can be open there
        self._release_writer()
        try:
            if self._writer is not None:
                self._writer.close()
        except Exception:  # the file goes anyway
            pass
        try:
            self.tmp.unlink()
        except OSError:
            pass


def _row_group_rows() -> int:
    """tables.ROW_GROUP_ROWS (tests change it there), read without importing tables (and
    pyarrow) on this thread: the table writer's lookup, which the writer's buffers follow."""
    return row_group_rows()
