"""One file of labctl's user cache (`$XDG_CACHE_HOME/labctl/...`), read and written by
the rules every such cache keeps.

What these files hold decides what a command does (a parsed procedure, a ceilings
verdict), so a file is used only when it and its folder belong to the user and nobody
else can write them; both are opened without following links; a file is written private
(0600) under a random name and renamed into place; nothing is written under
`PYTHONDONTWRITEBYTECODE`. A missing, foreign or damaged file reads as None: the caller
then works it out again. (dataclass_code_cache.py keeps the same rules, `owned_alone`
among them, with a folder descriptor, for its file per module.)
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path


def supported() -> bool:
    """Whether this platform has the calls that open these files safely."""
    return (hasattr(os, "O_NOFOLLOW") and hasattr(os, "O_DIRECTORY")
            and hasattr(os, "O_NONBLOCK") and hasattr(os, "getuid")
            and os.open in os.supports_dir_fd)


def read_private(folder: Path, name: str) -> bytes | None:
    """The file's bytes, or None (missing, not the user's alone, a link, not a regular
    file, unreadable): see `open_private`."""
    fd = open_private(folder, name)
    if fd is None:
        return None
    try:
        f = os.fdopen(fd, "rb")
    except OSError:
        os.close(fd)
        return None
    try:
        with f:
            return f.read()
    except OSError:
        return None


def open_private(folder: Path, name: str) -> int | None:
    """A descriptor of the file open for reading, or None (missing, not the user's alone,
    a link, not a regular file, unreadable). The folder is opened without following a
    link and checked, and the file opened through it (the folder cannot be swapped between
    the two), without waiting (a FIFO planted in its place must not hang the command), and
    checked once open. The caller closes it."""
    dir_fd = fd = -1
    try:
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        if not private(os.fstat(dir_fd)):
            return None
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
        if not (stat.S_ISREG((st := os.fstat(fd)).st_mode) and private(st)):
            return None
        fd, opened = -1, fd
        return opened
    except OSError:
        return None
    finally:
        for open_fd in (fd, dir_fd):
            if open_fd >= 0:
                os.close(open_fd)


def write_private(folder: Path, name: str, data: bytes) -> None:
    """Replace the file with `data` (failures are ignored: the next process works it out
    again). Nothing is written under PYTHONDONTWRITEBYTECODE."""
    if sys.dont_write_bytecode:
        return
    tmp = folder / f".{name}.{os.urandom(6).hex()}.tmp"
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        if not private(os.stat(folder, follow_symlinks=False)):
            return
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, folder / name)
    except (OSError, ValueError):
        try:
            os.unlink(tmp)
        except OSError:
            pass


def owned_alone(st: os.stat_result) -> bool:
    """Ours, and writable by nobody else."""
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def private(st: os.stat_result) -> bool:
    """Ours alone (`owned_alone`), and not a link."""
    return owned_alone(st) and not stat.S_ISLNK(st.st_mode)
