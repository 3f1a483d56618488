"""Delimited text tables read fast (pyarrow's multi-threaded CSV reader), with a
precise message when a line is bad.

The fast path reads only the wanted columns with fixed types. If it fails (a
short line, a word where a number belongs), a slow line-by-line pass finds the
first bad line and names it, its column and what was expected, so the user can
fix or trim the file.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from labctl.importers.base import fail

HEAD_BYTES = 64 * 1024


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise fail(path, "", f"cannot read the file ({exc.strerror or exc})") from None


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM), else latin-1 (vendor software on Windows)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def head_lines(data: bytes, n_bytes: int = HEAD_BYTES) -> list[str]:
    """The first lines of a file (the last, possibly cut, line dropped when there is more)."""
    text = decode(data[:n_bytes]) if len(data) <= n_bytes else data[:n_bytes].decode(
        "latin-1")
    lines = text.splitlines()
    if len(data) > n_bytes and lines:
        lines = lines[:-1]
    return lines


def split(line: str, delim: str) -> list[str]:
    if delim == " ":
        return line.split()
    return [f.strip().strip('"') for f in line.split(delim)]


def first_record_field(lines: list[str], header_line: int, names: list[str], name: str,
                       delim: str) -> str | None:
    """The field `name` of the first record under the header, from the head lines (so a
    column of which only the first value is used, such as a date, is not read in full)."""
    k = names.index(name)
    for line in lines[header_line + 1:header_line + 4]:
        if line.strip():
            fields = [f.strip('"') for f in line.rstrip("\r\n").split(delim)] if delim != " " \
                else line.split()
            return fields[k] if k < len(fields) and len(fields) == len(names) else None
    return None


def guess_delimiter(line: str) -> str:
    counts = {d: line.count(d) for d in ("\t", ";", ",")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else " "


def _line_offsets(data: bytes, header_line: int) -> int:
    """Byte offset of the line after `header_line` (0-based)."""
    pos = 0
    for _ in range(header_line + 1):
        nxt = data.find(b"\n", pos)
        if nxt < 0:
            return len(data)
        pos = nxt + 1
    return pos


def read_table(path: Path, data: bytes, header_line: int, delim: str,
               wanted: Mapping[str, str], fmt: str, *, skip_after_header: int = 0,
               decimal_comma: bool = False, stop_at: bytes | None = None
               ) -> dict[str, Any]:
    """Columns `wanted` (header name -> "f" float array or "s" pyarrow string column) of the table whose
    header is line `header_line` (0-based). `skip_after_header`: unit rows to skip.
    `stop_at`: a line prefix that ends the table (a footer)."""
    header_text = decode(data[:_line_offsets(data, header_line)]).splitlines()[header_line]
    names = split(header_text, delim)
    for name in wanted:
        if name not in names:
            raise fail(path, f"line {header_line + 1}", f"no column {name!r} in the header "
                       f"(found: {', '.join(n for n in names if n)[:300]})", fmt)
    start = _line_offsets(data, header_line + skip_after_header)
    end = len(data)
    if stop_at is not None:
        cut = data.find(b"\n" + stop_at, start)
        if cut >= 0:
            end = cut + 1
    names = _fit_names(names, data[start:data.find(b"\n", start, end) if data.find(
        b"\n", start, end) >= 0 else end], delim)
    # a zero-copy view of the table's bytes (slicing `bytes` would copy the whole file)
    body: Any = pa.py_buffer(data)[start:end]
    if decimal_comma and delim != ",":
        body = data[start:end].replace(b",", b".")
    # Duplicate header names (Maccor repeats " Units") get unique stand-ins.
    unique = [f"{n}\x00{k}" if names.count(n) > 1 else n for k, n in enumerate(names)]
    types = {n: (pa.float64() if kind == "f" else pa.string()) for n, kind in wanted.items()}
    try:
        table = _read_csv(body, unique, delim, wanted, types)
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as exc:
        first_data_line = header_line + skip_after_header + 2
        _diagnose(path, bytes(body), names, wanted, delim, first_data_line, fmt, exc)
        raise AssertionError("unreachable") from None
    out = {}
    for name, kind in wanted.items():
        col = table.column(name)
        if kind == "f":
            out[name] = col.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        else:
            out[name] = col  # a pyarrow ChunkedArray: parsed with pyarrow.compute
    return out


def _read_csv(body: Any, unique: list[str], delim: str, wanted: Mapping[str, str],
              types: dict[str, Any]) -> pa.Table:
    """pyarrow's reader on UTF-8; a latin-1 file (vendor software on Windows) is
    transcoded once, only when a text column turns out not to be UTF-8 (pyarrow's own
    transcoding runs at Python speed)."""
    try:
        return _pyarrow_csv(body, unique, delim, wanted, types)
    except pa.ArrowInvalid as exc:
        if "UTF8" not in str(exc) and "utf8" not in str(exc).lower():
            raise
    return _pyarrow_csv(bytes(body).decode("latin-1").encode("utf-8"), unique, delim, wanted,
                        types)


def _pyarrow_csv(body: Any, unique: list[str], delim: str, wanted: Mapping[str, str],
                 types: dict[str, Any]) -> pa.Table:
    return pacsv.read_csv(
        pa.BufferReader(body),
        read_options=pacsv.ReadOptions(column_names=unique, block_size=1 << 22),
        parse_options=pacsv.ParseOptions(delimiter="\t" if delim == " " else delim,
                                         ignore_empty_lines=True),
        convert_options=pacsv.ConvertOptions(include_columns=list(wanted), column_types=types,
                                             strings_can_be_null=False,
                                             quoted_strings_can_be_null=False))


def _fit_names(names: list[str], body: bytes, delim: str) -> list[str]:
    """Header names matched to the data rows' field count: a trailing delimiter on the
    header or on the rows (EC-Lab writes one on the header only) adds an empty field."""
    end = body.find(b"\n")
    first = body[: end if end >= 0 else len(body)].decode("latin-1").rstrip("\r")
    if not first.strip():
        return names
    m = len(split(first, delim))
    if m < len(names) and not any(n for n in names[m:]):
        return names[:m]
    if m > len(names):
        return names + [""] * (m - len(names))
    return names


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _diagnose(path: Path, body: bytes, names: list[str], wanted: Mapping[str, str], delim: str,
              first_line: int, fmt: str, exc: Exception) -> None:
    idx = {n: names.index(n) for n in wanted}
    need = max(idx.values()) + 1
    text = body.decode("latin-1")
    for k, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        lineno = first_line + k
        fields = split(line, delim)
        if len(fields) != len(names) and len(fields) < need:
            raise fail(path, f"line {lineno}", f"expected {len(names)} fields like the header, "
                       f"found {len(fields)} (is the file cut short?)", fmt)
        for name, kind in wanted.items():
            if kind != "f" or idx[name] >= len(fields):
                continue
            value = fields[idx[name]]
            if value and not _NUMBER.match(value) and value.lower() not in ("nan", "inf",
                                                                              "-inf"):
                raise fail(path, f"line {lineno}, column {idx[name] + 1} ({name})",
                           f"{value[:40]!r} is not a number", fmt)
        if len(fields) != len(names):
            raise fail(path, f"line {lineno}", f"expected {len(names)} fields like the header, "
                       f"found {len(fields)}", fmt)
    raise fail(path, "", f"unreadable table ({str(exc).splitlines()[0][:200]})", fmt)


def unit_factor(unit: str) -> float | None:
    """SI factor of a vendor unit (mA -> 1e-3, h -> 3600, ...); None if unknown."""
    return _UNITS.get(unit.strip().lower().replace("·", ".").replace(" ", ""))


_UNITS: dict[str, float] = {
    "a": 1.0, "ma": 1e-3, "ua": 1e-6, "µa": 1e-6, "na": 1e-9,
    "v": 1.0, "mv": 1e-3,
    "ah": 1.0, "mah": 1e-3, "a.h": 1.0, "ma.h": 1e-3, "uah": 1e-6, "µah": 1e-6,
    "wh": 1.0, "mwh": 1e-3, "w.h": 1.0, "mw.h": 1e-3, "kwh": 1e3,
    "s": 1.0, "sec": 1.0, "seconds": 1.0, "ms": 1e-3, "min": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hours": 3600.0,
    "degc": 1.0, "°c": 1.0, "c": 1.0, "1": 1.0,
}


def any_of(names: list[str], *candidates: str) -> str | None:
    """The first header name equal (ignoring case and spaces) to one of `candidates`."""
    norm = {_squeeze(n): n for n in reversed(names)}
    for c in candidates:
        hit = norm.get(_squeeze(c))
        if hit is not None:
            return hit
    return None


def parse_duration_s(col: Any, path: Path, fmt: str, name: str) -> np.ndarray:
    """Seconds from "1d 02:03:04.5", "02:03:04.5", "123:04:05" or plain seconds text."""
    import pyarrow.compute as pc

    arr = pa.chunked_array(col) if not isinstance(col, pa.ChunkedArray) else col
    fast = _durations_by_csv(arr)
    if fast is not None:
        return fast
    arr = pc.utf8_trim_whitespace(arr)
    parts = pc.extract_regex(arr, r"^(?:(?P<d>\d+)[d.]\s*)?(?:(?P<h>\d+):)?(?P<m>\d+):"
                                  r"(?P<s>\d+(?:\.\d*)?)$")
    ok = pc.is_valid(parts)
    if not pc.all(ok).as_py():
        bad = int(np.flatnonzero(~ok.to_numpy(zero_copy_only=False))[0])
        value = arr[bad].as_py()
        try:
            return np.asarray(pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise fail(path, f"data record {bad + 1}, column {name}", f"{value[:40]!r} is not "
                       "a time; expected seconds or [Nd ]hh:mm:ss[.ff]", fmt) from None
    total = np.zeros(len(arr))
    for key, factor in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        field = pc.struct_field(parts, key)
        field = pc.if_else(pc.equal(field, ""), "0", field)
        total += factor * pc.cast(field, pa.float64()).to_numpy(zero_copy_only=False)
    return total


# "0d 01:02:03.5" -> "0,001,02,03.5": every field a number (spaces as leading zeros)
_DURATION_MAP = np.arange(256, dtype=np.uint8)
for _old, _new in ((" ", "0"), (":", ","), ("d", ","), ("D", ",")):
    _DURATION_MAP[ord(_old)] = ord(_new)
_DURATION_OK = np.zeros(256, dtype=bool)
_DURATION_OK[[ord(c) for c in "0123456789,.\n"]] = True
_DURATION_FACTORS = {1: (1.0,), 2: (60.0, 1.0), 3: (3600.0, 60.0, 1.0),
                     4: (86400.0, 3600.0, 60.0, 1.0)}


def _durations_by_csv(arr: pa.ChunkedArray) -> np.ndarray | None:
    """Seconds from "[Nd ]h:mm:ss[.ff]" texts when every value has the same fields, else
    None (the regular-expression path then parses or names the bad value).

    Why: pyarrow's regular-expression extraction plus four casts cost ~0.4 s of CPU per
    million values; joining the values into lines, mapping the separators to commas in
    one numpy lookup and letting pyarrow's multi-threaded CSV reader parse the fields as
    numbers costs ~0.15 s."""
    import pyarrow.compute as pc

    a = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    n = len(a)
    if n == 0 or a.null_count:
        return None
    lines = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, n], pa.int32()), a), "\n")
    text = _DURATION_MAP[np.frombuffer(lines[0].as_buffer(), dtype=np.uint8)]
    if not _DURATION_OK[text].all():
        return None
    try:
        table = pacsv.read_csv(io.BytesIO(text.tobytes() + b"\n"),
                               read_options=pacsv.ReadOptions(autogenerate_column_names=True),
                               parse_options=pacsv.ParseOptions(ignore_empty_lines=False))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    factors = _DURATION_FACTORS.get(table.num_columns)
    if factors is None or table.num_rows != n:
        return None
    fields = [table.column(k).to_numpy().astype(np.float64) for k in range(table.num_columns)]
    if any(np.any(f != np.floor(f)) for f in fields[:-1]):  # "1.02:03:04": days then '.'
        return None
    total = np.zeros(n)
    for factor, values in zip(factors, fields, strict=True):
        total += factor * values
    return total


@functools.lru_cache(maxsize=4096)
def _squeeze(text: str) -> str:
    """Lower case without white space (header names are matched many times per file)."""
    return re.sub(r"\s+", "", text).lower()


@functools.lru_cache(maxsize=4096)
def _key(text: str) -> str:
    return re.sub(r"[\s_.\-]+", "", text).lower()


def find_column(names: list[str], *bases: str, default_unit: str = "") -> tuple[str, float] | None:
    """(header, SI factor) of the first header whose name without its unit is one of
    `bases` (ignoring case, spaces, '_', '.', '-'); None if absent."""
    from labctl.importers.base import unit_of

    parsed = []
    for n in names:
        base, unit = unit_of(n)
        parsed.append((n, _key(base), unit))
    for b in bases:
        kb = _key(b)
        for header, base, unit in parsed:
            if base == kb:
                factor = unit_factor(unit or default_unit) if (unit or default_unit) else 1.0
                if factor is None and ":" in unit:
                    factor = 1.0  # "h:min:s.ms": a time written as text, parsed later
                if factor is None:
                    continue
                return header, factor
    return None
