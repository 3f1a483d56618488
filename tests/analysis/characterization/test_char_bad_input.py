"""Bad input to the characterisation analyses: a LabctlError that says what was expected."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labctl.analysis.ecm import ecm_table, hppc
from labctl.analysis.gitt import gitt
from labctl.analysis.ocv import ocv_table_csv, pseudo_ocv, rest_ocv_points
from labctl.errors import LabctlError

EMPTY = pd.DataFrame({"test_time_s": [], "voltage_v": [], "current_a": [], "step_index": []})


def _constant_current(n=100):
    t = np.arange(n, dtype=float)
    return pd.DataFrame({"test_time_s": t, "voltage_v": 3.7 - 1e-3 * t,
                         "current_a": np.full(n, -1.0), "step_index": np.ones(n, int)})


@pytest.mark.parametrize("call", [
    lambda df: hppc(df), lambda df: gitt(df), lambda df: rest_ocv_points(df),
    lambda df: pseudo_ocv(df, pd.DataFrame({"step_index": [1], "kind": ["charge"]})),
])
def test_missing_columns_named(call):
    df = pd.DataFrame({"test_time_s": [0.0, 1.0], "voltage_v": [3.7, 3.7]})
    with pytest.raises(LabctlError, match="missing column.*current_a"):
        call(df)


@pytest.mark.parametrize("call", [lambda df: hppc(df), lambda df: gitt(df),
                                  lambda df: rest_ocv_points(df)])
def test_empty_table(call):
    with pytest.raises(LabctlError, match="empty"):
        call(EMPTY)


def test_no_rests_or_pulses_found():
    df = _constant_current()
    with pytest.raises(LabctlError, match="no rest of at least"):
        rest_ocv_points(df)
    with pytest.raises(LabctlError, match="no pulse with a rest before and after"):
        gitt(df, capacity_ah=1.0)
    with pytest.raises(LabctlError, match="no pulse found"):
        hppc(df, capacity_ah=1.0)


def test_pseudo_ocv_without_steps_kind():
    with pytest.raises(LabctlError, match="missing column.*kind"):
        pseudo_ocv(_constant_current(), pd.DataFrame({"step_index": [1]}))


def test_ecm_table_and_csv_checks(tmp_path):
    with pytest.raises(LabctlError, match="direction"):
        ecm_table(pd.DataFrame({"direction": ["charge"], "soc": [0.5], "temperature_c": [25.0],
                                "r0_ohm": [0.03]}), direction="up")
    with pytest.raises(LabctlError, match="no discharge pulses"):
        ecm_table(pd.DataFrame({"direction": ["charge"], "soc": [0.5], "temperature_c": [25.0],
                                "r0_ohm": [0.03]}))
    with pytest.raises(LabctlError, match="missing column.*ocv_v"):
        ocv_table_csv(pd.DataFrame({"soc": [0.0, 1.0]}), tmp_path / "x.csv")
