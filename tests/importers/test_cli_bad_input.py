"""`labctl import` on the command line: JSON shape, re-import, analyses on imported runs,
and bad input (truncated, corrupt, unknown, random bytes) -> exit 2 naming file and place,
with nothing left in the results store."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl.cli import main
from labctl.errors import LabctlError
from labctl.importers.api import import_file


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _store_is_empty(root):
    return not root.exists() or not [p for p in root.iterdir() if p.is_dir()]


def test_json_shape_and_reimport(vendor, tmp_path):
    res = tmp_path / "results"
    r = _run("import", vendor / "neware_uio.csv", "--results", res, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["ok"] is True
    (run,) = out["runs"]
    assert set(run) == {"path", "format", "rows", "cycles"}
    assert run["format"] == "neware-csv" and run["rows"] == 9065 and run["cycles"] == 4
    again = _run("import", vendor / "neware_uio.csv", "--results", res)
    assert again.exit_code == 0 and "already imported as" in again.output
    assert len([p for p in res.iterdir() if p.is_dir()]) == 1
    shown = _run("show", run["path"], "--json")
    assert shown.exit_code == 0 and "imported" in shown.output


@pytest.mark.parametrize("name", ["maccor_001.txt", "neware_uio.csv"])
def test_cycling_and_dqdv_on_imported(vendor, tmp_path, name):
    res = tmp_path / "results"
    path = import_file(vendor / name, res).path
    for analysis in ("cycling", "dqdv"):
        r = _run("analyze", analysis, path, "--json")
        assert r.exit_code == 0, r.output
        assert (path / "analysis" / analysis).is_dir()


def test_detection_ignores_the_extension(vendor, tmp_path):
    disguised = tmp_path / "data.xlsx"
    shutil.copy(vendor / "maccor_001.txt", disguised)
    assert import_file(disguised, tmp_path / "r").format == "maccor"


def test_truncated_text_names_line(vendor, tmp_path):
    cut = tmp_path / "cut.txt"
    data = (vendor / "maccor_001.txt").read_bytes()
    cut.write_bytes(data[: len(data) // 2 + 37])
    res = tmp_path / "results"
    r = _run("import", cut, "--results", res)
    assert r.exit_code == 2
    assert "cut.txt" in r.output and "line " in r.output and "Accepted formats" in r.output
    assert "Traceback" not in r.output
    assert _store_is_empty(res)


def test_word_in_number_column_names_line_and_column(vendor, tmp_path):
    bad = tmp_path / "bad.csv"
    lines = (vendor / "neware_uio.csv").read_text().splitlines()
    fields = lines[101].split(",")
    fields[6] = "abc"  # Current(A)
    lines[101] = ",".join(fields)
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(LabctlError, match=r"bad\.csv: line 102, column 7 \(Current\(A\)\)"):
        import_file(bad, tmp_path / "r")
    assert _store_is_empty(tmp_path / "r")


@pytest.mark.parametrize("name,where", [("20160805_test001_45_cc_01.res", "table"),
                                        ("biol.mpr", ""), ("20260302_IFE_BTS85_2_9_8_1.ndax",
                                                            "")])
def test_truncated_binary(vendor, tmp_path, name, where):
    cut = tmp_path / name
    cut.write_bytes((vendor / name).read_bytes()[:5000])
    res = tmp_path / "results"
    r = _run("import", cut, "--results", res)
    assert r.exit_code == 2, r.output
    assert name in r.output and "Traceback" not in r.output and where in r.output
    assert _store_is_empty(res)


def test_unknown_file(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("hello\nthis is not cycler data\n")
    r = _run("import", f, "--results", tmp_path / "res", "--json")
    assert r.exit_code == 2
    out = json.loads(r.output)
    assert out["ok"] is False and "notes.txt: line 1" in out["errors"][0]
    assert "maccor" in out["errors"][0]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(
    st.binary(max_size=600),
    st.sampled_from([b"Rec#\tCyc#\tStep\tTestTime\tAmps\tVolts\n", b"BIO-LOGIC MODULAR FILE",
                     b"PK\x03\x04", b"\x00\x01\x00\x00Standard Jet DB\x00",
                     b"EC-Lab ASCII FILE\nNb header lines : 3\n\ntime/s\tEwe/V\tI/mA\n",
                     b"Test Time / s,Current / A,Voltage / V\n"]).flatmap(
        lambda head: st.binary(max_size=300).map(lambda tail: head + tail))))
def test_any_bytes_give_a_run_or_a_clear_error(tmp_path, data):
    f = tmp_path / "blob.bin"
    f.write_bytes(data)
    res = tmp_path / "res"
    try:
        r = import_file(f, res, force=True)
    except LabctlError as exc:
        assert "blob.bin" in str(exc)
        assert not (res.exists() and any(p.name.startswith(".importing") for p in res.iterdir()))
    else:
        assert (r.path / "timeseries.parquet").is_file()


def test_a_truncated_spectrum_file_names_its_line_and_the_formats(tmp_path):
    from pathlib import Path

    src = Path(__file__).parents[1] / "data" / "eis" / "impedance_py" / "exampleDataBioLogic.mpt"
    cut = tmp_path / "cut.mpt"
    cut.write_bytes(src.read_bytes()[:3000])  # ends inside a data row
    r = _run("import", cut, "--results", tmp_path / "results")
    assert r.exit_code == 2 and "Traceback" not in r.output
    # located as every labctl file problem is: file:line: what is wrong
    assert re.search(r"cut\.mpt:\d+: expected \d+ columns", r.output), r.output
    assert "Accepted formats: " in r.output
    assert _store_is_empty(tmp_path / "results")
