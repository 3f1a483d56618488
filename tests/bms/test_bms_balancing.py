"""Balancing brings a 50 mV spread below 10 mV in the time the balancing current predicts."""

from __future__ import annotations

import numpy as np
import pytest
from bms_helpers import edited_station, run_procedure

from labctl.cells.load import load_cell
from tests.support import REPO

PROC = REPO / "procedures" / "bms" / "balancing.yaml"
CURRENT_A = 0.5  # a strong bleed keeps the test short
SOC = 0.90
SPREAD_V = 0.050
TARGET_V = 0.010


def test_passive_balancing_time_matches_closed_form(tmp_path):
    def no_spread(bms):  # identical cells, so the one imposed spread is the only one
        bms["pack"]["spread"] = {"capacity": 0.0, "resistance": 0.0, "soc": 0.0}
        bms["balancing"]["current_a"] = f"{CURRENT_A} A"
        bms["tick_s"] = 0.05  # a slower firmware tick keeps the test short (decisions: 1 s)

    station = edited_station(tmp_path, no_spread)
    out, run, checks = run_procedure(PROC, station, tmp_path / "results",
                                     params={"current": f"{CURRENT_A * 1000:g} mA"})
    # Closed form from the cell file: the high cell must lose the charge between its SoC and
    # the SoC whose OCV is 10 mV above the others, at the bleed current.
    cell = load_cell(REPO / "fixtures" / "cells" / "nmc-1p95ah.yaml")
    soc, ocv = np.asarray(cell.model.ocv_v.soc), np.asarray(cell.model.ocv_v.values)
    v_low = np.interp(SOC, soc, ocv)
    soc_high = np.interp(v_low + SPREAD_V, ocv, soc)
    soc_end = np.interp(v_low + TARGET_V, ocv, soc)
    predicted_s = (soc_high - soc_end) * cell.capacity_ah * 3600.0 / CURRENT_A
    measured_s = checks.loc["balancing.time_to_target", "value"]
    # resolution: one balancing decision (1 s), one frame (0.1 s), 1 mV of the DBC
    one_mv_s = (np.interp(v_low + TARGET_V + 0.001, ocv, soc) - soc_end) * cell.capacity_ah \
        * 3600.0 / CURRENT_A
    assert measured_s == pytest.approx(predicted_s, abs=2.0 + one_mv_s)
    assert checks.loc["balancing.initial_spread", "value"] == pytest.approx(SPREAD_V, abs=0.0015)
    assert checks.loc["balancing.high_cell_flag", "value"] == 1
    # passive: the energy burnt is the charge bled times the cell voltage (about 4 V)
    energy = checks.loc["balancing.energy_dissipated", "value"]
    assert energy == pytest.approx(CURRENT_A * measured_s * (v_low + 0.03), rel=0.05)
    spread = run.records("bms_balancing")
    assert spread.spread_v.iloc[-1] < TARGET_V and spread.spread_v.iloc[0] > 0.03
