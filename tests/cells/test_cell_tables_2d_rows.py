"""A 2-D table whose rows do not all have one value per SoC point is refused where it stands."""

from __future__ import annotations

import pytest

from labctl.cells import load_cell
from labctl.errors import ValidationError

CELL = """\
name: Ragged
chemistry: other
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
  ocv_v: {soc: [0.0, 1.0], values: [3.0, 4.1]}
  r0_ohm:
    soc: [0.0, 0.5, 1.0]
    temperature_c: [0, 25]
    values:
      - [0.10, 0.09, 0.10]
      - [0.05, 0.045]
"""


def test_ragged_row_of_a_2d_table_names_its_line_and_row(tmp_path):
    path = tmp_path / "ragged.yaml"
    path.write_text(CELL)
    with pytest.raises(ValidationError) as info:
        load_cell(path)
    (problem,) = info.value.problems
    assert problem.file == str(path)
    assert problem.field == "model.r0_ohm.values[1]"
    assert problem.line == CELL.splitlines().index("      - [0.05, 0.045]") + 1
    assert "needs 3" in problem.message


def test_the_same_table_with_full_rows_loads(tmp_path):
    path = tmp_path / "full.yaml"
    path.write_text(CELL.replace("[0.05, 0.045]", "[0.05, 0.045, 0.05]"))
    model = load_cell(path).model
    assert model.r0_ohm(0.5, 0.0) == pytest.approx(0.09)
    assert model.r0_ohm(0.5, 12.5) == pytest.approx(0.5 * (0.09 + 0.045))
