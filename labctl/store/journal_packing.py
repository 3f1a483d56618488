"""Packed sample blocks: a column that holds one value all through a block is stored once.

Most of a cycling run's journal is columns that do not change within a step: the step
and cycle index always, the charge counters while the cell discharges (and the
discharge counters while it charges), all four during a rest, the current of a rest.
The unix time is the test time plus the same number all through a step. A PACKED
record stores such a column as one 8-byte value instead of 8 (or 4) bytes a row: the
journal of `bench/sim_cycling.py`'s 100 cycles takes 39.6 MB instead of 68.6 MB (the run
folder 66.9 instead of 95.9 MB). The bytes not written are neither copied into the page
cache, checksummed nor read back by the table writer, which pays for the checks below
and a little more (the run 0.307 against 0.315 s, medians of 10 interleaved processes).

Nothing is rounded or guessed. A column is packed when every row has the stored value's
bytes (NaN included, -0.0 apart from 0.0), checked; or when the caller built it so: the
engine's step and cycle index (one value per step), and its unix time, the run's origin
plus the test time, the same float64 addition the reader does. Reading a packed block
gives exactly the arrays that were written.

The payload of a PACKED record (journal type 3):
  u32 rows, u32 constant mask, u32 offset mask (bit k: column k of the header's
  sample_dtype); then for each column with a bit in either mask, in column order, an
  8-byte slot: a constant column's value (its dtype's bytes, zero-padded), or an offset
  column's float64 offset from column 0; then every other column in order, `rows`
  values each, as in a SAMPLES record.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

PACKED_HEAD = struct.Struct("<III")
SAMPLES_COUNT_BYTES = 4  # a SAMPLES record's row count (u32), before its columns
# The most rows a record holds (the writer splits larger blocks): a packed record's row
# count is not bounded by its size, so a reader refuses more rather than allocate them.
MAX_ROWS = 1 << 20
_SLOT = 8
_F8 = np.dtype("<f8")


def _same_everywhere(col: np.ndarray) -> bool:
    """Every row has the first row's bytes (NaN equals NaN here, -0.0 differs from 0.0)."""
    first, last = col[0], col[-1]
    if first != last and not (first != first and last != last):  # NaN != NaN
        return False  # most changing columns: two reads, no pass over the column
    # One memcmp against the first row repeated: half the time of numpy's != and any().
    return col.tobytes() == col[:1].tobytes() * len(col)


def pack(cols: Sequence[np.ndarray], constant: Sequence[int] = (),
         offsets: Sequence[tuple[int, float]] = ()) -> tuple[list[Any], int] | None:
    """A block's PACKED payload as buffers for writev, and its length in bytes; None when
    packing would not make it smaller than a SAMPLES record (a block of a row or two, as
    a real-time run hands over every fraction of a second): write that instead.

    `cols` are the header's columns in order (contiguous, little-endian, equal lengths,
    at least one row). The caller may name columns it built constant (`constant`: the
    engine's step and cycle index, from `np.full`) and columns it built as column 0 plus
    a number (`offsets`: the engine's unix time, its origin plus the test time): they are
    stored as such unchecked, which a check per block would cost (~2-4 us a column, a
    fifth of what packing saves). Every other column is checked. A column is packed only
    where its slot is smaller than its rows."""
    n = len(cols[0])
    const_mask = shift_mask = 0
    slots = bytearray()
    rest: list[np.ndarray] = []
    length = PACKED_HEAD.size
    whole = SAMPLES_COUNT_BYTES
    hinted = dict(offsets)
    for k, col in enumerate(cols):
        size = n * col.dtype.itemsize
        whole += size
        if size <= _SLOT:
            rest.append(col)
            length += size
        elif k in hinted:
            shift_mask |= 1 << k
            slots += struct.pack("<d", hinted[k])
        elif k in constant or _same_everywhere(col):
            const_mask |= 1 << k
            slots += col[:1].tobytes().ljust(_SLOT, b"\0")
        else:
            rest.append(col)
            length += size
    length += len(slots)
    if length >= whole:
        return None
    return [PACKED_HEAD.pack(n, const_mask, shift_mask), bytes(slots), *rest], length


class PackedBlock:
    """A PACKED record's payload, checked against the file's column layout; its columns
    are decoded when asked for (`values`)."""

    __slots__ = ("payload", "n", "constant", "shifted", "dtypes")

    def __init__(self, payload: memoryview, n: int, constant: int, shifted: int,
                 dtypes: Sequence[np.dtype]):
        self.payload, self.n, self.constant, self.shifted = payload, n, constant, shifted
        self.dtypes = dtypes

    @classmethod
    def parse(cls, payload: memoryview, dtypes: Sequence[np.dtype]) -> PackedBlock | None:
        """The block, or None when the payload's size does not fit its header."""
        if len(payload) < PACKED_HEAD.size:
            return None
        n, constant, shifted = PACKED_HEAD.unpack_from(payload, 0)
        k_all = (1 << len(dtypes)) - 1
        if not 0 < n <= MAX_ROWS or constant & shifted or (constant | shifted) & ~k_all or shifted & 1:
            return None
        size = PACKED_HEAD.size
        for k, dtype in enumerate(dtypes):
            if (constant | shifted) >> k & 1:
                if dtype.itemsize > _SLOT or (shifted >> k & 1 and dtype != _F8):
                    return None
                size += _SLOT
            else:
                size += n * dtype.itemsize
        if shifted and dtypes[0] != _F8:
            return None
        return cls(payload, n, constant, shifted, dtypes) if size == len(payload) else None

    def values(self) -> list[np.ndarray | np.generic]:
        """Each column in the file's order: an array (a view of the payload) for a stored
        column, one numpy scalar for a constant one (broadcast it), an array for an offset
        one."""
        payload, n = self.payload, self.n
        at = PACKED_HEAD.size
        slots: dict[int, int] = {}
        for k in range(len(self.dtypes)):
            if (self.constant | self.shifted) >> k & 1:
                slots[k] = at
                at += _SLOT
        out: list[Any] = []
        for k, dtype in enumerate(self.dtypes):
            if k in slots:
                out.append(np.frombuffer(payload, dtype=dtype if self.constant >> k & 1
                                         else _F8, count=1, offset=slots[k])[0])
            else:
                out.append(np.frombuffer(payload, dtype=dtype, count=n, offset=at))
                at += n * dtype.itemsize
        for k in slots:
            if self.shifted >> k & 1:
                out[k] = np.add(out[0], out[k])
        return out

    def arrays(self) -> list[np.ndarray]:
        """Each column in the file's order as an array of `n` rows."""
        return [v if isinstance(v, np.ndarray) else np.full(self.n, v, dtype=dtype)
                for v, dtype in zip(self.values(), self.dtypes, strict=True)]
