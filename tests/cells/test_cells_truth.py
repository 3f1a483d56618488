"""Cell presets against the seed facts, and cell-file errors that point at the exact file,
line and field (lines computed here from the text written)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labctl.cells import load_cell
from labctl.errors import Problem, ValidationError

REPO = Path(__file__).resolve().parents[2]

# /work/shared/seed-facts.md: chemistry, max V, min V, example capacity, nominal V range.
SEED = {
    "lfp-2p2ah": ("LFP", 3.65, 2.50, 2.2, (3.2, 3.2)),
    "nmc-1p95ah": ("NMC", 4.20, 2.75, 1.95, (3.6, 3.7)),
    "lto-1p8ah": ("LTO", 2.85, 1.80, 1.8, (2.3, 2.4)),
}


@pytest.mark.parametrize("name", sorted(SEED))
@pytest.mark.parametrize("by", ["preset", "path"])
def test_preset_has_the_seed_fact_limits_and_capacity(name, by):
    chemistry, v_max, v_min, capacity, (nom_lo, nom_hi) = SEED[name]
    cell = load_cell(name if by == "preset" else REPO / "fixtures" / "cells" / f"{name}.yaml")
    assert cell.chemistry == chemistry
    assert cell.limits.max_voltage_v == v_max
    assert cell.limits.min_voltage_v == v_min
    assert cell.capacity_ah == capacity
    assert nom_lo <= cell.nominal_voltage_v <= nom_hi
    assert cell.model is not None
    assert float(cell.model.ocv_v(1.0)) <= cell.limits.max_voltage_v
    assert float(cell.model.ocv_v(0.0)) < float(cell.model.ocv_v(1.0))


def test_solid_state_bulk_preset_loads_with_seed_nominal_voltage():
    cell = load_cell("ssb-bulk")
    assert cell.chemistry == "solid-state-bulk"
    assert cell.nominal_voltage_v == 2.5  # seed facts: solid-state bulk, nominal 2.5 V
    assert cell.capacity_ah > 0
    lim = cell.limits
    assert lim.min_voltage_v < cell.nominal_voltage_v < lim.max_voltage_v
    assert float(cell.model.ocv_v(1.0)) <= lim.max_voltage_v


@pytest.mark.parametrize("name", [*sorted(SEED), "ssb-bulk"])
def test_preset_ocv_never_falls_and_stays_inside_the_limits_in_between(name):
    cell = load_cell(name)
    soc = np.linspace(0.0, 1.0, 1001)
    ocv = cell.model.ocv_v(soc)
    assert np.all(np.diff(ocv) >= 0)
    assert np.all(ocv <= cell.limits.max_voltage_v)


# -- errors ----------------------------------------------------------------------------------

GOOD = """\
name: Truth cell
chemistry: LFP
capacity_ah: 2.5
nominal_voltage_v: 3.2
limits:
  max_voltage_v: 3.65
  min_voltage_v: 2.5
  max_charge_current_a: 2.5
  max_discharge_current_a: 7.5
  max_temperature_c: 60
  min_temperature_c: -20
model:
  ocv_v:
    soc: [0.0, 0.5, 1.0]
    values: [2.6, 3.3, 3.5]
  r0_ohm: 0.03
  rc_pairs:
    - r_ohm: {soc: [0.0, 1.0], values: [0.01, 0.02]}
      tau_s: 40
  thermal:
    heat_capacity_j_per_k: 80
    heat_transfer_w_per_k: 0.1
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cell.yaml"
    path.write_text(text)
    return path


def _line(text: str, needle: str) -> int:
    hits = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(hits) == 1, (needle, hits)
    return hits[0]


def _problems(path: Path) -> list[Problem]:
    with pytest.raises(ValidationError) as info:
        load_cell(path)
    problems = info.value.problems
    assert problems
    # The message of the error carries every problem, located.
    for p in problems:
        assert str(p) in str(info.value)
    return problems


def _one(problems: list[Problem], field: str) -> Problem:
    hits = [p for p in problems if p.field == field]
    assert len(hits) == 1, (field, problems)
    return hits[0]


def test_the_good_file_loads(tmp_path):
    cell = load_cell(_write(tmp_path, GOOD))
    assert cell.name == "Truth cell" and len(cell.model.rc_pairs) == 1


@pytest.mark.parametrize("limit", ["max_voltage_v", "min_voltage_v", "max_charge_current_a",
                                   "max_discharge_current_a", "max_temperature_c",
                                   "min_temperature_c"])
def test_missing_limit(tmp_path, limit):
    text = "".join(line for line in GOOD.splitlines(keepends=True)
                   if not line.startswith(f"  {limit}:"))
    path = _write(tmp_path, text)
    p = _one(_problems(path), f"limits.{limit}")
    assert p.file == str(path)
    assert p.line == _line(text, "limits:")  # the section the field is missing from
    assert limit in p.message and "missing" in p.message


@pytest.mark.parametrize("where, old, new, field", [
    ("top", "capacity_ah: 2.5\n", "capacity_ah: 2.5\ncolour: blue\n", "colour"),
    ("limits", "  max_voltage_v: 3.65\n", "  max_voltage_v: 3.65\n  max_volts: 4\n",
     "limits.max_volts"),
    ("thermal", "    heat_transfer_w_per_k: 0.1\n",
     "    heat_transfer_w_per_k: 0.1\n    emissivity: 0.9\n", "model.thermal.emissivity"),
    ("rc pair", "      tau_s: 40\n", "      tau_s: 40\n      c_farad: 1000\n",
     "model.rc_pairs[0].c_farad"),
])
def test_unknown_key(tmp_path, where, old, new, field):
    text = GOOD.replace(old, new)
    assert text != GOOD
    path = _write(tmp_path, text)
    p = _one(_problems(path), field)
    key = field.rsplit(".", 1)[-1].split("]")[-1]
    assert p.file == str(path)
    assert p.line == _line(text, f"{key}:")
    assert f"'{key}'" in p.message and "allowed" in p.message


@pytest.mark.parametrize("old, new, field, anchor", [
    ("soc: [0.0, 0.5, 1.0]", "soc: [0.0, 0.6, 0.6]", "model.ocv_v.soc", "soc: [0.0, 0.6, 0.6]"),
    ("soc: [0.0, 0.5, 1.0]", "soc: [0.0, 0.7, 0.5]", "model.ocv_v.soc", "soc: [0.0, 0.7, 0.5]"),
    ("r_ohm: {soc: [0.0, 1.0], values: [0.01, 0.02]}",
     "r_ohm: {soc: [1.0, 0.0], values: [0.01, 0.02]}", "model.rc_pairs[0].r_ohm.soc", "r_ohm:"),
])
def test_non_increasing_soc(tmp_path, old, new, field, anchor):
    text = GOOD.replace(old, new)
    assert text != GOOD
    path = _write(tmp_path, text)
    p = _one(_problems(path), field)
    assert p.file == str(path)
    assert p.line == _line(text, anchor)
    assert "increase" in p.message


@pytest.mark.parametrize("old, new, field", [
    ("name: Truth cell", "name: !!python/object/apply:os.system ['echo hacked']", "name"),
    ("  r0_ohm: 0.03", "  r0_ohm: !!python/object:builtins.float 0.03", "model.r0_ohm"),
    ("  thermal:\n", "  thermal: !!python/object:builtins.dict\n", "model.thermal"),
    ("    soc: [0.0, 0.5, 1.0]", "    soc: !!python/tuple [0.0, 0.5, 1.0]", "model.ocv_v.soc"),
])
def test_python_object_tag_refused(tmp_path, old, new, field):
    text = GOOD.replace(old, new)
    assert text != GOOD
    path = _write(tmp_path, text)
    problems = _problems(path)
    assert len(problems) == 1
    (p,) = problems
    assert p.file == str(path)
    assert p.line == _line(text, "!!python")
    assert p.field == field
    assert "python" in p.message and "not allowed" in p.message


@pytest.mark.parametrize("header, rows, bad_row, bad_field", [
    ("soc,ocv", ["0,2.6", "0.5,3.3", "1.0,abc"], 3, "ocv"),
    ("soc,ocv", ["0,2.6", "half,3.3", "1.0,3.5"], 2, "soc"),
    ("soc,ocv", ["0,2.6", "0.5,", "1.0,3.5"], 2, "ocv"),
    ("soc,ocv", ["0,2.6", "0.5,nan", "1.0,3.5"], 2, "ocv"),
    ("temperature_c,soc,ocv", ["0,0,2.6", "0,1,3.5", "hot,0,2.7", "25,1,3.6"], 3,
     "temperature_c"),
])
def test_csv_table_with_a_non_numeric_row(tmp_path, header, rows, bad_row, bad_field):
    csv = tmp_path / "ocv.csv"
    csv.write_text("\n".join([header, *rows]) + "\n")
    text = GOOD.replace("  ocv_v:\n    soc: [0.0, 0.5, 1.0]\n    values: [2.6, 3.3, 3.5]\n",
                        "  ocv_v: {csv: ocv.csv, column: ocv}\n")
    assert text != GOOD
    path = _write(tmp_path, text)
    problems = _problems(path)
    assert len(problems) == 1
    (p,) = problems
    assert Path(p.file) == csv  # the CSV file, not the cell file
    assert p.line == bad_row + 1  # header is line 1
    assert p.field == bad_field
    assert p.column == header.split(",").index(bad_field) + 1
