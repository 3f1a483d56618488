"""Reading files other people may have dropped in place: regular files only, size-capped.

A FIFO, a device (`/dev/zero`) or a socket opened with a plain `open()` blocks for
ever or never ends; with the engine mid-step that would leave a current flowing.
Every file labctl reads on someone else's say-so (control commands, procedure
includes, station/cell/procedure files, cell tables) goes through here: the file is
opened non-blocking, checked to be a regular file on the open descriptor (no race
with a rename), and read up to a cap.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

DEFAULT_MAX_BYTES = 5_000_000


class NotRegularFileError(OSError):
    """The path is a FIFO, device, socket or folder, or the file is larger than allowed."""


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def read_regular_bytes(path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes of `path` if it is a regular file of at most `max_bytes`; else OSError.

    Raises FileNotFoundError as `open` does, and NotRegularFileError (an OSError whose
    message says what the path is) for anything else than a small regular file.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFileError(f"{path} is {_kind(info.st_mode)}; only regular files are read")
        if info.st_size > max_bytes:
            raise NotRegularFileError(f"{path} is larger than {max_bytes} bytes")
        chunks = []
        total = 0
        while True:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:  # it grew while we read it
                raise NotRegularFileError(f"{path} is larger than {max_bytes} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_regular_text(path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """`read_regular_bytes` decoded as UTF-8 (UnicodeDecodeError when it is not)."""
    return read_regular_bytes(path, max_bytes).decode("utf-8")


def os_error_text(exc: OSError) -> str:
    """A short reason for an OSError from the functions above (no repr, no errno noise)."""
    if isinstance(exc, NotRegularFileError):
        return str(exc)
    return exc.strerror or str(exc)
