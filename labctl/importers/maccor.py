"""Maccor text exports (tab or comma separated, preamble lines, then a header row).

Layouts read (names matched ignoring case and spaces):

* record `Rec#`/`Rec`; cycle `Cyc#`/`Cycle C`/`Cycle`/`Cycle P` (0-based in Maccor:
  +1); step `Step`;
* test time `TestTime`/`Test Time` as `0d 00:00:00.00` (days, h:m:s), or seconds
  (`Test (Sec)`, `Test Time (s)`, `TestTime(s)`) or minutes (`Test (Min)`, `TestTime(min)`),
  or hours (`Test Time (Hr)`);
* current `Amps`/`Current` either unsigned with the direction in `State`/`Md`
  (C charge, D discharge, R/O/S/E rest or other), or signed (no state column:
  positive = charge);
* `Amp-hr`/`Capacity` and `Watt-hr`/`Energy`: unsigned, restarting at each step;
  they count for the direction of their record;
* `Volts`/`Voltage`, `DPt Time`/`DPT Time` (date of each record; the first one
  gives unix time, as local time taken as UTC: Maccor writes no time zone).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from labctl.importers.base import Counter, Parsed, as_ints, fail
from labctl.importers.textio import (
    any_of,
    first_record_field,
    guess_delimiter,
    head_lines,
    parse_duration_s,
    read_table,
    split,
)
from labctl.importers.timeparse import first_datetime_unix

FMT = "maccor"

_TIME = {  # header -> seconds per unit (None: "Nd hh:mm:ss" text)
    "testtime": None, "test time": None, "test (sec)": 1.0, "test time (s)": 1.0,
    "testtime(s)": 1.0, "test time (sec)": 1.0, "test (min)": 60.0, "testtime(min)": 60.0,
    "test time (min)": 60.0, "test time (hr)": 3600.0, "test time (h)": 3600.0,
}


def header_index(lines: list[str]) -> int | None:
    for k, line in enumerate(lines[:40]):
        low = line.lower()
        if low.startswith("rec") and ("cyc" in low or "cycle" in low) and "step" in low and (
                "amps" in low or "current" in low):
            return k
    return None


def looks_like(lines: list[str]) -> bool:
    return header_index(lines) is not None


def read(path: Path, data: bytes) -> Parsed:
    lines = head_lines(data)
    h = header_index(lines)
    if h is None:
        raise fail(path, "", "no Maccor header row (Rec#, Cyc#, Step, TestTime, Amps, Volts)",
                   FMT)
    delim = guess_delimiter(lines[h])
    names = split(lines[h], delim)
    time_name, per_unit = None, None
    for n in names:
        key = " ".join(n.lower().split())
        if key in _TIME:
            time_name, per_unit = n, _TIME[key]
            break
    cyc = any_of(names, "Cyc#", "Cycle C", "Cycle", "Cycle P")
    step = any_of(names, "Step")
    amps = any_of(names, "Amps", "Current", "Current (A)")
    volts = any_of(names, "Volts", "Voltage", "Voltage (V)")
    state = any_of(names, "State", "Md", "Mode")
    ah = any_of(names, "Amp-hr", "Capacity", "Amp-hr (Ah)", "Capacity (Ah)")
    wh = any_of(names, "Watt-hr", "Energy", "Watt-hr (Wh)", "Energy (Wh)")
    date = any_of(names, "DPt Time", "DPT Time", "DPtTime")
    for what, name in (("test time", time_name), ("cycle", cyc), ("step", step),
                       ("current", amps), ("voltage", volts)):
        if name is None:
            raise fail(path, f"line {h + 1}", f"no {what} column in the Maccor header", FMT)
    wanted = {time_name: "s" if per_unit is None else "f", cyc: "f", step: "f", amps: "f",
              volts: "f"}
    first_date = first_record_field(lines, h, names, date, delim) if date else None
    for name, kind in ((state, "s"), (ah, "f"), (wh, "f"),
                       (date if first_date is None else None, "s")):
        if name is not None:
            wanted[name] = kind
    temps = _temperature_columns(names, lines[h + 1] if len(lines) > h + 1 else "", delim)
    for name, _ in temps:
        wanted[name] = "f"
    cols = read_table(path, data, h, delim, wanted, FMT)
    conv = []
    if per_unit is None:
        t = parse_duration_s(cols[time_name], path, FMT, time_name)
        conv.append(f"time: {time_name!r} as 'Nd hh:mm:ss.ff' text -> seconds")
    else:
        t = cols[time_name] * per_unit
        if per_unit != 1.0:
            conv.append(f"time: {time_name!r} in {'minutes' if per_unit == 60 else 'hours'} "
                        f"-> seconds (x{per_unit:g})")
    current = current_raw = cols[amps]
    if state is not None:
        direction = _state_direction(cols[state])
        current = np.where(direction == 0, current_raw, np.abs(current_raw) * direction)
        conv.append(f"current: {amps!r} unsigned, direction from {state!r} (C charge, "
                    "D discharge; R/O/S/E records keep the file's value) -> positive = charge")
    else:
        direction = np.sign(current).astype(np.int8)
        conv.append(f"current: {amps!r} signed, positive = charge (as labctl)")
    cycle = as_ints(path, cyc, cols[cyc], FMT, h + 2) + 1
    conv.append(f"cycle_index = {cyc!r} + 1 (Maccor counts cycles from 0)")
    parsed = Parsed(FMT, t, current, cols[volts], step=as_ints(path, step, cols[step], FMT, h + 2),
                    cycle=cycle, conversions=conv, first_line=h + 2)
    if ah is not None:
        q = np.abs(cols[ah])
        parsed.charge_ah = Counter(np.where(direction > 0, q, 0.0), "step")
        parsed.discharge_ah = Counter(np.where(direction < 0, q, 0.0), "step")
        conv.append(f"capacity: {ah!r} (Ah, restarting each step) counted as charge on C "
                    "records and as discharge on D records")
    if wh is not None:
        e = np.abs(cols[wh])
        parsed.charge_wh = Counter(np.where(direction > 0, e, 0.0), "step")
        parsed.discharge_wh = Counter(np.where(direction < 0, e, 0.0), "step")
        conv.append(f"energy: {wh!r} (Wh, restarting each step) as the capacity")
    if state is not None:
        parsed.step_labels = cols[state]  # to_samples strips the few it uses
    if date is not None and len(t):
        if first_date is None:
            first_date = str(cols[date][0].as_py())
        start = first_datetime_unix(first_date)
        if start is not None:
            parsed.metadata["start_time"] = first_date
            parsed.start_unix_s = start
            conv.append(f"unix_time_s: the first record's {date!r} (local time of the cycler, "
                        "taken as UTC: no time zone in the file) + test_time_s")
    if temps:
        _pick_temperature(parsed, cols, temps)
    parsed.metadata = {**_preamble(lines[:h]), **parsed.metadata}
    return parsed


def _state_direction(col: Any) -> np.ndarray:
    """+1 for C (charge), -1 for D (discharge), 0 otherwise, per record. One-letter states
    (what Maccor writes) are read straight from the column's bytes; others through
    pyarrow.compute."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    n = len(arr)
    if n and not arr.null_count:
        offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset:arr.offset + n + 1]
        if offsets[-1] - offsets[0] == n:  # every value one byte long
            letters = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]]
            letters = letters & 0xDF  # upper case
            return ((letters == ord("C")).astype(np.int8) - (letters == ord("D")).astype(np.int8))
    st = pc.utf8_upper(pc.utf8_trim_whitespace(col))
    return (pc.equal(st, "C").to_numpy(zero_copy_only=False).astype(np.int8)
            - pc.equal(st, "D").to_numpy(zero_copy_only=False).astype(np.int8))


# Units a Maccor auxiliary channel may be logged in, as (scale, offset) to degC.
_TEMP_UNITS = {"c": (1.0, 0.0), "degc": (1.0, 0.0), "°c": (1.0, 0.0), "k": (1.0, -273.15),
               "f": (5.0 / 9.0, -32.0 * 5.0 / 9.0)}
ABSOLUTE_ZERO_C = -273.15


def _temperature_columns(names: list[str], first_row: str, delim: str
                         ) -> list[tuple[str, tuple[float, float]]]:
    """Auxiliary temperature columns: `Aux #N` followed by a `Units` column whose value in
    the first record is a temperature unit (C, F, K), or a plain `Temp`/`Temperature`
    column (degC). Returns (header, (scale, offset) to degC) in file order."""
    import re

    row = split(first_row, delim) if first_row.strip() else []
    found = []
    for k, name in enumerate(names):
        low = " ".join(name.lower().split())
        if re.fullmatch(r"aux ?#? ?\d+", low) and names.count(name) == 1:
            unit = row[k + 1].strip().lower() if k + 1 < len(names) and k + 1 < len(row) and \
                names[k + 1].strip().lower() == "units" else ""
            if unit in _TEMP_UNITS:
                found.append((name, _TEMP_UNITS[unit]))
        elif re.fullmatch(r"(temp|temperature)( ?#? ?\d+)?( ?\((c|°c|degc)\))?", low) \
                and names.count(name) == 1:
            found.append((name, (1.0, 0.0)))
    return found


def _pick_temperature(parsed: Parsed, cols: dict, temps: list[tuple[str, tuple[float, float]]]
                      ) -> None:
    """temperature_c from the first auxiliary temperature channel with physically possible
    readings. Readings below absolute zero (Maccor logs about -2500 C for a thermocouple
    input with no sensor) are no temperature: NaN."""
    unused = []
    for name, (scale, offset) in temps:
        values = np.asarray(cols[name], dtype=np.float64) * scale + offset
        possible = values >= ABSOLUTE_ZERO_C
        if not np.any(possible):
            unused.append(name)
            continue
        parsed.temperature_c = np.where(possible, values, np.nan)
        what = "" if (scale, offset) == (1.0, 0.0) else f" (x{scale:g} {offset:+g} to degC)"
        parsed.conversions.append(f"temperature_c: auxiliary channel {name!r}{what}; readings "
                                  "below absolute zero (no sensor) as missing")
        break
    if unused:
        parsed.conversions.append(f"auxiliary temperature channels {', '.join(unused)}: every "
                                  "reading below absolute zero (no sensor connected); not used")


def _preamble(lines: list[str]) -> dict[str, str]:
    """Key: value pairs of the lines above the header (Filename, Procedure, channel...)."""
    meta: dict[str, str] = {}
    for line in lines:
        fields = [f.strip() for f in line.split("\t")]
        for k in range(0, len(fields) - 1, 2):
            key = fields[k].rstrip(":").strip()
            if key and fields[k + 1]:
                meta[_META_KEYS.get(key.lower(), key)] = fields[k + 1]
    return meta


_META_KEYS = {"procedure": "procedure", "tester channel": "channel", "filename": "test_name",
              "date of test": "start_time", "description": "comments", "comment": "comments",
              "mass": "mass"}
