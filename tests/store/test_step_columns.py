"""The steps table's columns from step_end rows: typed, whatever the rows hold."""

from __future__ import annotations

import math

import numpy as np

from labctl.records import StepResult
from labctl.store.summaries import STEP_COLUMNS, step_columns


def _row(index: int, **changes) -> dict:
    result = StepResult(index, 1, "discharge", f"Discharge {index}", f"steps[{index}]",
                        "condition", "reached 3.2 V", 10.0 * index, 10.0 * index + 5.0, 5.0,
                        6, 0.0, 0.25, 0.0, 0.9, 4.1, 3.2, 3.6, -1.95, -1.95, 31.5, 30.25)
    return dict(result.as_dict(), **changes)


def test_engine_rows_become_typed_columns_in_table_order():
    cols = step_columns([_row(1), _row(2)])
    assert list(cols) == STEP_COLUMNS
    assert cols["step_index"].dtype == np.int64 and cols["step_index"].tolist() == [1, 2]
    assert cols["n_samples"].tolist() == [6, 6]
    assert cols["text"].dtype == object and cols["text"].tolist() == ["Discharge 1", "Discharge 2"]
    assert cols["start_time_s"].dtype == np.float64
    assert cols["start_time_s"].tolist() == [10.0, 20.0]
    assert cols["discharge_energy_wh"].tolist() == [0.9, 0.9]


def test_missing_none_and_foreign_values_are_converted_as_before():
    odd = _row(2, n_samples=None, text=None, mean_voltage_v=None, end_voltage_v="3.25",
               charge_capacity_ah=1, cycle_index=2.0)
    del odd["max_temperature_c"]
    cols = step_columns([_row(1), odd])
    assert cols["n_samples"].tolist() == [6, 0]
    assert cols["text"].tolist() == ["Discharge 1", ""]
    assert cols["cycle_index"].dtype == np.int64 and cols["cycle_index"].tolist() == [1, 2]
    assert math.isnan(cols["mean_voltage_v"][1]) and math.isnan(cols["max_temperature_c"][1])
    assert cols["max_temperature_c"][0] == 31.5
    assert cols["end_voltage_v"].tolist() == [3.2, 3.25]
    assert cols["charge_capacity_ah"].dtype == np.float64
    assert cols["charge_capacity_ah"].tolist() == [0.0, 1.0]


def test_no_rows_give_empty_typed_columns():
    cols = step_columns([])
    assert list(cols) == STEP_COLUMNS
    assert all(len(c) == 0 for c in cols.values())
    assert cols["step_index"].dtype == np.int64 and cols["kind"].dtype == object
    assert cols["duration_s"].dtype == np.float64
