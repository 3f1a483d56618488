"""The simulator's table of standard normal draws, from which sim/measure.py takes its
noise: 2^20 float32 values from a fixed seed, made once per process.

The `labctl` command also keeps a copy in the user's cache and reads it back on later
starts (`prefetch(keep=True)`). Making the table costs ~10 ms of CPU and, in a fresh
process, ~1,000 first touches of new memory (page faults, dear on virtual machines):
together ~20 ms that every `labctl run` of a noisy simulated cycler paid, on a second
core that the table writer process needs at the same time (measured: ~16 ms of the
command's wall time). Reading the kept copy costs ~1.5 ms.

The copy is used only when it is the same table: its name carries how the values are made
(`METHOD`, the seed, the size) and numpy's version (numpy does not promise the same draws
from one version to the next), its CRC-32 must match (a damaged or cut file is ignored, and
made and kept again), and its first 4,096 values must look like standard normal draws (a
table of zeros or of another scale, whole and with its CRC, is not used). The first draws
are not compared with the generator's: that imports `numpy.random` (6-10 ms), which a
simulated run otherwise does without (sim/pcg64.py). It is read into memory, not mapped: a
mapped file cut by someone meanwhile would kill the process with SIGBUS. The file rules
are those of every labctl cache file (private_cache.py): the user's alone, no links, not
written under PYTHONDONTWRITEBYTECODE; little-endian machines only.
"""

from __future__ import annotations

import os
import struct
import sys
import threading
from pathlib import Path

import numpy as np

SIZE = 1 << 20
SEED = 0x1ABC71  # fixed: the table is part of the simulator, like its model tables
# How `generate` makes the values: part of the kept copy's name, so a change here (another
# generator, distribution or dtype) must change it too.
METHOD = "pcg64-standard-normal"
_MAGIC = b"LNT1"
_HEADER = struct.Struct("<4sI")  # magic, CRC-32 of the values

_table: np.ndarray | None = None
_builder: threading.Thread | None = None


def table() -> np.ndarray:
    """The table (float32: plenty for noise decades below the signal)."""
    if _table is None:
        builder = _builder
        if builder is not None:
            # Not forever: a cache folder on a hung network home must not stop the run.
            builder.join(_WAIT_S)
        if _table is None:
            _install(generate())
    assert _table is not None
    return _table


def generate() -> np.ndarray:
    """The table, made afresh from its seed."""
    values = _empty_table()
    np.random.Generator(np.random.PCG64(SEED)).standard_normal(dtype=np.float32, out=values)
    return values


def _empty_table() -> np.ndarray:
    """Room for the table, on 2 MB boundaries. numpy asks the system for huge pages for
    arrays of 4 MB and more, which it grants only for the whole 2 MB pages inside: laid
    out this way the table's 4 MB are first touched in 2 page faults instead of ~500
    (~4 us each on a virtual machine; reading the kept copy 3.2 -> 1.4 ms, measured)."""
    huge = 2 << 20
    raw = np.empty(SIZE * 4 + huge, dtype=np.uint8)
    start = -raw.__array_interface__["data"][0] % huge
    return raw[start:start + SIZE * 4].view(np.float32)


def prefetch(keep: bool = False) -> None:
    """Have the table ready on another thread (numpy's generator fills it without the GIL,
    so on a second core it is there by the first batch of a run). `keep`: read it from the
    user's cache, and put it there when it had to be made (the `labctl` command)."""
    global _builder
    if _table is not None or _builder is not None:
        return
    builder = threading.Thread(target=_load_or_make, args=(keep,), name="sim-noise-table",
                               daemon=True)
    try:
        builder.start()
    except RuntimeError:  # no thread to be had: `table()` makes it when needed
        return
    _builder = builder
    if keep:
        # The command ends with os._exit (process_exit.leave_now), which does not wait
        # for daemon threads but runs exit handlers: without this a short command (one
        # refused at a ceiling) could end the thread halfway through writing the copy.
        import atexit

        atexit.register(builder.join, _WAIT_S)


_WAIT_S = 2.0  # the longest wait for the thread (at the first batch, at exit)


def _load_or_make(keep: bool) -> None:
    # Whatever goes wrong here (a full disk, no memory), `table()` finds no table and
    # makes it on the caller's thread: the run goes on.
    try:
        kept = read_kept() if keep else None
        if kept is not None:
            _install(kept)
            return
        made = generate()
        _install(made)
        if keep:
            write_kept(made)
    except Exception:  # noqa: S110 - the table is made again where it is needed
        pass


def _install(values: np.ndarray) -> None:
    """The first table made or read stays: a run's noise never switches tables."""
    global _table
    values.flags.writeable = False  # shared by every channel of the process
    with _install_lock:
        if _table is None:
            _table = values


_install_lock = threading.Lock()


# -- the copy in the user's cache -----------------------------------------------------------

def cache_folder() -> Path:
    from labctl.dataclass_code_cache import labctl_cache_root

    return labctl_cache_root() / "sim"


def cache_name() -> str:
    return f"normal-table-{METHOD}-{SEED:x}-{SIZE}-f32le-numpy-{np.__version__}.bin"


def read_kept() -> np.ndarray | None:
    """The kept table, or None (none kept, not the user's alone, damaged, another size,
    or values that are not standard normal draws)."""
    from labctl.private_cache import open_private, supported

    if sys.byteorder != "little" or not supported():
        return None
    values = _empty_table()
    fd = open_private(cache_folder(), cache_name())
    if fd is None:
        return None
    header = bytearray(_HEADER.size)
    try:
        whole = (_read_into(fd, memoryview(header)) == _HEADER.size
                 and _read_into(fd, memoryview(values).cast("B")) == values.nbytes
                 and not os.read(fd, 1))  # and nothing after the values
    except OSError:
        return None
    finally:
        os.close(fd)
    if not whole:
        return None
    magic, crc = _HEADER.unpack(header)
    if magic != _MAGIC or crc != _crc32(values):
        return None
    # The CRC shows the file is whole, not what it holds: its start must at least look
    # like standard normal draws (mean and spread of 4,096 values, ~10 us; draws of this
    # size stray that far, 0.1 in the mean and 5 % in the spread, at over 4 sigma).
    head = values[:_SPOT].astype(np.float64)
    if not (abs(float(head.mean())) < 0.1 and abs(float(head.std()) - 1.0) < 0.05):
        return None
    return values


_SPOT = 4096


def _read_into(fd: int, view: memoryview) -> int:
    """Bytes read into `view` (fewer only at the end of the file)."""
    got = 0
    while got < len(view):
        n = os.readv(fd, [view[got:]])
        if n <= 0:
            break
        got += n
    return got


def write_kept(values: np.ndarray) -> None:
    """Keep the table in the user's cache (failures are ignored; nothing is written under
    PYTHONDONTWRITEBYTECODE)."""
    from labctl.private_cache import supported, write_private

    if sys.byteorder != "little" or not supported():
        return
    data = _HEADER.pack(_MAGIC, _crc32(values)) + values.tobytes()
    write_private(cache_folder(), cache_name(), data)
    _remove_other_tables()


def _remove_other_tables() -> None:
    """Copies kept under the name labctl used before `METHOD` was part of it (4 MB each)
    go once this one is kept (best effort, only from a folder that is ours). Copies for
    other numpy versions stay: two environments sharing the cache each keep theirs."""
    from labctl.private_cache import private

    if sys.dont_write_bytecode:  # the cache is left as it is, as for writing
        return
    folder = cache_folder()
    try:
        if not (folder / cache_name()).is_file() or \
                not private(os.stat(folder, follow_symlinks=False)):
            return
        old = list(folder.glob(f"normal-table-{SEED:x}-{SIZE}-f32le-numpy-*.bin"))
    except OSError:
        return
    for path in old:
        try:
            path.unlink()
        except OSError:  # a folder of that name, a file being removed meanwhile: left
            pass


def _crc32(values: np.ndarray) -> int:
    try:  # ~10x zlib's speed on the 4 MB (the journal's CRC too, store/journal_format.py)
        from zlib_ng.zlib_ng import crc32
    except ImportError:  # pragma: no cover - zlib-ng is a dependency
        from zlib import crc32
    return crc32(memoryview(values).cast("B"))


__all__ = ["SEED", "SIZE", "generate", "prefetch", "read_kept", "table", "write_kept"]
