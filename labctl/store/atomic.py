"""Atomic file replacement: readers see the old file or the new one, never half of one.

Write to a temporary file in the same directory, fsync it, `os.replace` it over
the target, then fsync the directory so the rename itself survives a power cut.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from labctl.errors import LabctlError

_HINTS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EIO: "input/output error (failing disk?)",
}


def describe_os_error(exc: OSError) -> str:
    """A short, plain reason for a failed file operation."""
    return _HINTS.get(exc.errno or 0, exc.strerror or str(exc))


_UMASK_LOCK = threading.Lock()


def _set_and_restore_umask() -> int:
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


# Without /proc (macOS, BSD) the umask can only be read by setting it, which changes it
# for every thread for an instant: files another channel's thread creates then would get
# 0o022. So it is read once, here, at import (before any run's threads start).
_UMASK_AT_IMPORT = None if os.path.exists("/proc/self/status") else _set_and_restore_umask()


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (/proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return _UMASK_AT_IMPORT if _UMASK_AT_IMPORT is not None else _set_and_restore_umask()


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in `path` durable (best effort where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path, sync_dir: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path` atomically.

    Whatever the body writes to the temporary path (for writers that want a file
    name, such as Parquet writers) is fsynced and renamed over `path` only when
    the body returns; if it raises, the temporary file is removed and `path` is
    untouched. `sync_dir=False` leaves the folder's fsync (which makes the rename
    durable) to the caller, who does it once after several files.
    """
    path = Path(path)
    try:
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            # mkstemp makes 0600 files; results are shared with colleagues through the
            # folder's permissions, so give the file what a plain open() would (the umask).
            os.fchmod(fd, 0o666 & ~current_umask())
        finally:
            os.close(fd)
    except OSError as exc:
        raise LabctlError(f"{path}: cannot write ({describe_os_error(exc)})") from None
    tmp = Path(tmp_name)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise LabctlError(f"{path}: cannot write ({describe_os_error(exc)}); "
                              "the previous version is unchanged") from None
        raise
    if sync_dir:
        fsync_dir(path.parent)


def remove_stale_temp_files(folder: str | Path, before: float | None = None) -> list[str]:
    """Remove the temporary files `atomic_path` left in `folder` when its process was
    killed between creating and renaming them (e.g. SIGKILL during finalize).

    Only for a folder no live process writes to (a run being resumed), or, with `before`
    (a `time.time()`), only the files last written before then: a writer that has just
    replaced every file of the folder knows those belong to a writer that died (or that
    raced it and loses to it). Returns the names.
    """
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        try:
            if tmp.is_symlink() or not tmp.is_file():
                continue
            if before is not None and tmp.stat().st_mtime >= before:
                continue
            tmp.unlink()
            removed.append(tmp.name)
        except OSError:
            pass  # a leftover that cannot be removed is harmless
    return removed


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_stream(path: str | Path, chunks: Iterable[bytes], sync_dir: bool = True) -> None:
    """Replace `path` atomically with the concatenation of `chunks` (`sync_dir`: see
    `atomic_path`)."""
    with atomic_path(path, sync_dir=sync_dir) as tmp, open(tmp, "wb") as f:
        for chunk in chunks:
            f.write(chunk)


def atomic_write_bytes(path: str | Path, data: bytes, sync_dir: bool = True) -> None:
    """Replace `path` atomically with `data` (`sync_dir`: see `atomic_path`)."""
    atomic_write_stream(path, (data,), sync_dir=sync_dir)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Replace `path` atomically with `obj` as indented JSON (NaN allowed, unknown types as str)."""
    text = json.dumps(obj, indent=2, default=_json_default, allow_nan=True)
    atomic_write_bytes(path, text.encode() + b"\n")


def _json_default(obj: Any) -> Any:
    item = getattr(obj, "item", None)  # numpy scalars
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            pass
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return tolist()
    return str(obj)


def side_by_side(*calls: tuple) -> None:
    """Run each (function, *args) at once, the first on this thread; raise the first error.

    For writes that each wait for the disk (fsync): their waits overlap, and the file
    system commits them together."""
    errors: list[BaseException] = []

    def run(call: tuple) -> None:
        try:
            call[0](*call[1:])
        except BaseException as exc:  # re-raised on the calling thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls[1:]]
    for t in threads:
        t.start()
    run(calls[0])
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
