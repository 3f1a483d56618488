"""Typos reported as the word that is wrong with the nearest right one; units whose SI
prefix differs by case (m/M) never swapped; only ASCII digits; `export -o` never
overwrites without --force."""

from __future__ import annotations

import textwrap

import pytest

from labctl.procedures.grammar import parse_step_raw
from labctl.units import UnitError, parse_quantity
from tests.support import REPO, json_out, labctl_cmd


def _issues(text: str) -> list[str]:
    step, issues = parse_step_raw(text, capacity_ah=2.2)
    assert step is None
    return [message for _, message in issues]


def test_keyword_typo_names_the_word_and_the_keyword():
    text = "Charge at 1C untill 4.2 V"
    step, issues = parse_step_raw(text, capacity_ah=2.2)
    assert step is None and len(issues) == 1
    offset, message = issues[0]
    assert "unknown word 'untill'" in message and "did you mean 'until'" in message
    assert "unknown unit" not in message
    assert text[offset:offset + 6] == "untill"  # the column points at the typo


@pytest.mark.parametrize(("text", "word", "meant"), [
    ("Chrage at 1C until 3.6 V", "Chrage", "Charge"),
    ("Discharge att 1C until 2.6 V", "att", "at"),
    ("Rest fro 10 minutes", "fro", "for"),
])
def test_other_typos_suggest_the_nearest_keyword(text, word, meant):
    (message,) = _issues(text)
    assert repr(word) in message and f"did you mean {meant!r}" in message


def test_a_real_unknown_unit_still_says_unit_with_a_suggestion():
    (message,) = _issues("Rest for 10 minuts")
    assert "unknown unit 'minuts'" in message and "did you mean 'minutes'" in message


@pytest.mark.parametrize("text", ["1 MA", "1 Ma", "2 MV", "1 MW", "10 Ms", "5 Mohm", "3 mpa"])
def test_prefix_case_is_never_swapped(text):
    with pytest.raises(UnitError, match="case-sensitive"):
        parse_quantity(text)


@pytest.mark.parametrize(("text", "si"), [("1 mA", 1e-3), ("2 MPa", 2.0), ("5 MHz", 5e6),
                                          ("5 MHZ", 5e6), ("5 mHz", 5e-3), ("2.5 v", 2.5),
                                          ("30 Minutes", 1800.0)])
def test_units_still_read_right(text, si):
    assert parse_quantity(text).value == pytest.approx(si)


@pytest.mark.parametrize("text", ["٣ V", "３ A", "1٥ V", "2.５ V"])
def test_unicode_digits_are_refused(text):
    with pytest.raises(UnitError, match="ASCII digit"):
        parse_quantity(text)


def _write(tmp_path, body: str):
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def test_validate_charge_at_1_MA_exits_2_with_the_reason(tmp_path):
    path = _write(tmp_path, """\
        name: t
        requires: [cycler]
        steps:
          - Charge at 1 MA until 3.6 V
        """)
    proc = labctl_cmd("validate", str(path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{path}:4:" in proc.stderr and "'MA'" in proc.stderr and "mega" in proc.stderr


def test_unicode_digit_in_a_parameter_and_a_repeat_is_refused(tmp_path):
    path = _write(tmp_path, """\
        name: t
        requires: [cycler]
        parameters:
          n: {default: 2, type: int}
        steps:
          - repeat: "{n}"
            steps: [Rest for 1 min]
          - repeat: "３"
            steps: [Rest for 1 min]
        """)
    proc = labctl_cmd("validate", str(path), "--param", "n=٣", "--json")
    assert proc.returncode == 2
    fields = {p["field"] for p in json_out(proc)["problems"]}
    assert "--param n" in fields and any("repeat" in f for f in fields)


def test_near_names_for_files_cells_and_parameters(tmp_path):
    proc = labctl_cmd("validate", "procedures/capacty.yaml")
    assert proc.returncode == 2 and "did you mean 'procedures/capacity.yaml'" in proc.stderr
    proc = labctl_cmd("validate", "procedures/capacity.yaml", "--cell", "lfp-2p2h")
    assert proc.returncode == 2 and "did you mean 'lfp-2p2ah'" in proc.stderr
    proc = labctl_cmd("validate", "procedures/capacity.yaml", "--param", "c_rat=1")
    assert proc.returncode == 2 and "did you mean 'c_rate'" in proc.stderr
    path = _write(tmp_path, """\
        name: t
        requires: [cycler]
        parameters:
          rate: {default: 1, unit: C}
        steps:
          - Charge at {rat}C until {cell.max_voltag_v} V
        """)
    proc = labctl_cmd("validate", str(path))
    assert "did you mean 'rate'" in proc.stderr
    assert "did you mean 'cell.max_voltage_v'" in proc.stderr


@pytest.fixture(scope="module")
def a_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    proc = labctl_cmd("run", "procedures/quickstart.yaml", "--results", str(root), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    return next(p for p in root.iterdir() if p.is_dir())


@pytest.mark.parametrize("fmt", ["csv", "bdf", "parquet"])
def test_export_refuses_to_overwrite_without_force(a_run, tmp_path, fmt):
    out = tmp_path / ("out" if fmt == "parquet" else "out.csv")
    assert labctl_cmd("export", str(a_run), "--format", fmt, "-o", str(out)).returncode == 0
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    proc = labctl_cmd("export", str(a_run), "--format", fmt, "-o", str(out))
    assert proc.returncode == 2 and "--force" in proc.stderr and "Traceback" not in proc.stderr
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before  # untouched
    proc = labctl_cmd("export", str(a_run), "--format", fmt, "-o", str(out), "--force")
    assert proc.returncode == 0, proc.stderr


def test_export_refuses_a_sidecar_that_exists(a_run, tmp_path):
    (tmp_path / "out.csv.json").write_text("mine")
    proc = labctl_cmd("export", str(a_run), "--format", "csv", "-o", str(tmp_path / "out.csv"))
    assert proc.returncode == 2 and (tmp_path / "out.csv.json").read_text() == "mine"


def test_export_never_writes_into_the_run_even_with_force(a_run):
    proc = labctl_cmd("export", str(a_run), "--format", "parquet", "-o", str(a_run), "--force")
    assert proc.returncode == 2 and "run directory" in proc.stderr


def test_unicode_digits_in_a_profile_csv_are_refused(tmp_path):
    (tmp_path / "p.csv").write_text("time_s,current_c\n0,0.5\n1,０.5\n2,0.5\n", encoding="utf-8")
    path = _write(tmp_path, """\
        name: t
        requires: [cycler]
        steps:
          - profile: {file: p.csv}
        """)
    proc = labctl_cmd("validate", str(path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "p.csv:3" in proc.stderr  # the line with the full-width zero


def test_unicode_digits_in_a_cell_table_are_refused(tmp_path):
    text = (REPO / "fixtures" / "cells" / "lfp-2p2ah.yaml").read_text(encoding="utf-8")
    start = text.index("  ocv_v:")
    end = text.index("  r0_ohm:")
    (tmp_path / "ocv.csv").write_text("soc,ocv_v\n0,2.5\n0.5,３.3\n1,3.6\n", encoding="utf-8")
    cell = tmp_path / "cell.yaml"
    cell.write_text(text[:start] + "  ocv_v: {csv: ocv.csv, column: ocv_v}\n" + text[end:],
                    encoding="utf-8")
    proc = labctl_cmd("validate", "procedures/quickstart.yaml", "--cell", str(cell))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "ocv.csv:3" in proc.stderr
