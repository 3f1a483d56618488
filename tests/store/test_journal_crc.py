"""The journal's CRC-32 (zlib-ng when installed) against zlib's, the independent truth:
a journal written with one must read back with the other."""

from __future__ import annotations

import subprocess
import sys
import zlib

import numpy as np
import pytest

from labctl.store.journal_format import crc32


@pytest.mark.parametrize("size", [0, 1, 7, 64, 1000, 4093, 1 << 16, (1 << 20) + 3])
def test_crc32_equals_zlib_on_random_bytes(size: int) -> None:
    data = np.random.default_rng(size).bytes(size)
    assert crc32(data) == zlib.crc32(data)
    assert crc32(memoryview(data)) == zlib.crc32(data)
    assert crc32(bytearray(data)) == zlib.crc32(data)


def test_crc32_equals_zlib_on_numpy_arrays_and_slices() -> None:
    rng = np.random.default_rng(7)
    for arr in (rng.standard_normal(12_345), rng.integers(-2**31, 2**31, 999, dtype=np.int32),
                rng.integers(0, 2**63, 10_001, dtype=np.int64)):
        assert crc32(arr) == zlib.crc32(arr.tobytes())
        assert crc32(arr[17:4000]) == zlib.crc32(arr[17:4000].tobytes())  # a contiguous view
        assert crc32(memoryview(arr).cast("B")[5:]) == zlib.crc32(arr.tobytes()[5:])


def test_crc32_running_value_equals_zlib() -> None:
    rng = np.random.default_rng(3)
    parts = [rng.bytes(int(n)) for n in rng.integers(0, 70_000, 12)]
    ours = theirs = 0
    for p in parts:
        ours, theirs = crc32(p, ours), zlib.crc32(p, theirs)
        assert ours == theirs
    assert ours == zlib.crc32(b"".join(parts))
    for start in (1, 0xFFFF_FFFF, 0x1234_5678):
        assert crc32(parts[0], start) == zlib.crc32(parts[0], start)


def test_falls_back_to_zlib_without_zlib_ng() -> None:
    code = ("import sys, zlib; sys.modules['zlib_ng'] = None\n"
            "from labctl.store.journal_format import crc32\n"
            "assert crc32 is zlib.crc32, crc32\n")
    subprocess.run([sys.executable, "-c", code], check=True)
