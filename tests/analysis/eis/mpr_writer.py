"""Write a minimal BioLogic .mpr (binary EC-Lab) file, as galvani documents the layout.

No public PEIS .mpr file with a licence allowing redistribution was at hand (galvani's
own test files are Git LFS objects), so the tests write one: the magic header, a
"VMP Set" module and a version-2 "VMP data" module with column ids 4 (time/s, f8),
32 (freq/Hz, f4), 37 (Re(Z)/Ohm, f4) and 38 (-Im(Z)/Ohm, f4). The values written are
the truth the reader must return (as float32).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

MAGIC = b"BIO-LOGIC MODULAR FILE\x1a".ljust(48) + b"\x00\x00\x00\x00"


def _module(short: bytes, long: bytes, payload: bytes, version: int) -> bytes:
    header = (short.ljust(10) + long.ljust(25) + struct.pack("<II", len(payload), version)
              + b"12/05/26")
    return b"MODULE" + header + payload


def write_mpr(path: Path, frequency_hz, z, *, columns=(4, 32, 37, 38)) -> Path:
    f = np.asarray(frequency_hz, dtype=float)
    z = np.asarray(z, dtype=complex)
    dtypes = {4: ("time/s", "<f8"), 32: ("freq/Hz", "<f4"), 37: ("Re(Z)/Ohm", "<f4"),
              38: ("-Im(Z)/Ohm", "<f4"), 6: ("Ewe/V", "<f4")}
    rec = np.zeros(len(f), dtype=[dtypes[c] for c in columns])
    values = {"time/s": np.arange(len(f), dtype=float), "freq/Hz": f, "Re(Z)/Ohm": z.real,
              "-Im(Z)/Ohm": -z.imag, "Ewe/V": np.full(len(f), 3.7)}
    for name in rec.dtype.names:
        rec[name] = values[name]
    head = struct.pack("<IB", len(f), len(columns)) + struct.pack(f"<{len(columns)}H", *columns)
    payload = head.ljust(405, b"\x00") + rec.tobytes()
    path.write_bytes(MAGIC + _module(b"VMP Set", b"VMP settings", b"\x00" * 64, 0)
                     + _module(b"VMP data", b"VMP data", payload, 2))
    return path
