"""The table writer of a long-lived process: one child, started on first use, kept for
its later runs.

`labctl run` forks its table writer (store/table_writer.py) as the command starts. A
program that calls `start_run` itself -- a notebook, a pytest session, a Dask worker,
the worker processes of `labctl run` on several channels -- has threads and a large
heap by then, where a fork is not safe. Without a writer, the run's Parquet timeseries
is encoded on a thread of its own process, and that thread's share of the GIL is taken
from the engine's: a 100-cycle simulated run took 0.31 s with a writer process against
0.37 s without (medians, 6 interleaved processes each; the engine's thread used ~10 %
less CPU).

So the first run of such a process starts the writer as a fresh interpreter
(`subprocess`, Linux only, like the fork): with the parent's -I, -E, -s, -S, -B and `-P`
(nothing from the working folder is imported), labctl imported from where the parent
has it, only the writer's two pipe ends passed on, in a session of its own (a Ctrl-C at
the terminal is the run's to handle, not the writer's). Starting it costs ~35 ms plus
its imports, all in the child while the first run goes on. Later runs reuse it. A run
that finds it busy (another channel of the process has it) encodes on a thread; one
that finds it gone starts another, up to MAX_STARTS in all. It ends when this process
closes its pipe: at exit, or when this process dies. A process forked from this one
(multiprocessing's fork) closes its inherited copy of the pipe at once and starts its
own writer if it runs anything.

`LABCTL_TABLE_WRITER=thread` keeps every in-process run on a thread (no child process).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from pathlib import Path

from labctl.store.table_writer import TableWriter, row_group_rows

ENV_VAR = "LABCTL_TABLE_WRITER"
# A writer that keeps dying (a broken pyarrow, a sandbox without fork/exec) is not started
# over and over: after this many, the runs of this process use a thread.
MAX_STARTS = 3

_lock = threading.Lock()
_writer: TableWriter | None = None
_starts = 0
_exit_hook = False

# The child: labctl from where this process has it (a checkout, not necessarily the
# installed one; its modules then come from that package's folder, so the folder is
# taken off sys.path again), then the writer's loop; it never returns.
_CHILD = ("import sys; sys.path.insert(0, {root!r}); import labctl; del sys.path[0]; "
          "from labctl.store.table_writer import _child_main; "
          "_child_main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))")


def shared_writer() -> TableWriter | None:
    """This process's table writer, started now if it has none (or its last one ended);
    None where there can be none (`LABCTL_TABLE_WRITER=thread`, not Linux, no interpreter
    to start, MAX_STARTS used up): the run then encodes on a thread."""
    global _writer, _starts, _exit_hook
    if os.environ.get(ENV_VAR, "").strip().lower() == "thread":
        return None
    with _lock:
        if _writer is not None and _writer.alive:
            return _writer
        if _writer is not None:
            _writer.close()  # reaps the child on a thread
            _writer = None
        if _starts >= MAX_STARTS:
            return None
        _starts += 1
        _writer = spawn_writer(row_group_rows())
        if _writer is not None and not _exit_hook:
            atexit.register(_close_at_exit)
            _exit_hook = True
        return _writer


def running_writer() -> TableWriter | None:
    """The shared writer if one is running now (none is started)."""
    writer = _writer
    return writer if writer is not None and writer.alive else None


def spawn_writer(rows: int) -> TableWriter | None:
    """A writer process started as a fresh interpreter, or None if it cannot be started.
    Linux only: the child reads the journal with `os.preadv`, and a writer that failed
    where it is missing would fail silently, run after run."""
    import subprocess

    if not sys.executable or not sys.platform.startswith("linux"):
        return None
    # The parent's choices of where modules come from; not its -W or -X options (under
    # -W error a warning while pyarrow imports would end the writer, run after run).
    flags = [flag for flag, on in (("-I", sys.flags.isolated), ("-E", sys.flags.ignore_environment),
                                   ("-s", sys.flags.no_user_site), ("-S", sys.flags.no_site),
                                   ("-B", sys.flags.dont_write_bytecode)) if on]
    fds: list[int] = []
    try:
        fds += os.pipe()  # requests: the child reads fds[0]
        fds += os.pipe()  # replies: the child writes fds[3]
        requests, to_child, from_child, replies = fds
        root = str(Path(__file__).resolve().parents[2])
        process = subprocess.Popen(
            [sys.executable, *flags, "-P", "-c", _CHILD.format(root=root), str(requests),
             str(replies), str(rows)],
            pass_fds=(requests, replies), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    except (OSError, ValueError, subprocess.SubprocessError):
        for fd in fds:
            os.close(fd)
        return None
    os.close(requests)
    os.close(replies)
    return TableWriter(process.pid, to_child, from_child, rows, process=process)


def _close_at_exit() -> None:
    """Close the pipe (the child ends) and wait for it briefly: no zombie, and no
    "still running" warning from subprocess at the interpreter's end."""
    writer = _writer
    if writer is None:
        return
    writer.close(reap=False)
    try:
        writer.process.wait(timeout=2.0)
    except Exception:  # it has nothing left to do: end it
        try:
            writer.process.kill()
            writer.process.wait(timeout=2.0)
        except Exception:
            pass


def _forget_after_fork() -> None:
    """In a forked child: the writer, its pipe and the lock are the parent's."""
    global _writer, _lock, _starts
    _lock = threading.Lock()
    writer, _writer, _starts = _writer, None, 0
    if writer is not None:
        writer.forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
