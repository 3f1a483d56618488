"""End a `labctl` process as soon as its command is done, without CPython's teardown."""

from __future__ import annotations

import atexit
import os
import sys
import threading


def exit_code(stop: SystemExit) -> int | None:
    """The status `SystemExit(stop.code)` ends the process with, or None where the
    interpreter would also print something (a message as the code)."""
    code = stop.code
    if code is None:
        return 0
    if isinstance(code, int) and not isinstance(code, bool) and 0 <= code <= 255:
        return code
    return None


def leave_now(stop: SystemExit) -> None:
    """Exit with `stop`'s status at once: exit handlers run, standard streams are flushed,
    and the interpreter's teardown is skipped.

    Teardown frees every object one by one (modules, numpy and pyarrow state, what a run
    left) just before the operating system releases the whole process anyway: ~15-25 ms
    at the end of `labctl run` (measured). Files labctl writes are closed and fsynced
    before a command returns, so nothing waits on it. Returns (and the caller lets the
    normal exit happen) when that would not be the same: labctl is not the program (a
    profiler, tracer, debugger or another program runs it and has work to do after it),
    a non-daemon thread still running (the interpreter would wait for it), a status that
    is a message, or a standard stream that cannot be flushed.
    """
    status = exit_code(stop)
    if status is None or not labctl_is_the_program():
        return
    main = threading.main_thread()
    if any(t is not main and not t.daemon and t.is_alive() for t in threading.enumerate()):
        return
    atexit._run_exitfuncs()  # what registered for exit (temporary folders, Dask, ...) still runs
    try:
        for stream in {id(s): s for s in (sys.stdout, sys.stderr, sys.__stdout__,
                                          sys.__stderr__) if s is not None}.values():
            stream.flush()
    except Exception:  # the normal exit flushes again and reports it
        return
    _flush_c_streams()
    os._exit(status)


def labctl_is_the_program() -> bool:
    """True when the process is the `labctl` command itself: started as the console
    script or `python -m labctl.cli`, with no profiler or tracer (cProfile, coverage, pdb,
    trace write their results after the program returns)."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        return False
    main = sys.modules.get("__main__")
    if getattr(getattr(main, "__spec__", None), "name", None) == "labctl.cli":
        return True  # python -m labctl.cli
    entry = getattr(main, "console", None)  # the console script: from labctl.cli import console
    return getattr(entry, "__module__", None) == "labctl.cli" and \
        getattr(entry, "__qualname__", None) == "console"


def _flush_c_streams() -> None:
    # What a compiled library printed through C's stdio is still in libc's buffers, which
    # only the C library's own exit flushes. ctypes is loaded already wherever numpy is.
    ctypes = sys.modules.get("ctypes")
    if ctypes is None:
        return
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError, TypeError):
        pass
