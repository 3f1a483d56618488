"""Tables whose columns are named "quantity (unit)": found by role, converted to SI.

Used by the formats whose columns only differ in their names and units (BDF, PEC,
Arbin CSV/XLSX and Arbin .res tables). Counters (capacities, energies) are taken
as restarting wherever they fall (per step, per cycle, or never: all read right).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labctl.importers.base import Counter, Parsed, fail, orient_current, record_at
from labctl.importers.textio import find_column, guess_delimiter, head_lines, read_table, split
from labctl.importers.timeparse import first_datetime_unix


@dataclass(frozen=True)
class Roles:
    """Candidate column names (without units) for each role."""

    time: tuple[str, ...]
    current: tuple[str, ...]
    voltage: tuple[str, ...]
    cycle: tuple[str, ...] = ()
    step: tuple[str, ...] = ()
    charge_ah: tuple[str, ...] = ()
    discharge_ah: tuple[str, ...] = ()
    charge_wh: tuple[str, ...] = ()
    discharge_wh: tuple[str, ...] = ()
    temperature: tuple[str, ...] = ()
    unix_time: tuple[str, ...] = ()
    date: tuple[str, ...] = ()
    label: tuple[str, ...] = ()
    time_unit: str = "s"  # when the time header has no unit
    cycle_offset: int = 0  # added to the file's cycle numbers (0-based files: 1)


_NUMERIC = ("time", "current", "voltage", "cycle", "step", "charge_ah", "discharge_ah",
            "charge_wh", "discharge_wh", "temperature", "unix_time")


def locate(names: list[str], roles: Roles) -> dict[str, tuple[str, float]]:
    found = {}
    for role in (*_NUMERIC, "date", "label"):
        bases = getattr(roles, role)
        if not bases:
            continue
        hit = find_column(names, *bases, default_unit=roles.time_unit if role == "time" else "")
        if hit:
            found[role] = hit
    return found


def header_line(lines: list[str], roles: Roles) -> int | None:
    for k, line in enumerate(lines[:200]):
        names = split(line, guess_delimiter(line))
        found = locate(names, roles)
        if all(r in found for r in ("time", "current", "voltage")):
            return k
    return None


def read_text(path: Path, data: bytes, fmt: str, roles: Roles) -> Parsed:
    lines = head_lines(data)
    h = header_line(lines, roles)
    if h is None:
        raise fail(path, "", f"no header row with time ({' / '.join(roles.time)}), current "
                   f"({' / '.join(roles.current)}) and voltage ({' / '.join(roles.voltage)}) "
                   "columns", fmt)
    delim = guess_delimiter(lines[h])
    names = split(lines[h], delim)
    found = locate(names, roles)
    wanted = {hdr: ("s" if role in ("date", "label") else "f") for role, (hdr, _) in
              found.items()}
    cols = read_table(path, data, h, delim, wanted, fmt)
    parsed = from_columns(path, fmt, {role: cols[hdr] for role, (hdr, _) in found.items()},
                          {role: (hdr, f) for role, (hdr, f) in found.items()}, roles, h + 2)
    return parsed


def from_columns(path: Path, fmt: str, cols: Mapping[str, Any],
                 found: Mapping[str, tuple[str, float]], roles: Roles,
                 first_line: int | None = None) -> Parsed:
    """A Parsed from role -> column values (numeric as read, before unit factors)."""
    conv: list[str] = []

    def num(role: str) -> np.ndarray | None:
        if role not in cols:
            return None
        values = np.asarray(cols[role], dtype=np.float64)
        factor = found[role][1]
        return values if factor == 1.0 else values * factor

    scaled = [f"{found[r][0]!r} x{found[r][1]:g}" for r in _NUMERIC
              if r in found and found[r][1] != 1.0]
    if scaled:
        conv.append("units to SI (s, A, V, Ah, Wh): " + ", ".join(scaled))
    t = num("time")
    qc, qd = num("charge_ah"), num("discharge_ah")
    current = orient_current(num("current"), qc, qd, conv, found["current"][0])
    cycle = None
    if "cycle" in cols:
        cycle = np.asarray(cols["cycle"], dtype=np.float64)
        if not np.all(np.isfinite(cycle)):
            bad = int(np.flatnonzero(~np.isfinite(cycle))[0])
            raise fail(path, record_at(bad, first_line), "cycle number missing", fmt)
        cycle = cycle.astype(np.int64) + roles.cycle_offset
        if roles.cycle_offset:
            conv.append(f"cycle_index = {found['cycle'][0]!r} + {roles.cycle_offset}")
    step = None
    if "step" in cols:
        step = np.asarray(cols["step"], dtype=np.float64)
        step = np.where(np.isfinite(step), step, -1).astype(np.int64)
    parsed = Parsed(fmt, t, current, num("voltage"), step=step, cycle=cycle, conversions=conv,
                    first_line=first_line)
    for role, attr in (("charge_ah", "charge_ah"), ("discharge_ah", "discharge_ah"),
                       ("charge_wh", "charge_wh"), ("discharge_wh", "discharge_wh")):
        values = num(role)
        if values is not None:
            setattr(parsed, attr, Counter(np.abs(values), "never"))
    if any(r in cols for r in ("charge_ah", "charge_wh")):
        conv.append("capacity/energy counters: the file's own, taken as restarting from 0 "
                    "wherever they fall (per step, per cycle or never)")
    temp = num("temperature")
    if temp is not None:
        parsed.temperature_c = temp
    unix = num("unix_time")
    if unix is not None and len(unix) and np.isfinite(unix[0]):
        parsed.start_unix_s = float(unix[0])
        conv.append(f"unix_time_s: {found['unix_time'][0]!r} of the first record + test time")
    elif "date" in cols and len(t):
        first = cols["date"][0]
        first = first.as_py() if hasattr(first, "as_py") else first
        start = first_datetime_unix(str(first))
        if start is not None:
            parsed.start_unix_s = start
            parsed.metadata["start_time"] = str(first)
            conv.append(f"unix_time_s: the first record's {found['date'][0]!r} (no time zone "
                        "in the file: taken as UTC) + test_time_s")
    if "label" in cols:
        lab = cols["label"]
        parsed.step_labels = lab
    return parsed
