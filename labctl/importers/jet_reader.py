"""A vectorised reader of the tables of a Jet 4 (Access 2000-2003) database, as in an
Arbin MITS Pro `.res` file.

Why it exists: with mdbtools' `mdb-export` about two thirds of the CPU of a `.res`
import was `mdb-export` printing every value as text and pyarrow parsing it back, and
PyPI `access-parser` (pure Python, one row at a time) is ~40x slower still (2.7 s on
the 10 261-row sample). Here each table's pages are located from its table definition
and usage map, the row offset table of every page is read with numpy, and each fixed
length column is gathered from all rows at once.

It reads only what it understands: Jet 4, 4 KiB pages, tables whose definition fits in
one page, rows that are neither deleted nor overflow pointers, with as many columns as
the table has, columns of type boolean, byte, integer, long, single, double and (in
small tables, row by row) text. Anything else makes `read_tables` give None for that
table and the caller uses `mdb-export`.

Values equal what the `mdb-export` path gives, bit for bit: `mdb-export` prints a
single with 8 and a double with 16 significant digits (`%.8g`, `%.16g`), and the
importer parses that text, so numbers are rounded the same way here (`as_printed`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

PAGE = 4096
TDEF, DATA = 2, 1  # page types
CATALOG_PAGE = 2  # MSysObjects' table definition
ROW_FLAGS = 0xC000  # 0x8000: overflow pointer, 0x4000: deleted
ROW_OFFSET = 0x1FFF
# Jet column type -> (numpy dtype of the stored value, significant digits mdb-export prints)
FIXED = {1: (None, 0), 2: ("<u1", 0), 3: ("<i2", 0), 4: ("<i4", 0), 6: ("<f4", 8),
         7: ("<f8", 16)}
TEXT = 10
SMALL = 200  # rows: below this a table is decoded row by row (text allowed)


class NotUnderstood(Exception):
    """Something in the file the reader does not handle: fall back to mdb-export."""


def read_tables(path: Path, names: Iterable[str]) -> dict[str, dict[str, Any] | bytes | None]:
    """Table name -> column name -> values (numbers as float64 or int64 arrays, text as
    str / None), or None for a table this reader cannot read (or a file that is no Jet 4
    database): the caller then uses mdb-export for it."""
    names = list(names)
    try:
        db = _Database(np.fromfile(path, dtype=np.uint8))
        catalog = db.catalog()
    except (NotUnderstood, ValueError, IndexError, UnicodeDecodeError, OSError):
        return dict.fromkeys(names)
    out: dict[str, dict[str, Any] | bytes | None] = {}
    for name in names:
        try:
            out[name] = db.table(catalog[name]) if name in catalog else None
        except (NotUnderstood, ValueError, IndexError, UnicodeDecodeError):
            out[name] = None
    return out


class _Column:
    __slots__ = ("name", "type", "id", "var_index", "fixed", "offset", "length")

    def __init__(self, raw: bytes) -> None:
        self.type = raw[0]
        self.id = int.from_bytes(raw[5:7], "little")
        self.var_index = int.from_bytes(raw[7:9], "little")
        self.fixed = bool(raw[15] & 0x01)
        self.offset = int.from_bytes(raw[21:23], "little")
        self.length = int.from_bytes(raw[23:25], "little")
        self.name = ""


class JetColumns(Mapping):
    """A large table's columns, each gathered (and rounded as mdb-export prints it)
    when first asked for: the importer uses about half of them."""

    def __init__(self, db: _Database, cols: list[_Column], starts: np.ndarray,
                 ends: np.ndarray, mask_size: int) -> None:
        for col in cols:
            if col.type not in FIXED or (FIXED[col.type][0] is not None
                                         and np.dtype(FIXED[col.type][0]).itemsize != col.length):
                raise NotUnderstood(f"column {col.name!r} of type {col.type}")
        self._db, self._starts, self._ends, self._mask_size = db, starts, ends, mask_size
        self._cols = {c.name: c for c in cols}
        self._values: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._values:
            self._values[name] = self._db.fixed_column(self._cols[name], self._starts,
                                                       self._ends, self._mask_size)
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._cols)

    def __len__(self) -> int:
        return len(self._cols)


class _Database:
    def __init__(self, buf: np.ndarray) -> None:
        if len(buf) < 3 * PAGE or len(buf) % PAGE or buf[0] != 0 or buf[1] != 1:
            raise NotUnderstood("not a database of 4 KiB pages")
        if bytes(buf[4:19]) != b"Standard Jet DB" or buf[0x14] != 1:  # 1: Jet 4
            raise NotUnderstood("not Jet 4")
        self.buf = buf
        self.pages = buf.reshape(-1, PAGE)

    def u16(self, pos: int) -> int:
        return int(self.buf[pos]) | int(self.buf[pos + 1]) << 8

    def u32(self, pos: int) -> int:
        return int(self.buf[pos:pos + 4].view("<u4")[0])

    def catalog(self) -> dict[str, int]:
        """Table name -> page of its definition, from MSysObjects (type 1: a table)."""
        cols, starts, ends, mask_size = self.layout(CATALOG_PAGE)
        by_name = {c.name: c for c in cols}
        ids = self._fixed_raw(by_name["Id"], starts, "<i4")
        kinds = self._fixed_raw(by_name["Type"], starts, "<i2")
        out = {}
        for i in np.flatnonzero(kinds == 1):
            name = self._text(by_name["Name"], int(starts[i]), int(ends[i]), mask_size)
            out[name] = int(ids[i]) & 0xFFFFFF
        return out

    def definition(self, page: int) -> tuple[int, list[_Column], int]:
        """(row count, columns in table order, usage map pointer) of a table."""
        base = page * PAGE
        if self.buf[base] != TDEF or self.u32(base + 4) != 0:  # 0: no continuation page
            raise NotUnderstood(f"table definition at page {page}")
        rows, ncols = self.u32(base + 16), self.u16(base + 45)
        n_real_idx = self.u32(base + 51)
        pos = base + 63 + 12 * n_real_idx
        cols = [_Column(bytes(self.buf[pos + 25 * i: pos + 25 * i + 25])) for i in range(ncols)]
        pos += 25 * ncols
        for col in cols:
            size = self.u16(pos)
            col.name = bytes(self.buf[pos + 2:pos + 2 + size]).decode("utf-16-le")
            pos += 2 + size
        if pos > base + PAGE:
            raise NotUnderstood("table definition longer than a page")
        cols.sort(key=lambda c: c.id)  # mdb-export's order; the null mask is by id
        if [c.id for c in cols] != list(range(ncols)):
            raise NotUnderstood("column numbers with gaps (a column deleted)")
        return rows, cols, self.u32(base + 55)

    def owned_pages(self, usage: int, tdef: int) -> np.ndarray:
        """The table's data pages (ascending, as mdb-export walks them) from its usage map."""
        start, end = self.row_bounds(usage >> 8, usage & 0xFF)
        kind = int(self.buf[start])
        if kind == 0:  # inline: first page number, then one bit per page
            first = self.u32(start + 1)
            bits = np.unpackbits(self.buf[start + 5:end], bitorder="little")
            pages = first + np.flatnonzero(bits)
        elif kind == 1:  # a list of bitmap pages, each covering (PAGE - 4) * 8 pages
            span = (PAGE - 4) * 8
            refs = self.buf[start + 1:end - ((end - start - 1) % 4)].view("<u4")
            found = []
            for k, ref in enumerate(refs):
                if ref:
                    bits = np.unpackbits(self.pages[int(ref), 4:], bitorder="little")
                    found.append(k * span + np.flatnonzero(bits))
            pages = np.concatenate(found) if found else np.zeros(0, np.int64)
        else:
            raise NotUnderstood(f"usage map type {kind}")
        pages = pages.astype(np.int64)
        if np.any(pages >= len(self.pages)):
            raise NotUnderstood("usage map points past the end of the file")
        owner = self.pages[pages, 4:8].copy().view("<u4")[:, 0]
        if np.any(self.pages[pages, 0] != DATA) or np.any(owner != tdef):
            raise NotUnderstood("a page in the usage map is not this table's data page")
        return pages

    def row_bounds(self, page: int, row: int) -> tuple[int, int]:
        """Absolute [start, end) of one row (for usage maps and small tables)."""
        base = page * PAGE
        if self.buf[base] != DATA or row >= self.u16(base + 12):
            raise NotUnderstood(f"row {row} of page {page}")
        start = self.u16(base + 14 + 2 * row)
        end = PAGE if row == 0 else self.u16(base + 12 + 2 * row) & ROW_OFFSET
        if start & ROW_FLAGS:
            raise NotUnderstood(f"row {row} of page {page} is deleted or an overflow")
        return base + start, base + end

    def rows(self, pages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Absolute starts and ends of every row on the pages, in page then row order."""
        counts = self.pages[pages, 12].astype(np.int64) | self.pages[pages, 13].astype(
            np.int64) << 8
        n = int(counts.sum())
        page_of = np.repeat(pages, counts)
        first = np.cumsum(counts) - counts
        k = np.arange(n) - np.repeat(first, counts)  # row number within its page
        at = page_of * PAGE + 14 + 2 * k
        offsets = self.buf[at].astype(np.int64) | self.buf[at + 1].astype(np.int64) << 8
        if np.any(offsets & ROW_FLAGS):
            raise NotUnderstood("deleted or overflow rows")
        ends = np.empty(n, np.int64)
        ends[1:] = offsets[:-1]
        ends[first] = PAGE  # the first row of a page ends at the page's end
        starts = page_of * PAGE + offsets
        ends = page_of * PAGE + ends
        if np.any(ends <= starts) or np.any(offsets < 14 + 2 * counts.repeat(counts)):
            raise NotUnderstood("row offsets out of order")
        return starts, ends

    def layout(self, tdef: int) -> tuple[list[_Column], np.ndarray, np.ndarray, int]:
        """Columns, row starts and ends, and null mask size of a table."""
        nrows, cols, usage = self.definition(tdef)
        starts, ends = self.rows(self.owned_pages(usage, tdef))
        if len(starts) != nrows:
            raise NotUnderstood(f"{len(starts)} rows found, the definition says {nrows}")
        if np.any(self._u16_at(starts) != len(cols)):
            raise NotUnderstood("rows written with another column count")
        mask_size = (len(cols) + 7) // 8
        fixed_end = max((c.offset + c.length for c in cols if c.fixed), default=0)
        if np.any(ends - starts < 2 + fixed_end + mask_size):
            raise NotUnderstood("rows shorter than their fixed columns")
        return cols, starts, ends, mask_size

    def table(self, tdef: int) -> dict[str, Any] | bytes:
        """Column name -> values; a table with text columns (a small one): its CSV text."""
        cols, starts, ends, mask_size = self.layout(tdef)
        if any(not c.fixed for c in cols):
            if len(starts) > SMALL:
                raise NotUnderstood("text columns in a large table")
            return self._small_table(cols, starts, ends, mask_size)
        return JetColumns(self, cols, starts, ends, mask_size)

    def _u16_at(self, pos: np.ndarray) -> np.ndarray:
        return self.buf[pos].astype(np.int64) | self.buf[pos + 1].astype(np.int64) << 8

    def _present(self, col: _Column, ends: np.ndarray, mask_size: int) -> np.ndarray:
        """The null mask bit of the column in each row: set = a value (booleans: True)."""
        byte = self.buf[ends - mask_size + col.id // 8]
        return (byte >> (col.id % 8)) & 1 == 1

    def fixed_column(self, col: _Column, starts: np.ndarray, ends: np.ndarray,
                      mask_size: int) -> np.ndarray:
        present = self._present(col, ends, mask_size)
        if col.type not in FIXED:
            raise NotUnderstood(f"column {col.name!r} of type {col.type}")
        dtype, digits = FIXED[col.type]
        if dtype is None:  # boolean: the mask bit is the value
            return present.astype(np.int64)
        raw = self._fixed_raw(col, starts, dtype)
        values = as_printed(raw.astype(np.float64), digits) if digits else raw.astype(np.int64)
        if not np.all(present):  # a NULL: empty text in mdb-export, NaN once parsed
            values = np.where(present, values, np.nan)
        return values

    def _fixed_raw(self, col: _Column, starts: np.ndarray, dtype: str) -> np.ndarray:
        size = np.dtype(dtype).itemsize
        if size != col.length:
            raise NotUnderstood(f"column {col.name!r} of length {col.length}")
        at = starts + 2 + col.offset
        return self.buf[at[:, None] + np.arange(size)].copy().view(dtype)[:, 0]

    def _small_table(self, cols: list[_Column], starts: np.ndarray, ends: np.ndarray,
                     mask_size: int) -> bytes:
        """The table as the CSV text mdb-export prints (numbers with its digits, text
        quoted), so that the importer parses it exactly as it parses mdb-export's."""
        cells: list[list[str]] = []
        for col in cols:
            present = self._present(col, ends, mask_size)
            if col.fixed:
                if col.type not in FIXED:
                    raise NotUnderstood(f"column {col.name!r} of type {col.type}")
                dtype, digits = FIXED[col.type]
                if dtype is None:
                    cells.append(["1" if p else "0" for p in present])
                    continue
                values = self._fixed_raw(col, starts, dtype).tolist()
                cells.append([("" if not p else f"{v:.{digits}g}" if digits else str(v))
                              for v, p in zip(values, present, strict=True)])
            elif col.type == TEXT:
                cells.append(["" if not p else _quoted(self._text(col, int(s), int(e), mask_size))
                              for s, e, p in zip(starts, ends, present, strict=True)])
            else:
                raise NotUnderstood(f"column {col.name!r} of type {col.type}")
        header = ",".join(c.name for c in cols)
        lines = [header] + [",".join(row) for row in zip(*cells, strict=True)]
        return ("\n".join(lines) + "\n").encode("utf-8")

    def _text(self, col: _Column, start: int, end: int, mask_size: int) -> str:
        """A text value: the row's variable-column offsets are stored backwards before
        its null mask, after the count of variable columns."""
        tail = end - mask_size
        nvar = self.u16(tail - 2)
        if col.var_index >= nvar:
            return ""  # column added after the row was written
        lo = self.u16(tail - 4 - 2 * col.var_index)
        hi = self.u16(tail - 6 - 2 * col.var_index)
        if not 0 <= lo <= hi <= end - start:
            raise NotUnderstood(f"text of column {col.name!r}")
        raw = bytes(self.buf[start + lo:start + hi])
        if raw[:2] == b"\xff\xfe":  # "compressed": one byte per character
            if b"\x00" in raw[2:]:
                raise NotUnderstood("compressed text switching to two-byte characters")
            return raw[2:].decode("latin-1")
        return raw.decode("utf-16-le")


_POW10 = [np.longdouble(1)]
for _ in range(27):  # 10**k exact in an 80-bit long double up to k = 27
    _POW10.append(_POW10[-1] * 10)
_POW10 = np.array(_POW10, dtype=np.longdouble)
_POW10_F8 = 10.0 ** np.arange(23)  # exact in a double up to 10**22


def as_printed(x: np.ndarray, digits: int) -> np.ndarray:
    """float('%.{digits}g' % v) for every v, vectorised: the value rounded to `digits`
    significant decimal digits, then to the nearest double — what mdb-export's text
    gives once parsed.

    The scaled value v * 10**k (k: `digits` digits before the point) is computed within
    half an ulp of exact — in doubles for singles (8 digits: a double has room to
    spare), in 80-bit long doubles for doubles (16 digits) — and rounded to an integer
    N; N / 10**k is then correctly rounded (doubles: N and 10**k exact, one division;
    long doubles: checked not to lie near a midpoint between two doubles). Values too
    close to a tie to be sure, or with 10**k out of range, are formatted one by one."""
    x = np.asarray(x, dtype=np.float64)
    out = x.copy()
    ax = np.abs(x)
    todo = np.flatnonzero(np.isfinite(x) & (ax != 0) & ((ax != np.rint(ax)) |
                                                         (ax >= 10.0 ** digits)))
    if not len(todo):  # integers with at most `digits` digits print exactly
        return out
    long = digits > 15
    if long and np.finfo(np.longdouble).nmant < 63:  # no x87 long double: one by one
        for i in todo.tolist():
            out[i] = float(f"{x[i]:.{digits}g}")
        return out
    with np.errstate(over="ignore", invalid="ignore"):  # near the largest double
        r, unsure = _rounded(ax[todo], digits, long)
    out[todo] = np.copysign(r, x[todo])
    for i in todo[unsure].tolist():
        out[i] = float(f"{x[i]:.{digits}g}")
    return out


def _rounded(ax: np.ndarray, digits: int, long: bool) -> tuple[np.ndarray, np.ndarray]:
    kind, pow10, top = ((np.longdouble, _POW10, 27) if long else
                        (np.float64, _POW10_F8, 22))
    a = ax.astype(kind)
    k = digits - 1 - np.floor(np.log10(ax)).astype(np.int64)
    y = _scaled(a, k, pow10, top)
    off = (y < pow10[digits - 1]).astype(np.int64) - (y >= pow10[digits])
    if np.any(off):  # log10 one off near a power of ten
        k += off
        y = _scaled(a, k, pow10, top)
    unsure = np.abs(k) > top
    whole = np.rint(y)
    eps = np.finfo(kind).eps
    unsure |= np.abs(np.abs(y - whole) - 0.5) <= y * (4 * eps)
    q = _scaled(whole, -k, pow10, top)
    r = q.astype(np.float64)
    if long:  # a long double quotient rounded again to a double: only safe off midpoints
        half = np.spacing(r).astype(np.longdouble) / 2
        unsure |= np.abs(np.abs(q - r) - half) <= q * (4 * eps)
        unsure |= np.frexp(r)[0] == 0.5  # a power of two: the spacing below it is smaller
    return r, unsure | ~np.isfinite(r)


def _scaled(a: np.ndarray, k: np.ndarray, pow10: np.ndarray, top: int) -> np.ndarray:
    """a * 10**k (k clipped to the exact powers; such values are marked unsure)."""
    k = np.clip(k, -top, top)
    if np.all(k >= 0):
        return a * pow10[k]
    if np.all(k <= 0):
        return a / pow10[-k]
    return np.where(k >= 0, a * pow10[np.abs(k)], a / pow10[np.abs(k)])


def _quoted(text: str) -> str:
    """A text field as mdb-export prints it: quoted, quotes doubled; empty: nothing."""
    return '"' + text.replace('"', '""') + '"' if text else ""
