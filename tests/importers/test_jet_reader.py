"""importers/jet_reader.py against mdbtools' mdb-export on the Arbin .res sample (every
column of every row), its number rounding against Python's own printf-style formatting,
and damaged files: the reader gives up (None) and the import falls back to mdb-export."""

from __future__ import annotations

import csv
import io
import subprocess
from pathlib import Path

import numpy as np
import pytest

from labctl.importers import jet_reader

RES = "20160805_test001_45_cc_01.res"
TABLES = ["Channel_Normal_Table", "Global_Table", "Auxiliary_Table", "Channel_Statistic_Table"]


def _mdb_export(path: Path, table: str) -> tuple[list[str], list[list[str]]]:
    out = subprocess.run(["mdb-export", str(path), table], capture_output=True, check=True)
    rows = list(csv.reader(io.StringIO(out.stdout.decode("utf-8"))))
    return rows[0], rows[1:]


def _same(ours: object, text: str) -> bool:
    """A value of ours equals a field of mdb-export's text: numbers exactly as the text
    parses, text as printed, NULL as an empty field."""
    if ours is None or (isinstance(ours, float) and ours != ours):
        return text == ""
    if isinstance(ours, str):
        return ours == text
    return float(ours) == float(text)


def _as_rows(got) -> tuple[list[str], list[list[object]]]:
    if isinstance(got, bytes):  # tables with text come back as mdb-export-style CSV
        rows = list(csv.reader(io.StringIO(got.decode("utf-8"))))
        return rows[0], rows[1:]
    names = list(got)
    columns = [np.asarray(got[n]).tolist() for n in names]
    return names, [list(r) for r in zip(*columns, strict=True)]


def test_every_value_of_every_table_as_mdb_export(vendor):
    got = jet_reader.read_tables(vendor / RES, TABLES)
    for table in TABLES:
        assert got[table] is not None, table
        names, rows = _as_rows(got[table])
        want_names, want_rows = _mdb_export(vendor / RES, table)
        assert names == want_names, table
        assert len(rows) == len(want_rows), table
        for i, (ours, theirs) in enumerate(zip(rows, want_rows, strict=True)):
            for name, a, b in zip(names, ours, theirs, strict=True):
                if isinstance(got[table], bytes):  # both sides text: compare as mdb-export
                    ok = a == b or (a != "" and b != "" and float(a) == float(b))
                else:
                    ok = _same(a, b)
                assert ok, f"{table} row {i + 1} {name}: ours {a!r}, mdb-export {b!r}"
    assert len(_as_rows(got["Channel_Normal_Table"])[1]) == 10261


def test_as_printed_is_printf_rounding():
    rng = np.random.default_rng(7)
    values = rng.standard_normal(100_000) * 10.0 ** rng.integers(-40, 40, 100_000)
    singles = (values * 1e-10).astype(np.float32).astype(np.float64)
    special = np.array([0.0, -0.0, 1.0, -3.0, 1.00390625, -1.00390625, 2.5, 0.125,
                        12345678.5, 123456789.0, 1e16, 1e22, 1e-7, 5e-324, 1.7976931348623157e308,
                        np.inf, -np.inf, np.nan, 9.9999999999999999, 0.1, 1 / 3])
    for x, digits in ((values, 16), (singles, 8), (special, 16), (special, 8),
                      (np.round(values, 3), 16), (singles, 16)):
        want = np.array([float(f"{v:.{digits}g}") for v in x.tolist()])
        got = jet_reader.as_printed(x, digits)
        same = (got.view(np.int64) == want.view(np.int64)) | (np.isnan(got) & np.isnan(want))
        bad = np.flatnonzero(~same)
        assert not len(bad), [(x[i], got[i], want[i]) for i in bad[:5]]


def _data_pages(data: bytearray, table: str) -> list[int]:
    """Pages of the file that are data pages (type 1) owned by the table's definition."""
    db = jet_reader._Database(np.frombuffer(bytes(data), dtype=np.uint8))
    tdef = db.catalog()[table]
    return [p for p in range(len(data) // 4096) if data[p * 4096] == 1
            and int.from_bytes(data[p * 4096 + 4:p * 4096 + 8], "little") == tdef]


@pytest.mark.parametrize("damage", ["deleted-row", "overflow-row", "page-type", "row-offset",
                                    "column-count", "jet3", "truncated"])
def test_a_damaged_or_unknown_file_falls_back(vendor, tmp_path, damage):
    data = bytearray((vendor / RES).read_bytes())
    page = _data_pages(data, "Channel_Normal_Table")[3] * 4096
    first_row = int.from_bytes(data[page + 14:page + 16], "little")
    if damage == "deleted-row":
        data[page + 15] |= 0x40
    elif damage == "overflow-row":
        data[page + 15] |= 0x80
    elif damage == "page-type":
        data[page] = 0x07
    elif damage == "row-offset":
        data[page + 14:page + 16] = (4090).to_bytes(2, "little")
    elif damage == "column-count":
        data[page + first_row] = 3
    elif damage == "jet3":
        data[0x14] = 0
    elif damage == "truncated":
        data = data[:len(data) - 4096 * 7 - 100]
    path = tmp_path / "damaged.res"
    path.write_bytes(bytes(data))
    got = jet_reader.read_tables(path, ["Channel_Normal_Table"])
    assert got["Channel_Normal_Table"] is None

    from labctl.importers.arbin import read_res
    from labctl.importers.base import ImportFailure

    if damage in ("deleted-row", "page-type"):  # mdb-export reads the rest of the file
        parsed = read_res(path, bytes(data))
        assert "mdb-export" in parsed.conversions[0]
        assert 10_000 < parsed.source_rows <= 10261
    elif damage == "column-count":  # mdb-export reads a row without a cycle number
        with pytest.raises(ImportFailure, match="damaged.res: data record .*cycle"):
            read_res(path, bytes(data))


def test_random_damage_never_raises(vendor, tmp_path):
    data = (vendor / RES).read_bytes()
    rng = np.random.default_rng(3)
    for trial in range(12):
        buf = np.frombuffer(data, dtype=np.uint8).copy()
        at = rng.integers(0, len(buf), 200)
        buf[at] = rng.integers(0, 256, 200)
        path = tmp_path / f"noise{trial}.res"
        path.write_bytes(buf.tobytes())
        got = jet_reader.read_tables(path, TABLES)
        for table in TABLES:  # None, or a table whose columns can all be read
            if got[table] is not None and not isinstance(got[table], bytes):
                for name in got[table]:
                    assert len(got[table][name]) == len(got[table]["Test_ID"])


def test_not_a_database(tmp_path):
    path = tmp_path / "x.res"
    path.write_bytes(b"Test_ID,Data_Point\n1,2\n" * 1000)
    assert jet_reader.read_tables(path, ["Global_Table"]) == {"Global_Table": None}


def test_import_tables_identical_to_mdb_export_path(vendor, tmp_path, monkeypatch):
    """The run's Parquet tables and run.json source (but for the reader's name) are the
    same whether the .res is read by the Jet reader or through mdb-export."""
    import json

    import pyarrow.parquet as pq

    from labctl.importers.api import import_file

    fast = import_file(vendor / RES, tmp_path / "fast").path
    monkeypatch.setattr(jet_reader, "read_tables", lambda path, names: dict.fromkeys(names))
    slow = import_file(vendor / RES, tmp_path / "slow").path
    for name in ("timeseries", "steps", "cycles"):
        a, b = pq.read_table(fast / f"{name}.parquet"), pq.read_table(slow / f"{name}.parquet")
        assert a.schema == b.schema and a.num_rows == b.num_rows
        for col in a.column_names:
            x = a.column(col).to_numpy(zero_copy_only=False)
            y = b.column(col).to_numpy(zero_copy_only=False)
            if x.dtype.kind == "f":
                assert np.array_equal(x.view(np.int64), y.view(np.int64)), (name, col)
            else:
                assert (x == y).all(), (name, col)
    src_fast = json.loads((fast / "run.json").read_text())["source"]
    src_slow = json.loads((slow / "run.json").read_text())["source"]
    assert "Jet page reader" in src_fast["conversions"][0]
    assert "mdb-export" in src_slow["conversions"][0]
    for src in (src_fast, src_slow):
        src.pop("imported_unix_s", None)
        src["conversions"] = src["conversions"][1:]
    assert src_fast == src_slow
    assert src_fast["metadata"]["test_name"] == "20160805_sic006_45_cc_01-01-003"
