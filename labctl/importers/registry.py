"""The formats `labctl import` reads, and how a file's format is told from its content.

Detection looks at the bytes (magic numbers of binary files, header lines of text
files), never at the extension: a Maccor export saved as .csv or an EC-Lab file
renamed .txt is still read right. `--format` skips detection.
"""

from __future__ import annotations

import importlib
import io
import re
import zipfile
from pathlib import Path

from labctl.importers.base import Parsed, fail

# name -> "module:function" reading (path, bytes) -> Parsed
READERS: dict[str, str] = {
    "arbin-res": "labctl.importers.arbin:read_res",
    "arbin-csv": "labctl.importers.arbin:read_csv",
    "biologic-mpr": "labctl.importers.biologic:read_mpr",
    "biologic-mpt": "labctl.importers.biologic:read_mpt",
    "maccor": "labctl.importers.maccor:read",
    "neware-nda": "labctl.importers.neware:read_nda",
    "neware-csv": "labctl.importers.neware:read_csv",
    "bdf": "labctl.importers.bdf:read_bdf",
    "pec": "labctl.importers.bdf:read_pec",
    "eis": "labctl.importers.spectra:read",
}
FORMAT_NAMES: tuple[str, ...] = tuple(READERS)

JET_MAGIC = (b"Standard Jet DB", b"Standard ACE DB")
MPR_MAGIC = b"BIO-LOGIC MODULAR FILE"
NDA_MAGIC = b"NEWARE"
ZIP_MAGIC = b"PK\x03\x04"


def detect(path: Path, data: bytes) -> str:
    """The format of a file from its content; ImportFailure if none fits."""
    if data[4:19] in JET_MAGIC:
        return "arbin-res"
    if data.startswith(MPR_MAGIC):
        return "biologic-mpr"
    if data.startswith(NDA_MAGIC):
        return "neware-nda"
    if data.startswith(ZIP_MAGIC):
        return _detect_zip(path, data)
    if b"\x00" in data[:4096]:
        raise fail(path, "byte 0", "binary content of no known format (not an Access/Jet "
                   "database, BioLogic .mpr, Neware .nda/.ndax or spreadsheet)")
    from labctl.importers.textio import head_lines

    lines = head_lines(data)
    fmt = detect_text(lines)
    if fmt is None:
        first = next((ln for ln in lines if ln.strip()), "")[:80]
        raise fail(path, "line 1", f"no known header found (the file starts {first!r})")
    return fmt


def _detect_zip(path: Path, data: bytes) -> str:
    try:
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise fail(path, "byte 0", f"a damaged zip archive ({exc})") from None
    if any(n.startswith("xl/") for n in names):
        return "arbin-csv"  # an .xlsx workbook: Arbin's spreadsheet export
    if any(n.lower().endswith(".ndc") for n in names) or "data.ndc" in names:
        return "neware-nda"
    raise fail(path, "byte 0", "a zip archive that is neither an .xlsx workbook nor a Neware "
               ".ndax file")


def _norm(line: str) -> str:
    return re.sub(r"\s+", " ", line.lower())


def detect_text(lines: list[str]) -> str | None:
    """The format of a text file from its first lines, or None."""
    from labctl.importers import maccor

    if not lines:
        return None
    first = lines[0].strip().lower()
    # "time/s", "ewe/v" hold no whitespace: they are in the lower-cased lines exactly
    # where they are in the whitespace-normalised ones, which cost a regex pass over
    # every head line (~1.4 ms for a Maccor head) that a Maccor file never needs
    if first.startswith("ec-lab ascii file") or any(
            "time/s" in ln and ("ewe/v" in ln or "<ewe>/v" in ln)
            for ln in (x.lower() for x in lines[:120])):
        joined = "\n".join(_norm(ln) for ln in lines[:120])
        # the EC-Lab reader keeps both the timeseries and every impedance sweep; a
        # spectrum-only export (no current column) goes to the EIS reader
        if re.search(r"(^| )<?i>?/m?a( |$)", joined, re.MULTILINE):
            return "biologic-mpt"
        if "freq/hz" in joined:
            return "eis"
        return "biologic-mpt"
    if maccor.looks_like(lines):
        return "maccor"
    head = [_norm(ln) for ln in lines[:120]]
    joined = "\n".join(head)
    for ln in head[:60]:
        if "data_point" in ln and "test_time" in ln and "current" in ln:
            return "arbin-csv"
    if first.startswith("cycle id") and len(head) > 1 and "step id" in head[1]:
        return "neware-csv"
    for ln in head[:10]:
        if ("datapoint" in ln or "record id" in ln or "record index" in ln
                or "data serial number" in ln) and "current" in ln and "voltage" in ln:
            return "neware-csv"
    if first.startswith("#results check") or any(
            "total_time_seconds" in ln or ("voltage_mv" in ln and "current_ma" in ln)
            for ln in head[:60]):
        return "pec"
    for ln in head[:10]:
        if "test time /" in ln and "current /" in ln and "voltage /" in ln:
            return "bdf"
    if _looks_like_spectrum(joined):
        return "eis"
    return None


def _looks_like_spectrum(joined: str) -> bool:
    if ("zcurve" in joined or "end comments" in joined or joined.startswith(("explain", "zplot"))
            or joined.startswith("<application>") and "versastudio" in joined):
        return True
    rows = [ln for ln in joined.splitlines() if ln.strip()][:20]
    if rows and all(len(r.replace(",", " ").replace(";", " ").split()) == 3 and all(
            _is_number(x) for x in r.replace(",", " ").replace(";", " ").split()) for r in rows):
        return True  # headerless: frequency, Z', Z''
    if joined.startswith("<application>"):
        return True
    has_freq = re.search(r"\bfreq|frequency", joined) is not None
    has_z = re.search(r"z'|zreal|re\(z\)|z_real|zre\b", joined) is not None
    return has_freq and has_z


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read(fmt: str, path: Path, data: bytes) -> Parsed:
    """Read `data` (the bytes of `path`) as format `fmt`."""
    module_name, _, func = READERS[fmt].partition(":")
    reader = getattr(importlib.import_module(module_name), func)
    return reader(path, data)
