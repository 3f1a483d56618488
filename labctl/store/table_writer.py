"""A run's Parquet files encoded in a child process: how a run keeps pyarrow out.

Importing pyarrow and pyarrow.parquet is ~50 ms of Python that holds the GIL (measured
with `python -X importtime`; `pyarrow.fs` with ssl ~12 ms of it). In one process it runs
on the live tables' thread while the engine's thread simulates and journals, so the
engine waits for the GIL. `labctl run` therefore forks this writer as the command
starts, before it imports anything heavy: the child imports pyarrow on the other core
while the parent imports numpy and labctl. Then it reads the samples back from the
journal as the run writes it -- mostly from the page cache, 8 MB at a time, on its own
core, each record's CRC checked -- and encodes them a row group at a time; the parent's `LiveTables` only tells
it how far the journal has grown, once a row group's worth of samples is in. It also
writes the steps and cycles tables. A cycling run's own process never imports pyarrow,
nor copies a sample for the tables (the copy into shared memory it made before cost the
engine's thread ~5 % of a simulated run).

Written here rather than with `multiprocessing` or `concurrent.futures`: their spawn and
forkserver start a fresh interpreter (~35 ms, then the imports again), and their calls
pickle the arguments. A fork made while the process has one thread, and a small message
per row group, cost almost nothing.

A run in a long-lived process (a notebook, a test session, `bench/sim_cycling.py`) gets
its writer from store/shared_writer.py instead: one started as a fresh interpreter, where
a fork would not be safe, and kept for the process's later runs.

The journal stays the record: when the child fails or is gone, the live tables give up
and `finalize` rebuilds the tables from the journal in the parent, as after any failed
tap. The child ignores Ctrl-C (the parent stops the run and still needs the tables) and
ends when the parent closes its end of the pipe or dies.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

# Forked before numpy is imported: the less the parent holds at the fork, the fewer pages
# the two processes copy as they write to them afterwards (copy-on-write).
ROW_GROUP_ROWS = 65_536  # = store.summaries.ROW_GROUP_ROWS (importing it imports numpy)
_HEADER = struct.Struct("!Q")
READ_CHUNK = 8 << 20  # journal bytes the writer reads back at a time


class TableWriterError(Exception):
    """The child could not do what was asked (its message says why), or it is gone."""


def row_group_rows() -> int:
    """ROW_GROUP_ROWS where tests change it (tables, else summaries), if loaded, without
    importing them (numpy, pyarrow). getattr: another thread may be importing the module
    right now, and a module is in sys.modules before it has its names."""
    for name in ("labctl.store.tables", "labctl.store.summaries"):
        rows = getattr(sys.modules.get(name), "ROW_GROUP_ROWS", None)
        if rows:
            return rows
    return ROW_GROUP_ROWS


def _fork_is_safe() -> bool:
    """Linux, and this process has no other thread (a fork copies only the calling one;
    a lock another thread held would stay locked in the child). /proc counts the threads
    of compiled libraries too (OpenBLAS), which `threading` does not see."""
    if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return False
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


class TableWriter:
    """The parent's handle on the writer process (see the module doc)."""

    def __init__(self, pid: int, to_child: int, from_child: int, rows: int,
                 process: Any = None):
        self.pid, self.rows = pid, rows
        self._to, self._from = to_child, from_child
        self._lock = threading.Lock()
        self._gone: str | None = None
        self._taken = False
        # The subprocess.Popen of a writer started as a fresh interpreter
        # (store/shared_writer.py), which may end between two runs; None for a fork.
        self.process = process

    @classmethod
    def fork(cls, rows: int | None = None) -> TableWriter | None:
        """Start the writer process, or None where a fork is not safe (then the tables are
        encoded on a thread of this process, as for in-process runs). `rows`: of a row
        group (default: the size the live tables will use)."""
        if not _fork_is_safe():
            return None
        rows = rows or row_group_rows()
        fds: list[int] = []
        try:
            fds += os.pipe()  # requests (the child reads), to_child
            fds += os.pipe()  # from_child, replies (the child writes)
            pid = os.fork()
        except OSError:
            for fd in fds:
                os.close(fd)
            return None
        requests, to_child, from_child, replies = fds
        if pid == 0:  # the child: never returns
            os.close(to_child)
            os.close(from_child)
            _child_main(requests, replies, rows)
        os.close(requests)
        os.close(replies)
        return cls(pid, to_child, from_child, rows)

    # -- the timeseries --------------------------------------------------------------------
    def take(self, rows: int) -> bool:
        """Claim the writer for one run's timeseries (False: in use, gone, or made for
        another row-group size)."""
        with self._lock:
            if self._taken or not self.alive or rows != self.rows:
                return False
            self._taken = True
            return True

    def release(self) -> None:
        self._taken = False

    def open_file(self, path: Path, journal: Path) -> None:
        """Start the timeseries file `path` from the samples of `journal`, read from its
        start as it grows."""
        self._call(("open", str(path), str(journal)))

    def read_journal(self, end: int) -> None:
        """Read the journal's records up to byte `end` (the end of a whole record) and
        encode every full row group of samples."""
        self._call(("upto", end))

    def close_file(self) -> dict[str, Any]:
        """Encode the last rows, close the file and fsync it. Returns {"sums": its cycle
        means' sums (`_CycleMeans.sums`), "rows": the samples it holds}."""
        return self._call(("close",))

    def abandon_file(self) -> None:
        """Close the file, if one is open, without caring whether it is complete."""
        try:
            self._call(("abandon",))
        except TableWriterError:
            pass

    def write_frames(self, frames: Sequence[tuple[Path, dict[str, np.ndarray]]]) -> None:
        """Small tables (columns) as Parquet files, each replaced atomically and fsynced,
        side by side; the caller fsyncs their folder."""
        self.start_frames(frames)()

    def start_frames(self, frames: Sequence[tuple[Path, dict[str, np.ndarray]]]
                     ) -> Callable[[], None]:
        """`write_frames` in two halves: the request goes now, and the function returned
        waits for the files (TableWriterError if they could not be written). The caller
        works meanwhile; until it calls that function, nothing else can be asked."""
        return self._send_request(("frames", [(str(p), cols) for p, cols in frames]))

    @property
    def alive(self) -> bool:
        if self._gone is None and self.process is not None and self.process.poll() is not None:
            self._gone = "the table writer process ended"
        return self._gone is None

    # -- the pipe --------------------------------------------------------------------------
    def _call(self, request: tuple) -> Any:
        return self._send_request(request)()

    def _send_request(self, request: tuple) -> Callable[[], Any]:
        """Send `request`; the function returned waits for the reply and gives its value.
        The pipe is ours from the send until the reply is read. Anything that cuts a send
        or a read short (Ctrl-C, a failed pickle) leaves the pipe out of step: the writer
        then counts as gone, and the lock is released whatever happens."""
        self._lock.acquire()
        try:
            if self._gone is not None:
                raise TableWriterError(self._gone)
            _send(self._to, request)
        except TableWriterError:
            self._lock.release()
            raise
        except BaseException as exc:
            self._gone = f"the table writer process failed ({exc!r})"
            self._lock.release()
            if isinstance(exc, OSError):
                raise TableWriterError(self._gone) from None
            raise

        def reply() -> Any:
            try:
                answer = _receive(self._from)
            except BaseException as exc:
                self._gone = f"the table writer process failed ({exc!r})"
                if isinstance(exc, OSError):
                    answer = None
                else:
                    raise
            finally:
                self._lock.release()
            if answer is None:
                self._gone = self._gone or "the table writer process ended"
                raise TableWriterError(self._gone)
            status, value = answer
            if status != "ok":
                raise TableWriterError(value)
            return value

        return reply

    def close(self, timeout_s: float = 5.0, reap: bool = True) -> None:
        """End the child: it exits when its pipe closes. A daemon thread reaps it, so the
        command need not wait while the kernel tears the child down (~8 ms, measured).
        `reap=False` where this process ends right after (the `labctl` command itself):
        the child is then reaped by the system, and no thread is started (starting one
        waits for it to be scheduled: ~2 ms on a busy 2-core machine, measured)."""
        # Never waits long for the pipe: a call cut short elsewhere must not hang the
        # command's exit (closing the pipe ends the child, and any reader with it).
        locked = self._lock.acquire(timeout=1.0)
        try:
            if self._gone is None:
                self._gone = "the table writer process was closed"
            self._close_pipe()
        finally:
            if locked:
                self._lock.release()
        if reap:
            # Through its Popen where there is one: Popen must see the exit it reaps (else
            # "still running" warnings, and a kill that could reach a reused pid).
            target, args = ((_reap_process, (self.process, timeout_s)) if self.process is not None
                            else (_reap, (self.pid, timeout_s)))
            threading.Thread(target=target, args=args, daemon=True,
                             name="table-writer-reaper").start()

    def forget(self) -> None:
        """In a process forked from the one that owns this writer: close the inherited pipe
        ends without a word (the writer is the parent's; it must still see its pipe close
        when the parent ends)."""
        self._gone = "the table writer belongs to the parent process"
        self._lock = threading.Lock()  # another thread may have held it at the fork
        self._close_pipe()

    def _close_pipe(self) -> None:
        for fd in (self._to, self._from):
            try:
                os.close(fd)
            except OSError:
                pass
        self._to = self._from = -1


def _reap(pid: int, timeout_s: float) -> None:
    """Wait for the child's exit (no zombie in a long-lived process); kill it if it does
    not end in time (its pipe is closed, so it has nothing left to do)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        if time.monotonic() > deadline:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            return
        time.sleep(0.005)


def _reap_process(process: Any, timeout_s: float) -> None:
    try:
        process.wait(timeout=timeout_s)
    except Exception:  # its pipe is closed, so it has nothing left to do
        try:
            process.kill()
            process.wait(timeout=timeout_s)
        except Exception:
            pass


def _send(fd: int, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _read_exactly(fd: int, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _receive(fd: int) -> Any:
    """The next message, or None when the other end has closed the pipe."""
    header = _read_exactly(fd, _HEADER.size)
    if header is None:
        return None
    data = _read_exactly(fd, _HEADER.unpack(header)[0])
    return None if data is None else pickle.loads(data)


# -- the child -------------------------------------------------------------------------------

def _child_main(requests: int, replies: int, rows: int) -> None:
    status = 0
    try:
        # Ctrl-C reaches the whole process group: the parent makes the run safe and then
        # still needs this process to finish its tables.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _detach_standard_streams()
        _Server(requests, replies, rows).serve()
    except BaseException:
        status = 1
    finally:
        os._exit(status)  # never the parent's exit handlers, buffers or teardown


def _detach_standard_streams() -> None:
    """Let go of the terminal or pipes the command writes to: a caller reading them to
    the end (`subprocess.run`, `| tee`) then need not wait for this process too. It never
    prints; a failure shows as the parent falling back to the journal."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


class _Server:
    def __init__(self, requests: int, replies: int, rows: int):
        # Imported now, while the parent imports its own modules on the other core.
        import numpy as np
        import pyarrow as pa

        from labctl.records import SAMPLE_COLUMNS
        from labctl.store.arrow_columns import to_arrow
        from labctl.store.summaries import _CycleMeans
        from labctl.store.tables import ARROW_SCHEMA, _parquet_writer, write_frame

        self.pa, self.to_arrow, self.schema = pa, to_arrow, ARROW_SCHEMA
        self.new_means = _CycleMeans
        self.means = _CycleMeans()
        self.means_of = [(k, name) for k, name in enumerate(SAMPLE_COLUMNS)
                         if name in _CycleMeans.COLUMNS]
        self.new_writer, self.write_frame = _parquet_writer, write_frame
        self.requests, self.replies = requests, replies
        self.group = [np.empty(rows, dtype=dtype) for dtype in SAMPLE_COLUMNS.values()]
        self.filled = 0  # rows of `group` waiting for the next row group
        self.rows = 0  # rows of the file, encoded or waiting
        self.reader: _JournalTail | None = None
        self.writer: Any = None
        self.fd = -1
        self.written_back = 0

    def serve(self) -> None:
        while True:
            request = _receive(self.requests)
            if request is None:
                return
            try:
                reply = ("ok", getattr(self, f"_{request[0]}")(*request[1:]))
            except Exception as exc:
                reply = ("error", str(exc) or type(exc).__name__)
            _send(self.replies, reply)

    def _open(self, path: str, journal: str) -> None:
        self._abandon()
        self.writer = self.new_writer(path)
        self.fd = os.open(path, os.O_RDONLY)  # to start each row group's writeback
        self.reader = _JournalTail(journal)
        self.written_back = self.filled = self.rows = 0
        self.means = self.new_means()

    def _upto(self, end: int) -> None:
        """The journal's sample blocks up to byte `end`, into row groups."""
        for n, cols in self.reader.samples_until(end):
            lo = 0
            while lo < n:
                m = min(n - lo, len(self.group[0]) - self.filled)
                for dest, col in zip(self.group, cols, strict=True):
                    dest[self.filled:self.filled + m] = col[lo:lo + m] if col.ndim else col
                self.filled += m
                lo += m
                if self.filled == len(self.group[0]):
                    self._encode()
            self.rows += n

    def _encode(self) -> None:
        from labctl.store.disk_hints import start_writeback

        cols = [c[:self.filled] for c in self.group]  # Arrow wraps each column, no copy
        self.writer.write_table(self.pa.Table.from_arrays([self.to_arrow(c) for c in cols],
                                                          schema=self.schema))
        # Hand the group to the disk now: the fsync at the end has less to wait for.
        size = os.fstat(self.fd).st_size
        start_writeback(self.fd, self.written_back, size - self.written_back)
        self.written_back = size
        # The cycle means in file order, a row group at a time, as finalize feeds them.
        self.means.feed({name: cols[k] for k, name in self.means_of})
        self.filled = 0

    def _close(self) -> dict[str, Any]:
        if self.filled:
            self._encode()
        self.writer.close()
        self.writer = None
        os.fsync(self.fd)  # the file's data, whichever descriptor wrote it
        os.close(self.fd)
        self.fd = -1
        self.reader.close()
        return {"sums": self.means.sums, "rows": self.rows}

    def _abandon(self) -> None:
        if self.writer is not None:
            try:
                self.writer.close()
            except Exception:  # the caller removes the file
                pass
            self.writer = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.reader is not None:
            self.reader.close()
            self.reader = None

    def _frames(self, frames: list[tuple[str, dict]]) -> None:
        from labctl.store.atomic import side_by_side

        side_by_side(*((self.write_frame, Path(p), cols, False) for p, cols in frames))


class _JournalTail:
    """A journal read from its start as it grows, whole records at a time: the columns of
    each sample block (SAMPLE_COLUMNS order), its CRC checked; events are skipped.

    Read READ_CHUNK bytes at a time (a longer record whole), so memory stays bounded
    however far the parent asks it to read. Usually from the page cache; pages the
    journal's early writeback has already dropped come from the disk.
    Only for a journal this labctl is writing now (its own column layout); anything
    unexpected raises, and the parent then builds the tables from the journal itself."""

    def __init__(self, path: str):
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)
        self.pos = 0
        self.buffer = bytearray()

    def samples_until(self, end: int) -> Iterator[tuple[int, list[Any]]]:
        """The sample blocks up to byte `end` (the end of a whole record), each as (rows,
        columns): arrays, views of a buffer the next read reuses (use each before asking
        for the next), or one scalar for a packed block's constant column."""
        from labctl.store.journal_format import (
            _HEADER,
            _OUR_LAYOUT,
            MAGIC,
            PACKED,
            SAMPLES,
            crc32,
        )

        if end < self.pos:
            raise ValueError(f"{self.path}: asked to read back to byte {end}, before {self.pos}")
        while self.pos < end:
            size = min(end - self.pos, READ_CHUNK)
            view = self._read(size)
            if size >= _HEADER.size:  # a record longer than a chunk: read it whole
                whole = _HEADER.size + _HEADER.unpack_from(view, 0)[2]
                if size < whole <= end - self.pos:
                    size = whole
                    view = self._read(size)
            at = 0
            while at + _HEADER.size <= size:
                magic, kind, length, crc = _HEADER.unpack_from(view, at)
                stop = at + _HEADER.size + length
                if magic != MAGIC or self.pos + stop > end:
                    raise ValueError(f"{self.path}: no whole record at byte {self.pos + at}")
                if stop > size:
                    break  # the rest of it comes with the next chunk
                if kind in (SAMPLES, PACKED):
                    payload = view[at + _HEADER.size:stop]
                    block = payload if kind == SAMPLES else _OUR_LAYOUT.packed(payload)
                    rows = (_OUR_LAYOUT.rows(payload) if kind == SAMPLES
                            else None if block is None else block.n)
                    if rows is None or crc32(payload) != crc:
                        raise ValueError(f"{self.path}: the sample block at byte "
                                         f"{self.pos + at} does not read back as written")
                    # A packed block's constant columns come as one scalar each: the
                    # row group takes them by broadcasting, with no array made for them.
                    yield rows, _OUR_LAYOUT.values_of(block, rows)
                at = stop
            if at == 0:
                raise ValueError(f"{self.path}: no whole record at byte {self.pos}")
            self.pos += at

    def _read(self, size: int) -> memoryview:
        """`size` bytes of the journal from `pos`, into the reused buffer."""
        if len(self.buffer) < size:
            self.buffer = bytearray(max(size, 2 * len(self.buffer)))
        view = memoryview(self.buffer)[:size]
        got = 0
        while got < size:
            n = os.preadv(self.fd, [view[got:]], self.pos + got)
            if n <= 0:
                raise ValueError(f"{self.path}: ends at byte {self.pos + got}, before "
                                 f"{self.pos + size}")
            got += n
        return view

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
