"""Message checksums and rolling counters (what CAN BMS messages carry for integrity).

A checksum is one whole byte of the frame (its position comes from the DBC signal
the station file names). Algorithms, over the other data bytes in order:

- `sum8`: (sum of the bytes + the four bytes of the arbitration id) & 0xFF, inverted;
- `xor8`: XOR of the bytes;
- `crc8`: CRC-8 SAE J1850 (poly 0x1D, init 0xFF, final XOR 0xFF) over the low byte of
  the arbitration id followed by the bytes (the id acts as AUTOSAR's data id).

Each has a scalar form (to encode one frame) and a vectorised form over an (n, 8)
byte array (to check a whole log at once).
"""

from __future__ import annotations

import numpy as np

ALGORITHMS = ("sum8", "xor8", "crc8")


def _crc8_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint8)
    for i in range(256):
        c = i
        for _ in range(8):
            c = ((c << 1) ^ 0x1D) & 0xFF if c & 0x80 else (c << 1) & 0xFF
        table[i] = c
    return table


_CRC8 = _crc8_table()
_CRC8_LIST = _CRC8.tolist()


def _id_bytes(arbitration_id: int) -> list[int]:
    return [(arbitration_id >> s) & 0xFF for s in (0, 8, 16, 24)]


def checksum(algorithm: str, data: bytes | bytearray, byte_index: int, arbitration_id: int) -> int:
    """The checksum of one frame (the byte at `byte_index` is left out)."""
    others = [b for i, b in enumerate(data) if i != byte_index]
    if algorithm == "sum8":
        return (~(sum(others) + sum(_id_bytes(arbitration_id)))) & 0xFF
    if algorithm == "xor8":
        x = 0
        for b in others:
            x ^= b
        return x
    if algorithm == "crc8":
        c = 0xFF
        for b in [arbitration_id & 0xFF, *others]:
            c = _CRC8_LIST[c ^ b]
        return c ^ 0xFF
    raise ValueError(f"unknown checksum algorithm {algorithm!r}; allowed: {', '.join(ALGORITHMS)}")


def checksums(algorithm: str, data: np.ndarray, byte_index: int, arbitration_id: int) -> np.ndarray:
    """Checksums of many frames of one message: `data` is (n, 8) uint8."""
    cols = [i for i in range(data.shape[1]) if i != byte_index]
    others = data[:, cols].astype(np.int64)
    if algorithm == "sum8":
        return (~(others.sum(axis=1) + sum(_id_bytes(arbitration_id)))) & 0xFF
    if algorithm == "xor8":
        return np.bitwise_xor.reduce(others, axis=1) if cols else np.zeros(len(data), np.int64)
    if algorithm == "crc8":
        c = np.full(len(data), _CRC8[0xFF ^ (arbitration_id & 0xFF)], dtype=np.uint8)
        for j in range(others.shape[1]):
            c = _CRC8[c ^ others[:, j].astype(np.uint8)]
        return (c ^ 0xFF).astype(np.int64)
    raise ValueError(f"unknown checksum algorithm {algorithm!r}; allowed: {', '.join(ALGORITHMS)}")


def counter_gaps(counter: np.ndarray, bits: int) -> np.ndarray:
    """Per frame after the first: how many counts were skipped (0 = in sequence).

    A repeated value counts as a full wrap (modulus - 1 skipped), so it is flagged too.
    """
    if len(counter) < 2:
        return np.zeros(0, dtype=np.int64)
    modulus = 1 << bits
    step = np.diff(counter.astype(np.int64)) % modulus
    return (step - 1) % modulus
