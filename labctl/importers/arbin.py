"""Arbin MITS Pro files: the .res database and the CSV / XLSX exports.

A .res file is a Microsoft Access (Jet 4) database. Its tables are read by
`importers/jet_reader.py` (numpy over the database's pages; the same values as
`mdb-export`, several times less CPU); a table it does not understand (deleted or
overflow rows, other column types, Jet 3, damage) is read with mdbtools' `mdb-export`
(Debian/Ubuntu package `mdbtools`): measured on the 10 261-row sample, 0.07 s against
2.7 s for the pure-Python PyPI `access-parser` (39x), with identical values.
`access-parser` is the last resort where `mdb-export` is not installed. Data: `Channel_Normal_Table` (Test_Time s, Current A, Voltage V,
Charge/Discharge_Capacity Ah and _Energy Wh restarting each cycle, Cycle_Index,
Step_Index, DateTime as an OLE date); auxiliary readings: `Auxiliary_Table`
(Data_Point, Auxiliary_Index, Data_Type 1 = temperature in degC, X); metadata:
`Global_Table` (test name, channel, schedule, start time, creator, comments, mass).
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from labctl.importers import jet_reader
from labctl.importers.base import Parsed, fail
from labctl.importers.generic import Roles, from_columns, locate, read_text
from labctl.importers.timeparse import ole_date_unix

FMT_RES = "arbin-res"
FMT_CSV = "arbin-csv"
DATA_TABLE = "Channel_Normal_Table"
GLOBAL_TABLE = "Global_Table"

ARBIN = Roles(
    time=("Test_Time", "Test Time"), current=("Current",), voltage=("Voltage",),
    cycle=("Cycle_Index", "Cycle Index"), step=("Step_Index", "Step Index"),
    charge_ah=("Charge_Capacity", "Charge Capacity"),
    discharge_ah=("Discharge_Capacity", "Discharge Capacity"),
    charge_wh=("Charge_Energy", "Charge Energy"),
    discharge_wh=("Discharge_Energy", "Discharge Energy"),
    temperature=("Aux_Temperature_1", "Temperature", "Aux_Temperature"),
    date=("Date_Time", "Date Time"),
)


AUX_TABLE = "Auxiliary_Table"
AUX_TEMPERATURE = 1  # Auxiliary_Table.Data_Type of a temperature channel (0 is a voltage)


def _export_tables(path: Path, tables: list[str]) -> dict[str, Mapping[str, Any] | Exception]:
    """Tables of the database as column name -> values (or the error reading it).

    First labctl's Jet page reader; the tables it cannot read with mdb-export, one
    process per table, all started at once (each is a separate scan of the file; the
    small metadata tables then cost no extra wall time)."""
    out: dict[str, Mapping[str, Any] | Exception] = {}
    for table, got in jet_reader.read_tables(path, tables).items():
        if isinstance(got, bytes):  # a table with text, as mdb-export's CSV text
            out[table] = _parse_export(path, table, 0, got, b"")
        elif got is not None:
            out[table] = got
    rest = [t for t in tables if t not in out]
    if not rest:
        return out
    exe = shutil.which("mdb-export")
    if exe is None:
        return out | {t: _access_parser_table(path, t) for t in rest}
    procs = {t: subprocess.Popen([exe, str(path), t], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE) for t in rest}
    for table, proc in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            out[table] = fail(path, f"table {table}", "mdb-export took over 10 minutes", FMT_RES)
            continue
        out[table] = _parse_export(path, table, proc.returncode, stdout, stderr)
    return out


def _parse_export(path: Path, table: str, code: int, stdout: bytes, stderr: bytes
                  ) -> dict[str, Any] | Exception:
    if code != 0 or not stdout.strip():
        why = stderr.decode("utf-8", "replace").strip().splitlines()
        return fail(path, f"table {table}", "mdb-export could not read it ("
                    f"{why[-1][:200] if why else 'no output'}); the database is damaged, "
                    "cut short or encrypted", FMT_RES)
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:  # pyarrow's multi-threaded C++ CSV reader on mdb-export's output
        t = pacsv.read_csv(io.BytesIO(stdout))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        return fail(path, f"table {table}", f"unreadable rows ({str(exc)[:200]})", FMT_RES)
    return {name: t.column(name).to_numpy(zero_copy_only=False) for name in t.column_names}


def _access_parser_table(path: Path, table: str) -> dict[str, Any] | Exception:
    try:
        from access_parser import AccessParser
    except ImportError:
        return fail(path, "", "reading Arbin .res needs mdbtools (apt-get install mdbtools) or "
                    "the access-parser package (pip install 'labctl[import]')", FMT_RES)
    try:
        table_data = AccessParser(str(path)).parse_table(table)
    except Exception as exc:  # a damaged file: reported by the caller, no traceback
        return fail(path, f"table {table}", f"unreadable ({type(exc).__name__}: "
                    f"{str(exc)[:200]})", FMT_RES)
    if not table_data:
        return fail(path, f"table {table}", "missing or empty", FMT_RES)
    return {k: np.asarray(v) for k, v in table_data.items()}


def read_res(path: Path, data: bytes) -> Parsed:
    tables = _export_tables(path, [DATA_TABLE, GLOBAL_TABLE, AUX_TABLE])
    cols = tables[DATA_TABLE]
    if isinstance(cols, Exception):
        raise cols
    names = list(cols)
    found = locate(names, ARBIN)
    for role in ("time", "current", "voltage"):
        if role not in found:
            raise fail(path, f"table {DATA_TABLE}", f"no {role} column (found "
                       f"{', '.join(names)[:200]})", FMT_RES)
    n = len(cols[found["time"][0]])
    order = None
    if "Test_ID" in cols and len(np.unique(cols["Test_ID"])) > 1:
        raise fail(path, f"table {DATA_TABLE}", "several tests (Test_ID) in one file; export "
                   "them one at a time", FMT_RES)
    if "Data_Point" in cols:
        dp = np.asarray(cols["Data_Point"], dtype=np.int64)
        if np.any(np.diff(dp) < 0):
            order = np.argsort(dp, kind="stable")
    pick = {role: (cols[hdr] if order is None else cols[hdr][order])
            for role, (hdr, _) in found.items() if role not in ("date",)}
    parsed = from_columns(path, FMT_RES, pick, found, ARBIN)
    parsed.conversions.insert(0, f"read table {DATA_TABLE} with " + (
        "labctl's Jet page reader (importers/jet_reader.py; values as mdb-export prints "
        "them)" if isinstance(cols, jet_reader.JetColumns) else
        "mdb-export (mdbtools)" if shutil.which("mdb-export") else "access-parser"))
    parsed.source_rows = n
    if "DateTime" in cols and n:
        parsed.start_unix_s = ole_date_unix(float(cols["DateTime"][0 if order is None
                                                                   else order[0]]))
        parsed.conversions.append("unix_time_s: the first record's DateTime (an OLE date, "
                                  "days since 1899-12-30, local time taken as UTC) + test time")
    aux = tables[AUX_TABLE]
    if "Data_Point" in cols and isinstance(aux, Mapping) and parsed.temperature_c is None:
        points = np.asarray(cols["Data_Point"], dtype=np.int64)
        _aux_temperature(parsed, aux, points if order is None else points[order])
    meta = tables[GLOBAL_TABLE]  # metadata is a bonus: a damaged Global_Table does not stop it
    meta = meta if isinstance(meta, Mapping) else {}
    for key, ours in (("Test_Name", "test_name"), ("Channel_Index", "channel"),
                      ("Schedule_File_Name", "procedure"), ("Creator", "creator"),
                      ("Comments", "comments"), ("MASS", "mass"), ("Item_ID", "cell"),
                      ("Start_DateTime", "start_time_ole_days")):
        if key in meta and len(meta[key]):
            value = meta[key][0]
            value = value.item() if hasattr(value, "item") else value
            if value is not None and value == value and value != "":
                parsed.metadata[ours] = value
    return parsed


def _aux_temperature(parsed: Parsed, aux: Mapping[str, Any], points: np.ndarray) -> None:
    """temperature_c from Auxiliary_Table: the temperature channel (Data_Type 1, degC)
    with the lowest Auxiliary_Index, matched to the data records by Data_Point (NaN
    where the table has no reading for a record)."""
    need = ("Data_Point", "Auxiliary_Index", "Data_Type", "X")
    if any(k not in aux for k in need) or len(aux["X"]) == 0:
        return
    kind = np.asarray(aux["Data_Type"], dtype=np.float64)
    channel = np.asarray(aux["Auxiliary_Index"], dtype=np.float64)
    is_temp = kind == AUX_TEMPERATURE
    if not np.any(is_temp):
        return
    first = float(np.min(channel[is_temp]))
    rows = is_temp & (channel == first)
    at = np.asarray(aux["Data_Point"], dtype=np.int64)[rows]
    values = np.asarray(aux["X"], dtype=np.float64)[rows]
    order = np.argsort(at, kind="stable")
    at, values = at[order], values[order]
    pos = np.clip(np.searchsorted(at, points), 0, len(at) - 1)
    parsed.temperature_c = np.where(at[pos] == points, values[pos], np.nan)
    others = sorted({int(c) for c in channel[is_temp]} - {int(first)})
    parsed.conversions.append(
        f"temperature_c: {AUX_TABLE} channel {int(first)} (Data_Type 1, degC) matched to the "
        "records by Data_Point" + (f"; other temperature channels not kept: {others}"
                                   if others else ""))


def read_csv(path: Path, data: bytes) -> Parsed:
    if data.startswith(b"PK\x03\x04"):
        return _read_xlsx(path)
    return read_text(path, data, FMT_CSV, ARBIN)


def _read_xlsx(path: Path) -> Parsed:
    try:
        import openpyxl
    except ImportError:
        raise fail(path, "", "reading .xlsx needs openpyxl (pip install 'labctl[import]')",
                   FMT_CSV) from None
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    sheets = [s for s in wb.sheetnames if s.lower().startswith("channel")] or wb.sheetnames
    ws = wb[sheets[0]]
    rows = ws.iter_rows(values_only=True)
    header = [str(c) if c is not None else "" for c in next(rows, ())]
    found = locate(header, ARBIN)
    for role in ("time", "current", "voltage"):
        if role not in found:
            raise fail(path, f"sheet {ws.title!r} row 1", f"no {role} column", FMT_CSV)
    idx = {role: header.index(hdr) for role, (hdr, _) in found.items()}
    values: dict[str, list] = {role: [] for role in idx}
    for r, row in enumerate(rows, start=2):
        for role, k in idx.items():
            v = row[k] if k < len(row) else None
            if role not in ("date", "label"):
                try:
                    v = float(v) if v is not None else float("nan")
                except (TypeError, ValueError):
                    raise fail(path, f"sheet {ws.title!r} row {r}, column {header[k]!r}",
                               f"{str(v)[:40]!r} is not a number", FMT_CSV) from None
            values[role].append(v)
    wb.close()
    cols = {role: (np.asarray(v, dtype=np.float64) if role not in ("date", "label") else
                   np.asarray([str(x) for x in v], dtype=object)) for role, v in values.items()}
    parsed = from_columns(path, FMT_CSV, cols, found, ARBIN)
    parsed.conversions.insert(0, f"read sheet {ws.title!r} of the workbook")
    return parsed
