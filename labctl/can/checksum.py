"""Message checksums and rolling counters (what CAN BMS messages carry for integrity).

A checksum is one whole byte of the frame (its position comes from the DBC signal
the station file names). It is computed over the frame's other data bytes, in order,
optionally preceded by the frame id. Algorithms (`ChecksumSpec`):

- `sum8`: (sum of the bytes [+ the four bytes of the arbitration id]) & 0xFF, inverted;
  the id is included by default;
- `xor8`: XOR of the bytes [and of the four bytes of the id]; the id is left out by default;
- `crc8`: a CRC-8 with `polynomial`, `init` and `final_xor` (not reflected), default SAE
  J1850 (0x1D, 0xFF, 0xFF); with `include_id` (the default) the LOW BYTE of the
  arbitration id is fed first, as AUTOSAR E2E feeds its data id. AUTOSAR's CRC8H2F is
  polynomial 0x2F, init 0xFF, final_xor 0xFF.

Each has a scalar form (to encode one frame) and a vectorised form over an (n, 8)
byte array (to check a whole log at once). The CRC is written here rather than taken
from a CRC library because the vectorised form (one table lookup per byte column over
every frame of a log at once) is what the checks need; the scalar form is tested
against the published check values of the CRC catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

ALGORITHMS = ("sum8", "xor8", "crc8")
_ID_BY_DEFAULT = {"sum8": True, "xor8": False, "crc8": True}


@dataclass(frozen=True)
class ChecksumSpec:
    """How one message's checksum byte is computed."""

    algorithm: str = "sum8"
    polynomial: int = 0x1D  # crc8 only
    init: int = 0xFF  # crc8 only
    final_xor: int = 0xFF  # crc8 only
    include_id: bool | None = None  # None: the algorithm's default (see the module docstring)

    @property
    def with_id(self) -> bool:
        return _ID_BY_DEFAULT[self.algorithm] if self.include_id is None else self.include_id

    def describe(self) -> dict:
        d: dict = {"algorithm": self.algorithm, "include_id": self.with_id}
        if self.algorithm == "crc8":
            d.update(polynomial=f"0x{self.polynomial:02X}", init=f"0x{self.init:02X}",
                     final_xor=f"0x{self.final_xor:02X}")
        return d

    def label(self) -> str:
        if self.algorithm != "crc8":
            return f"{self.algorithm}{'' if self.with_id else ' (no id)'}"
        return (f"crc8 poly 0x{self.polynomial:02X} init 0x{self.init:02X} xor "
                f"0x{self.final_xor:02X}{' + id low byte' if self.with_id else ''}")


def as_spec(spec: ChecksumSpec | str) -> ChecksumSpec:
    if isinstance(spec, ChecksumSpec):
        return spec
    if spec not in ALGORITHMS:
        raise ValueError(f"unknown checksum algorithm {spec!r}; allowed: {', '.join(ALGORITHMS)}")
    return ChecksumSpec(spec)


@lru_cache(maxsize=32)
def _crc8_table(polynomial: int) -> np.ndarray:
    table = np.zeros(256, dtype=np.uint8)
    for i in range(256):
        c = i
        for _ in range(8):
            c = ((c << 1) ^ polynomial) & 0xFF if c & 0x80 else (c << 1) & 0xFF
        table[i] = c
    return table


@lru_cache(maxsize=32)
def _crc8_list(polynomial: int) -> list[int]:
    return _crc8_table(polynomial).tolist()


def crc8(data: bytes | bytearray, polynomial: int = 0x1D, init: int = 0xFF,
         final_xor: int = 0xFF) -> int:
    """CRC-8 (MSB first, not reflected) of `data`."""
    table = _crc8_list(polynomial)
    c = init
    for b in data:
        c = table[c ^ b]
    return c ^ final_xor


def _id_bytes(arbitration_id: int) -> list[int]:
    return [(arbitration_id >> s) & 0xFF for s in (0, 8, 16, 24)]


def checksum(spec: ChecksumSpec | str, data: bytes | bytearray, byte_index: int,
             arbitration_id: int) -> int:
    """The checksum of one frame (the byte at `byte_index` is left out)."""
    spec = as_spec(spec)
    others = [b for i, b in enumerate(data) if i != byte_index]
    ids = _id_bytes(arbitration_id) if spec.with_id else []
    if spec.algorithm == "sum8":
        return (~(sum(others) + sum(ids))) & 0xFF
    if spec.algorithm == "xor8":
        x = 0
        for b in [*ids, *others]:
            x ^= b
        return x
    head = [arbitration_id & 0xFF] if spec.with_id else []
    return crc8(bytes([*head, *others]), spec.polynomial, spec.init, spec.final_xor)


def checksums(spec: ChecksumSpec | str, data: np.ndarray, byte_index: int,
              arbitration_id: int) -> np.ndarray:
    """Checksums of many frames of one message: `data` is (n, 8) uint8."""
    spec = as_spec(spec)
    cols = [i for i in range(data.shape[1]) if i != byte_index]
    others = data[:, cols].astype(np.int64)
    ids = _id_bytes(arbitration_id) if spec.with_id else []
    if spec.algorithm == "sum8":
        return (~(others.sum(axis=1) + sum(ids))) & 0xFF
    if spec.algorithm == "xor8":
        x = np.bitwise_xor.reduce(others, axis=1) if cols else np.zeros(len(data), np.int64)
        for b in ids:
            x = x ^ b
        return x
    table = _crc8_table(spec.polynomial)
    c = np.full(len(data), spec.init, dtype=np.uint8)
    if spec.with_id:
        c = table[c ^ np.uint8(arbitration_id & 0xFF)]
    for j in range(others.shape[1]):
        c = table[c ^ others[:, j].astype(np.uint8)]
    return (c ^ np.uint8(spec.final_xor)).astype(np.int64)


def counter_gaps(counter: np.ndarray, bits: int) -> np.ndarray:
    """Per frame after the first: how many counts were skipped (0 = in sequence).

    A repeated value counts as a full wrap (modulus - 1 skipped), so it is flagged too.
    """
    if len(counter) < 2:
        return np.zeros(0, dtype=np.int64)
    modulus = 1 << bits
    step = np.diff(counter.astype(np.int64)) % modulus
    return (step - 1) % modulus
