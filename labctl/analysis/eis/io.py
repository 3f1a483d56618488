"""Impedance spectra from text files exported by potentiostat software, and back.

Accepted layouts (column names are matched ignoring case, spaces and quotes):

1. **generic** (what `write_spectrum_csv` writes): a header row naming a
   frequency, a real and an imaginary column, e.g. ``frequency_hz,z_real_ohm,z_imag_ohm``.
   Frequency: ``frequency_hz``, ``freq/Hz``, ``Freq``, ``Frequency``, ``Frequency (Hz)``,
   ``Freq(Hz)``, ``f/Hz``. Real: ``z_real_ohm``, ``Re(Z)/Ohm``, ``Re(Z)``, ``Zreal``,
   ``Z'``, ``Z'(a)``, ``Z' (Ohm)``, ``Zre``. Imaginary: ``z_imag_ohm``, ``Im(Z)/Ohm``,
   ``Im(Z)``, ``Zimag``, ``Z''``, ``Z''(b)``, ``Z'' (Ohm)``, ``Zim``, or any of these
   with a leading minus (``-Im(Z)/Ohm``, ``-Z''``) for a column holding -Im Z.
   Other columns are allowed and ignored.
2. **headerless**: exactly three numeric columns, frequency (Hz), Z' (Ohm), Z'' (Ohm).
3. **BioLogic EC-Lab** text export (``.mpt``/``.txt``): tab separated, the
   ``EC-Lab ASCII FILE`` preamble with ``Nb header lines : N`` (or none), columns
   ``freq/Hz``, ``Re(Z)/Ohm``, ``-Im(Z)/Ohm`` among others.
4. **Gamry** ``.DTA``: the ``ZCURVE TABLE`` block (header ``Pt Time Freq Zreal
   Zimag ...``, a units row, tab-indented data rows); or any table with ``Freq``,
   ``Zreal``, ``Zimag`` headers. Gamry's Zimag is Im Z (negative when capacitive).
5. **ZView/ZPlot** ``.z``: data after the ``End Comments`` line, frequency in the
   first column, Z' and Z'' (= Im Z) in the fifth and sixth; or a table with
   ``Freq(Hz)``, ``Z'(a)``, ``Z''(b)`` headers.

Delimiters: tab, semicolon, comma or whitespace, taken from the header line. A
decimal comma is accepted with tab or semicolon delimiters. Blank lines and lines
starting with ``#`` are skipped.

Sign of the imaginary part: a header that states it (``z_imag_ohm``,
``Im(Z)/Ohm``, ``Zimag``, anything with a leading minus, ZView's Z'') is
trusted. Otherwise (``Z''``, ``Zim``, headerless files) it is detected:
electrochemical spectra are capacitive over most of the range (Im Z < 0), so a
column that is mostly positive holds -Im Z and is negated. ``imag="im"`` or
``imag="minus_im"`` overrides both.

A malformed data row (non-numeric field, wrong number of columns, NaN or
infinite value, frequency <= 0) raises ValidationError naming the file, line
and column.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labctl.capabilities.potentiostat import Spectrum
from labctl.errors import Problem, ValidationError

MAX_PROBLEMS = 20
HEADER_SCAN_LINES = 300  # how far a preamble may push the column header down
# Size caps (issue 13 §3: a 2 M-point file took 86 s and 9.5 GB). A measured
# spectrum has tens to a few thousand points; anything beyond these is not a
# spectrum, and is refused before it is read or fitted.
MAX_POINTS = 20_000
MAX_FILE_BYTES = 16 * 1024 * 1024

_FREQ = {"frequency_hz", "freq/hz", "freq", "frequency", "frequency(hz)", "freq(hz)", "f/hz",
         "f(hz)", "frequency/hz"}
_REAL = {"z_real_ohm", "re(z)/ohm", "re(z)", "zreal", "z'", "z'(a)", "z'(ohm)", "zre",
         "re(z)(ohm)", "zreal(ohm)", "z_re", "z'/ohm", "zre(ohms)"}
# Imaginary column names whose sign convention is explicit (value: True = holds -Im Z).
_IMAG_EXPLICIT = {"z_imag_ohm": False, "im(z)/ohm": False, "im(z)": False, "zimag": False,
                  "z''(b)": False, "zimag(ohm)": False,
                  "z''/ohm": False,  # CH Instruments writes Z"/ohm = Im Z
                  "zim(ohms)": False,  # Parstat
                  "zimg": False}  # PowerSuite
_IMAG_AMBIGUOUS = {"z''", "z''(ohm)", "zim", "z_im", "imag", "im"}


@dataclass(frozen=True)
class SpectrumFile:
    """A spectrum read from a file, with how it was read."""

    spectrum: Spectrum
    path: str
    layout: str  # generic, headerless, biologic, gamry, zview
    imag_column: str  # the header of the column used for Z'' (or "column 3")
    imag_negated: bool  # True when the file held -Im Z
    imag_sign_from: str  # "header", "detected" or "argument"


def _norm(name: str) -> str:
    n = name.strip()
    if len(n) >= 2 and n[0] == n[-1] == '"':
        n = n[1:-1]  # a quoted field
    n = n.replace('"', "''")  # CH Instruments' Z" is Z''
    return re.sub(r"\s+", "", n).lower().replace("ω", "ohm").replace("Ω", "ohm")


def _imag_kind(name: str) -> tuple[bool, bool] | None:
    """(negated, explicit) for an imaginary-part header, None if it is not one."""
    n = _norm(name)
    neg = n.startswith("-")
    base = n[1:] if neg else n
    if base in _IMAG_EXPLICIT:
        return (neg != _IMAG_EXPLICIT[base]), True
    if base in _IMAG_AMBIGUOUS:
        return neg, neg  # a leading minus makes it explicit
    return None


def _decode(path: Path) -> list[str]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")  # EC-Lab and Gamry write Windows text
    return text.splitlines()


def _delimiter(line: str) -> str | None:
    for d in ("\t", ";", ","):
        if d in line:
            return d
    return None  # whitespace


def _fields(line: str, delim: str | None) -> list[tuple[str, int]]:
    """(field, 1-based column) pairs; trailing empty fields dropped."""
    if delim is None:
        return [(m.group(), m.start() + 1) for m in re.finditer(r"\S+", line)]
    out, pos = [], 0
    for part in line.split(delim):
        lead = len(part) - len(part.lstrip())
        out.append((part.strip(), pos + lead + 1))
        pos += len(part) + len(delim)
    while out and out[-1][0] == "":
        out.pop()
    return out


def _number(text: str, delim: str | None) -> float:
    text = text.strip().strip('"')  # spreadsheet exports quote fields
    if delim in ("\t", ";") and "," in text and "." not in text:
        text = text.replace(",", ".")
    return float(text)


def _is_numeric_row(line: str) -> bool:
    """Every non-empty field is a number (Gamry rows begin with an empty field)."""
    delim = _delimiter(line)
    f = [t for t, _ in _fields(line, delim) if t]
    try:
        for t in f:
            _number(t, delim)
    except ValueError:
        return False
    return bool(f)


def _skip(line: str) -> bool:
    s = line.strip()
    return not s or s.startswith("#")


@dataclass
class _Table:
    layout: str
    header_line: int  # 1-based, 0 when headerless
    n_columns: int | None  # required columns per row (None: at least max index + 1)
    columns: tuple[int, int, int]  # field indices of f, Z', Z''
    imag_name: str
    negated: bool | None  # None = detect from the data
    delim: str | None
    data: list[tuple[int, str]]  # (line number, text)
    skip_zero_frequency: bool = False  # Parstat: DC rows (frequency 0) before the sweep


def _locate(lines: list[str], src: str) -> _Table:
    def problem(line, msg):
        return ValidationError([Problem(src, line, None, "", msg)])

    first = next((i for i, ln in enumerate(lines) if not _skip(ln)), None)
    if first is None:
        raise problem(None, "the file holds no data; expected a table of frequency, Z', Z''")

    # BioLogic EC-Lab preamble
    if lines[first].strip().startswith("EC-Lab ASCII FILE"):
        for i, ln in enumerate(lines[first:first + 5], start=first):
            m = re.match(r"\s*Nb header lines\s*:\s*(\d+)", ln)
            if m:
                h = int(m.group(1)) - 1  # the last header line holds the column names
                if h >= len(lines):
                    raise problem(i + 1, f"'Nb header lines : {m.group(1)}' points past the "
                                  "end of the file")
                return _header_table(lines, h, "biologic", src)
        raise problem(first + 1, "EC-Lab file without a 'Nb header lines : N' line")

    for i, ln in enumerate(lines):
        s = ln.strip()
        if s.startswith("ZCURVE"):  # Gamry DTA
            h = i + 1
            if h >= len(lines):
                raise problem(i + 1, "ZCURVE TABLE without a column header line")
            t = _header_table(lines, h, "gamry", src, stop_at_unindented=True)
            # The row after the header holds units (#, s, Hz, ohm ...).
            if t.data and t.data[0][0] == h + 2 and not _is_numeric_row(t.data[0][1]):
                t.data = t.data[1:]
            return t
        if s == "End Comments":  # ZView / ZPlot .z
            delim = next((_delimiter(x) for x in lines[i + 1:] if not _skip(x)), ",")
            rows = [(k + 1, x) for k, x in enumerate(lines[i + 1:], start=i + 1) if not _skip(x)]
            return _Table("zview", i + 1, None, (0, 4, 5), "Z'' (column 6)", False, delim, rows)

    scan = range(min(len(lines), HEADER_SCAN_LINES))
    for i in scan:  # Scribner Z60W (Autolab export) / ZPlotW: one quoted header line
        n = _norm(lines[i])
        if "freq(hz)" in n and "z'(a)" in n and "z''(b)" in n and lines[i].strip().startswith('"'):
            rows = [(k + 1, x) for k, x in enumerate(lines[i + 1:], start=i + 1) if not _skip(x)]
            delim = _delimiter(rows[0][1]) if rows else ","
            layout = "autolab" if "z60w" in _norm(lines[first]) else "zplot"
            return _Table(layout, i + 1, None, (0, 4, 5), "Z''(b)", False, delim, rows)
        if lines[i].startswith("Definition=") and any(
                x.strip().startswith("<Segment") for x in lines[max(0, i - 3):i]):
            return _versastudio(lines, i, src)

    if _is_numeric_row(lines[first]):
        delim = _delimiter(lines[first])
        rows = [(k + 1, x) for k, x in enumerate(lines[first:], start=first) if not _skip(x)]
        return _Table("headerless", 0, 3, (0, 1, 2), "column 3", None, delim, rows)
    # The header is the first line naming the three columns (CH Instruments writes a
    # preamble of settings first); if none does, the error is about the first line.
    for i in scan:
        if not _skip(lines[i]) and _has_columns(lines[i]):
            return _header_table(lines, i, "generic", src)
    return _header_table(lines, first, "generic", src)


def _has_columns(line: str) -> bool:
    norm = [_norm(n) for n, _ in _fields(line, _delimiter(line))]
    return (any(n in _FREQ for n in norm) and any(n in _REAL for n in norm)
            and any(_imag_kind(n) is not None for n in norm))


def _versastudio(lines: list[str], h: int, src: str) -> _Table:
    """VersaStudio .par: `Definition=` names the columns of the segment's rows."""
    lines = list(lines)
    lines[h] = lines[h].split("=", 1)[1]
    t = _header_table(lines, h, "versastudio", src, stop_prefix="</Segment")
    t.n_columns = None  # the definition lists one more name than the rows have fields
    return t


def _header_table(lines: list[str], h: int, layout: str, src: str,
                  stop_at_unindented: bool = False, stop_prefix: str | None = None) -> _Table:
    delim = _delimiter(lines[h])
    names = [n for n, _ in _fields(lines[h], delim)]
    norm = [_norm(n) for n in names]
    fi = next((k for k, n in enumerate(norm) if n in _FREQ), None)
    ri = next((k for k, n in enumerate(norm) if n in _REAL), None)
    ii = next((k for k, n in enumerate(names) if _imag_kind(n) is not None), None)
    missing = [what for what, k in (("frequency", fi), ("real part", ri), ("imaginary part", ii))
               if k is None]
    if missing:
        raise ValidationError([Problem(
            src, h + 1, None, "header",
            f"no {' / '.join(missing)} column among {names}; accepted e.g. "
            "'frequency_hz, z_real_ohm, z_imag_ohm', EC-Lab 'freq/Hz, Re(Z)/Ohm, -Im(Z)/Ohm', "
            "Gamry 'Freq, Zreal, Zimag', ZView \"Freq(Hz), Z'(a), Z''(b)\", or three numeric "
            "columns without a header (see docs/eis.md)")])
    negated, explicit = _imag_kind(names[ii])
    if layout == "generic" and {"freq", "zreal", "zimag"} <= set(norm):
        layout = "gamry"
    elif layout == "generic" and "re(z)/ohm" in norm:
        layout = "biologic"
    elif layout == "generic" and "z'(a)" in norm:
        layout = "zview"
    elif layout == "generic" and "z''/ohm" in norm:
        layout = "chinstruments"
    elif layout == "generic" and "zim(ohms)" in norm:
        layout = "parstat"
    elif layout == "generic" and "zimg" in norm:
        layout = "powersuite"
    rows = []
    for k in range(h + 1, len(lines)):
        x = lines[k]
        if stop_at_unindented and x.strip() and not x[0].isspace():
            break  # next section of a Gamry DTA file
        if stop_prefix is not None and x.strip().startswith(stop_prefix):
            break
        if not _skip(x):
            rows.append((k + 1, x))
    # Gamry's header and rows both begin with a tab (an empty first field), so
    # field indices line up without special handling.
    return _Table(layout, h + 1, len(names), (fi, ri, ii), names[ii],
                  negated if explicit else None, delim, rows,
                  skip_zero_frequency=layout == "parstat")


def read_spectrum_file(path: str | Path, *, imag: str = "auto") -> SpectrumFile:
    """Read a spectrum file (layouts in the module docstring).

    `imag`: "auto" (header, else detected), "im" (the column holds Im Z) or
    "minus_im" (it holds -Im Z).
    """
    p = Path(path)
    src = str(p)
    if imag not in ("auto", "im", "minus_im"):
        raise ValidationError([Problem(src, None, None, "imag",
                                       f"imag={imag!r}; allowed: 'auto', 'im', 'minus_im'")])
    if p.suffix.lower() == ".mpr":
        return _read_mpr(p, src, imag)
    try:
        size = p.stat().st_size
        if not p.is_file():
            raise ValidationError([Problem(src, None, None, "", "not a regular file")])
        if size > MAX_FILE_BYTES:
            raise ValidationError([Problem(
                src, None, None, "", f"the file is {size / 2**20:.1f} MiB; a spectrum file may "
                f"be at most {MAX_FILE_BYTES // 2**20} MiB ({MAX_POINTS} points)")])
        lines = _decode(p)
    except OSError as e:
        raise ValidationError([Problem(src, None, None, "", f"cannot read: {e.strerror or e}")]
                              ) from None
    t = _locate(lines, src)
    names = ("frequency", "Z'", "Z''")
    if len(t.data) > MAX_POINTS:
        raise ValidationError([Problem(
            src, t.data[MAX_POINTS][0], None, "",
            f"{len(t.data)} data rows; a spectrum may have at most {MAX_POINTS} points "
            "(split the file, one spectrum per file)")])
    need = max(t.columns) + 1
    problems: list[Problem] = []
    values: list[tuple[float, float, float]] = []
    for lineno, text in t.data:
        fields = _fields(text, t.delim)
        count_ok = len(fields) == t.n_columns if t.n_columns else len(fields) >= need
        if not count_ok:
            what = (f"{t.n_columns} columns" if t.n_columns else f"at least {need} columns")
            ref = f" like the header on line {t.header_line}" if t.header_line else ""
            problems.append(Problem(src, lineno, None, "",
                                    f"expected {what}{ref}, found {len(fields)}"))
        else:
            row = []
            for name, k in zip(names, t.columns, strict=True):
                txt, col = fields[k]
                try:
                    v = _number(txt, t.delim)
                except ValueError:
                    problems.append(Problem(src, lineno, col, name,
                                            f"{txt!r} is not a number"))
                    break
                if not math.isfinite(v):
                    problems.append(Problem(src, lineno, col, name,
                                            f"{txt} is not allowed; every value must be finite"))
                    break
                if name == "frequency" and v == 0 and t.skip_zero_frequency:
                    break  # a DC row of a Parstat experiment, not part of the sweep
                if name == "frequency" and v <= 0:
                    problems.append(Problem(src, lineno, col, name,
                                            f"frequency must be > 0 Hz, got {txt}"))
                    break
                row.append(v)
            else:
                values.append(tuple(row))
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise ValidationError(problems)
    if not values:
        raise ValidationError([Problem(src, t.header_line or None, None, "",
                                       "no data rows after the header")])
    arr = np.array(values, dtype=float)
    zi = arr[:, 2]
    if imag != "auto":
        negated, how = imag == "minus_im", "argument"
    elif t.negated is not None:
        negated, how = t.negated, "header"
    else:
        negated, how = bool((zi > 0).sum() > (zi < 0).sum()), "detected"
    spectrum = Spectrum(frequency_hz=arr[:, 0], z_real_ohm=arr[:, 1],
                        z_imag_ohm=-zi if negated else zi)
    return SpectrumFile(spectrum, src, t.layout, t.imag_name, negated, how)


MPR_COLUMNS = ("freq/Hz", "Re(Z)/Ohm", "-Im(Z)/Ohm")


def _read_mpr(p: Path, src: str, imag: str) -> SpectrumFile:
    """BioLogic EC-Lab binary .mpr of a PEIS or GEIS technique, through galvani.

    galvani (GPL-3.0-or-later) is an optional extra, imported only here. The
    binary holds -Im Z (as the text export); rows with frequency 0 (a wait or
    OCV part of a sequence) are not part of a sweep and are dropped.
    """
    try:
        from galvani import BioLogic
    except ImportError:
        raise ValidationError([Problem(src, None, None, "", "reading BioLogic .mpr files needs "
                                       "galvani: pip install 'labctl[mpr]' (or export the "
                                       "spectrum as .mpt text from EC-Lab)")]) from None
    try:
        if not p.is_file():
            raise ValidationError([Problem(src, None, None, "", "not a regular file")])
        if p.stat().st_size > 4 * MAX_FILE_BYTES:
            raise ValidationError([Problem(src, None, None, "", "the file is over "
                                           f"{4 * MAX_FILE_BYTES // 2**20} MiB; not a spectrum")])
        with p.open("rb") as fh:
            data = BioLogic.MPRfile(fh).data
    except ValidationError:
        raise
    except OSError as e:
        raise ValidationError([Problem(src, None, None, "", f"cannot read: {e.strerror or e}")]
                              ) from None
    except Exception as e:  # galvani raises ValueError/AssertionError/NotImplementedError...
        raise ValidationError([Problem(src, None, None, "", "not a BioLogic .mpr file galvani "
                                       f"can read ({type(e).__name__}: {e})")]) from None
    names = data.dtype.names or ()
    missing = [c for c in MPR_COLUMNS if c not in names]
    if missing:
        raise ValidationError([Problem(src, None, None, "", f"no {', '.join(missing)} column: "
                                       "not a PEIS/GEIS (impedance) technique; columns are "
                                       f"{', '.join(names)}")])
    f = np.asarray(data["freq/Hz"], dtype=float)
    zr = np.asarray(data["Re(Z)/Ohm"], dtype=float)
    zi = np.asarray(data["-Im(Z)/Ohm"], dtype=float)
    keep = f != 0
    bad = np.flatnonzero(keep & ~(np.isfinite(f) & np.isfinite(zr) & np.isfinite(zi) & (f > 0)))
    if bad.size:
        raise ValidationError([Problem(src, None, None, "", f"data point {int(bad[0]) + 1}: "
                                       "frequency must be > 0 and every value finite")])
    if keep.sum() == 0:
        raise ValidationError([Problem(src, None, None, "", "no impedance points (every "
                                       "frequency is 0)")])
    if keep.sum() > MAX_POINTS:
        raise ValidationError([Problem(src, None, None, "", f"{int(keep.sum())} points; a "
                                       f"spectrum may have at most {MAX_POINTS}")])
    negated = imag != "im"  # the column is -Im Z unless the caller says otherwise
    spectrum = Spectrum(frequency_hz=f[keep], z_real_ohm=zr[keep],
                        z_imag_ohm=-zi[keep] if negated else zi[keep])
    return SpectrumFile(spectrum, src, "biologic-mpr", "-Im(Z)/Ohm", negated,
                        "header" if imag == "auto" else "argument")


def read_spectrum(path: str | Path, *, imag: str = "auto") -> Spectrum:
    """The spectrum in a file (Z = z_real_ohm + j z_imag_ohm; capacitive Z'' < 0)."""
    return read_spectrum_file(path, imag=imag).spectrum


def write_spectrum_csv(path: str | Path, spectrum: Spectrum) -> Path:
    """Write `frequency_hz,z_real_ohm,z_imag_ohm` (Im Z, not -Im Z), full precision."""
    p = Path(path)
    f = np.asarray(spectrum.frequency_hz, dtype=float)
    zr = np.asarray(spectrum.z_real_ohm, dtype=float)
    zi = np.asarray(spectrum.z_imag_ohm, dtype=float)
    rows = "".join(f"{a!r},{b!r},{c!r}\n" for a, b, c in zip(f.tolist(), zr.tolist(),
                                                              zi.tolist(), strict=True))
    p.write_text("frequency_hz,z_real_ohm,z_imag_ohm\n" + rows, encoding="utf-8")
    return p
