"""Cell files: presets with the seed-fact limits, and errors that point at the problem."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from labctl.cells import DEFAULT_CELL, list_presets, load_cell
from labctl.errors import ValidationError

GOOD = """\
name: Test cell
chemistry: NMC
capacity_ah: 2.0
nominal_voltage_v: 3.6
limits:
  max_voltage_v: 4.2
  min_voltage_v: 2.75
  max_charge_current_a: 2.0
  max_discharge_current_a: 4.0
  max_temperature_c: 60
  min_temperature_c: -20
model:
  ocv_v: {soc: [0.0, 0.5, 1.0], values: [3.0, 3.6, 4.1]}
  r0_ohm: 0.05
  rc_pairs:
    - {r_ohm: 0.01, tau_s: 20}
"""


def write(tmp_path: Path, text: str, name: str = "cell.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problem_of(path: Path):
    with pytest.raises(ValidationError) as info:
        load_cell(path)
    return info.value.problems


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


# -- presets ---------------------------------------------------------------------------------

SEED_LIMITS = {  # seed-facts.md: max V, min V, capacity, max charge current
    "lfp-2p2ah": ("LFP", 3.65, 2.50, 2.2, 2.2),
    "nmc-1p95ah": ("NMC", 4.20, 2.75, 1.95, 1.95),
    "lto-1p8ah": ("LTO", 2.85, 1.80, 1.8, 18.0),
}


def test_presets_are_listed_and_the_default_is_one():
    assert {"lfp-2p2ah", "nmc-1p95ah", "lto-1p8ah", "ssb-bulk"} <= set(list_presets())
    assert DEFAULT_CELL in list_presets()


@pytest.mark.parametrize("name", sorted(SEED_LIMITS))
def test_presets_carry_the_seed_fact_limits(name):
    chemistry, v_max, v_min, capacity, i_charge = SEED_LIMITS[name]
    cell = load_cell(name)
    assert cell.chemistry == chemistry
    assert cell.limits.max_voltage_v == v_max and cell.limits.min_voltage_v == v_min
    assert cell.capacity_ah == capacity and cell.limits.max_charge_current_a == i_charge
    assert Path(cell.source).name == f"{name}.yaml"


def test_solid_state_preset_has_its_own_limits_and_a_big_slow_interface():
    cell = load_cell("ssb-bulk")
    assert cell.chemistry == "solid-state-bulk" and cell.nominal_voltage_v == 2.5
    lfp = load_cell("lfp-2p2ah")
    assert cell.model.r0_ohm(0.5) > 3 * lfp.model.r0_ohm(0.5)
    slow = max(cell.model.rc_pairs, key=lambda p: p.tau_s(0.5))
    assert slow.tau_s(0.5) >= 500 and slow.r_ohm(0.5) > cell.model.r0_ohm(0.5)


@pytest.mark.parametrize("name", ["lfp-2p2ah", "nmc-1p95ah", "lto-1p8ah", "ssb-bulk"])
def test_preset_models_are_plausible(name):
    cell = load_cell(name)
    m = cell.model
    # The OCV spans the voltage window, so full charge and discharge end at the cut-offs.
    assert m.ocv_v(0.0) <= cell.limits.min_voltage_v < m.ocv_v(0.05)
    assert cell.limits.max_voltage_v - 0.25 <= m.ocv_v(1.0) <= cell.limits.max_voltage_v
    assert np.all(np.diff(m.ocv_v.values) > 0)
    assert m.r0_ohm(0.0) > m.r0_ohm(0.5)  # higher resistance when nearly empty
    assert 0.2 <= m.activation_energy_ev <= 0.35
    assert m.arrhenius_factor(-10.0) > 2.0  # and much higher in the cold
    taus = sorted(p.tau_s(0.5) for p in m.rc_pairs)
    assert len(taus) == 2 and 10 <= taus[0] <= 100 and 500 <= taus[1] <= 2000


def test_presets_come_from_the_working_folder_and_the_checkout_not_parents(tmp_path, monkeypatch):
    (tmp_path / "fixtures" / "cells").mkdir(parents=True)
    write(tmp_path / "fixtures" / "cells", GOOD, "my-cell.yaml")
    monkeypatch.chdir(tmp_path)
    assert load_cell("my-cell").name == "Test cell"
    assert "my-cell" in list_presets()
    (tmp_path / "deep" / "er").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "deep" / "er")
    assert "my-cell" not in list_presets()  # a parent folder's presets are not used (issue 13)
    assert load_cell("lfp-2p2ah").chemistry == "LFP"  # from the labctl checkout


def test_unknown_preset_lists_the_presets():
    problems = problem_of(Path("no-such-cell"))
    assert "lfp-2p2ah" in problems[0].message and problems[0].field == "cell"


# -- errors with locations -------------------------------------------------------------------


def test_missing_limit_names_file_line_and_field(tmp_path):
    text = GOOD.replace("  max_charge_current_a: 2.0\n", "")
    path = write(tmp_path, text)
    (p,) = problem_of(path)
    assert p.file == str(path) and p.field == "limits.max_charge_current_a"
    assert p.line == line_of(text, "limits:")
    assert "missing required field 'max_charge_current_a'" in p.message


def test_unknown_key_is_named_with_what_is_allowed(tmp_path):
    text = GOOD.replace("capacity_ah: 2.0", "capcity_ah: 2.0")
    path = write(tmp_path, text)
    problems = problem_of(path)
    unknown = next(p for p in problems if p.field == "capcity_ah")
    assert unknown.line == line_of(text, "capcity_ah") and unknown.file == str(path)
    assert "unknown field 'capcity_ah'" in unknown.message and "capacity_ah" in unknown.message
    assert any(p.field == "capacity_ah" and "missing" in p.message for p in problems)


def test_soc_that_does_not_increase_is_refused_where_it_stands(tmp_path):
    text = GOOD.replace("soc: [0.0, 0.5, 1.0]", "soc: [0.0, 0.5, 0.5]")
    path = write(tmp_path, text)
    (p,) = problem_of(path)
    assert p.field == "model.ocv_v.soc" and p.line == line_of(text, "ocv_v")
    assert "increase strictly" in p.message


def test_bad_values_and_ranges(tmp_path):
    cases = {
        "capacity_ah: 2.0": ("capacity_ah: -1", "capacity_ah", "> 0"),
        "min_voltage_v: 2.75": ("min_voltage_v: 4.5", "limits.min_voltage_v", "below"),
        "r0_ohm: 0.05": ("r0_ohm: 0", "model.r0_ohm", "> 0"),
        "chemistry: NMC": ("chemistry: NiMH", "chemistry", "LFP, NMC, LTO"),
        "nominal_voltage_v: 3.6": ("nominal_voltage_v: 5.0", "nominal_voltage_v", "outside"),
        "- {r_ohm: 0.01, tau_s: 20}": ("- {r_ohm: 0.01, tau_s: fast}", "model.rc_pairs[0].tau_s",
                                       "number"),
    }
    for old, (new, field, words) in cases.items():
        text = GOOD.replace(old, new)
        problems = problem_of(write(tmp_path, text))
        match = [p for p in problems if p.field == field]
        assert match, (new, problems)
        assert words in match[0].message and match[0].line == line_of(text, new.split(":")[0]), new


def test_python_object_tag_is_refused_with_its_location(tmp_path):
    text = GOOD.replace("name: Test cell", "name: !!python/object/apply:os.system ['true']")
    path = write(tmp_path, text)
    (p,) = problem_of(path)
    assert p.file == str(path) and p.line == 1 and "not allowed" in p.message


def test_csv_tables_in_long_format(tmp_path):
    (tmp_path / "ocv.csv").write_text("soc,ocv_v\n0,3.0\n0.5,3.6\n1.0,4.1\n")
    (tmp_path / "r0.csv").write_text(
        "temperature_c,soc,r0_ohm\n0,0,0.2\n0,1,0.1\n25,0,0.08\n25,1,0.04\n")
    text = GOOD.replace("ocv_v: {soc: [0.0, 0.5, 1.0], values: [3.0, 3.6, 4.1]}",
                        "ocv_v: {csv: ocv.csv, column: ocv_v}").replace(
        "r0_ohm: 0.05", "r0_ohm: {csv: r0.csv, column: r0_ohm}")
    cell = load_cell(write(tmp_path, text))
    assert cell.model.ocv_v(0.25) == pytest.approx(3.3)
    assert cell.model.r0_ohm.depends_on_temperature
    assert cell.model.r0_ohm(0.5, 25.0) == pytest.approx(0.06)
    assert cell.model.r0_ohm(0.5, 12.5) == pytest.approx(0.105)
    assert cell.extra["table_files"] == sorted([str(tmp_path / "ocv.csv"), str(tmp_path / "r0.csv")])


def test_bad_csv_row_names_the_csv_file_and_line(tmp_path):
    (tmp_path / "ocv.csv").write_text("soc,ocv_v\n0,3.0\n0.5,three\n1.0,4.1\n")
    text = GOOD.replace("ocv_v: {soc: [0.0, 0.5, 1.0], values: [3.0, 3.6, 4.1]}",
                        "ocv_v: {csv: ocv.csv, column: ocv_v}")
    (p,) = problem_of(write(tmp_path, text))
    assert p.file == str(tmp_path / "ocv.csv") and p.line == 3 and p.field == "ocv_v"
    assert p.column == 2 and "not a finite number" in p.message
    assert "three" not in p.message  # a table file's content is never echoed (issue 13 §3)


def test_two_d_inline_table_interpolates_in_temperature(tmp_path):
    text = GOOD.replace("r0_ohm: 0.05", "r0_ohm: {soc: [0, 1], temperature_c: [0, 40], "
                        "values: [[0.1, 0.2], [0.05, 0.1]]}")
    cell = load_cell(write(tmp_path, text))
    assert cell.model.r0_ohm(0.5, 20.0) == pytest.approx(0.1125)
    wrong = GOOD.replace("r0_ohm: 0.05", "r0_ohm: {soc: [0, 1], temperature_c: [0, 40], "
                         "values: [[0.1, 0.2]]}")
    (p,) = problem_of(write(tmp_path, wrong))
    assert p.field == "model.r0_ohm.values" and "rows" in p.message


def test_model_is_optional(tmp_path):
    text = GOOD[: GOOD.index("model:")]
    cell = load_cell(write(tmp_path, text))
    assert cell.model is None and cell.limits.max_discharge_current_a == 4.0
