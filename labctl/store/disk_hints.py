"""Hints to the operating system about files the store is writing: start their writeback
early, and reserve disk blocks ahead of a growing file. Neither changes a byte of the
file nor its size; on a system or file system without them they do nothing.
"""

from __future__ import annotations

import os
import sys
from typing import Any

_FALLOC_FL_KEEP_SIZE = 0x01  # linux/falloc.h: allocate past the end, the size stays
_fallocate: Any = None  # libc's fallocate, looked up on first use (False: not available)


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing a file's range to disk without waiting for it (best effort).

    POSIX_FADV_DONTNEED makes Linux submit the range's dirty pages for writeback (and
    forget the clean ones: only `labctl run`'s table writer reads them back, mostly
    before they are written out, else from the disk). It is no fsync: durability still
    comes from the fsyncs."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is None:
        return
    try:
        advise(fd, offset, length, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass


def reserve_ahead(fd: int, offset: int, length: int) -> bool:
    """Allocate the file's disk blocks for bytes offset..offset+length, past its end,
    without changing its size (Linux `fallocate` with FALLOC_FL_KEEP_SIZE). True if done.

    Why: appending to a file whose blocks are not yet allocated costs the kernel a
    delayed-allocation reservation for every page written. Measured on ext4 (Linux 6.18):
    `writev` of a 100-cycle run's 68 MB journal took 24 ms, 16 ms with its blocks
    reserved ahead, and the whole run ~4 % less CPU on the engine's thread. A reader sees
    no difference: the size, and so every reader's end of file, is unchanged.
    `release_reserved` gives back what the file did not use. os.posix_fallocate cannot
    do this: it extends the file.
    """
    call = _libc_fallocate()
    if call is None:
        return False
    import ctypes

    return call(fd, _FALLOC_FL_KEEP_SIZE, ctypes.c_int64(offset), ctypes.c_int64(length)) == 0


def release_reserved(fd: int, size: int) -> None:
    """Free blocks reserved past `size`, the file's end (a truncation to its own size)."""
    try:
        os.ftruncate(fd, size)
    except OSError:
        pass  # only disk space is at stake, never data


def _libc_fallocate() -> Any:
    global _fallocate
    if _fallocate is None:
        _fallocate = False
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                # ctypes releases the GIL for the call: the engine's thread runs on.
                _fallocate = ctypes.CDLL(None, use_errno=True).fallocate
            except (OSError, AttributeError):
                pass
    return _fallocate or None
