"""Loading a DBC file safely: bounds first, then cantools.

cantools builds bit masks from a signal's start and length as written; a signal with an
absurd start or length (`SG_ X : 0|2000000000@1+ ...`) makes it compute for ever. The
text is therefore scanned first: every message may hold at most 64 bytes (CAN FD) and
every signal must start within those 512 bits and be 1 to 64 bits long; a file over
16 MiB is refused. Problems name the file and line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from labctl.errors import LabctlError
from labctl.fileio import os_error_text, read_regular_bytes

MAX_BYTES = 16 * 1024 * 1024
MAX_MESSAGE_BYTES = 64
MAX_SIGNAL_BITS = 64
_BO = re.compile(r"^\s*BO_\s+(\d+)\s+(\w+)\s*:\s*(\d+)")
_SG = re.compile(r"^\s*SG_\s+(\w+)\s*(?:[Mm]\d*M?\s*)?:\s*(\d+)\s*\|\s*(\d+)\s*@")


def bounds_problems(text: str) -> list[tuple[int, str]]:
    """(line, message) for every message size or signal position cantools must not see."""
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        m = _BO.match(line)
        if m and int(m.group(3)) > MAX_MESSAGE_BYTES:
            out.append((n, f"message {m.group(2)} is {m.group(3)} bytes long; at most "
                           f"{MAX_MESSAGE_BYTES} (CAN FD) are allowed"))
            continue
        s = _SG.match(line)
        if s:
            start, length = int(s.group(2)), int(s.group(3))
            if start >= 8 * MAX_MESSAGE_BYTES or not 1 <= length <= MAX_SIGNAL_BITS:
                out.append((n, f"signal {s.group(1)} starts at bit {start} with {length} bits; "
                               f"allowed: start 0..{8 * MAX_MESSAGE_BYTES - 1}, length "
                               f"1..{MAX_SIGNAL_BITS}"))
    return out


def load_dbc(path: str | Path, label: str | None = None) -> Any:
    """A cantools Database from a DBC file, with its bounds checked first (LabctlError if bad)."""
    import cantools

    path = Path(path)
    name = label or str(path)
    try:  # regular files only, size-capped, checked on the open descriptor (labctl/fileio.py)
        raw = read_regular_bytes(path, MAX_BYTES)
    except OSError as exc:
        raise LabctlError(f"DBC file {name}: {os_error_text(exc)} (a DBC file of at most "
                          f"{MAX_BYTES} bytes is read)") from None
    text = raw.decode("cp1252", errors="replace")  # DBC files are usually Windows-1252
    bad = bounds_problems(text)
    if bad:
        shown = "; ".join(f"line {n}: {msg}" for n, msg in bad[:5])
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise LabctlError(f"DBC file {name}: {shown}{more}")
    try:
        return cantools.database.load_string(text, database_format="dbc", strict=True)
    except Exception as exc:  # cantools raises several types for a bad file
        raise LabctlError(f"DBC file {name} cannot be read: {exc}") from None
