"""Active balancing moves charge from the high cell to the others: a 50 mV spread falls below
10 mV in the time its transfer current and efficiency predict, and the report splits the
energy into moved and dissipated by the configured efficiency (passive: all dissipated)."""

from __future__ import annotations

import numpy as np
import pytest
from bms_helpers import edited_station, run_procedure

from labctl.cells.load import load_cell
from tests.support import REPO

PROC = REPO / "procedures" / "bms" / "balancing.yaml"
CURRENT_A = 2.0  # transfer current taken from the high cell (strong: a short test)
EFFICIENCY = 0.80
SOC, SPREAD_V, TARGET_V, CELLS = 0.90, 0.050, 0.010, 16


def _closed_form(cell) -> tuple[float, float, float]:
    """(time to target, time per 1 mV of spread at the end, mean voltage of the high cell):
    the high cell loses I; each of the 15 others gains eta I v_high / (15 v_low) (equal power
    shares), integrated on the cell file's OCV table in 0.1 s steps."""
    soc_t, ocv_t = np.asarray(cell.model.ocv_v.soc), np.asarray(cell.model.ocv_v.values)
    ocv = lambda s: np.interp(s, soc_t, ocv_t)  # noqa: E731
    q = cell.capacity_ah * 3600.0
    s_low = SOC
    s_high = np.interp(ocv(s_low) + SPREAD_V, ocv_t, soc_t)
    t, dt, v_sum, n = 0.0, 0.1, 0.0, 0
    while ocv(s_high) - ocv(s_low) >= TARGET_V:
        v_h, v_l = ocv(s_high), ocv(s_low)
        s_high -= CURRENT_A * dt / q
        s_low += EFFICIENCY * CURRENT_A * v_h / ((CELLS - 1) * v_l) * dt / q
        t, v_sum, n = t + dt, v_sum + v_h, n + 1
    # how fast the spread closes at the end: ds/dt of both sides through the OCV slopes
    slope = lambda s: (ocv(s + 1e-4) - ocv(s - 1e-4)) / 2e-4  # noqa: E731
    rate = slope(s_high) * CURRENT_A / q + slope(s_low) * EFFICIENCY * CURRENT_A / (CELLS - 1) / q
    return t, 0.001 / rate, v_sum / n


def test_active_balancing_time_and_energy_split(tmp_path):
    def active(bms):  # identical cells, so the one imposed spread is the only one
        bms["pack"]["spread"] = {"capacity": 0.0, "resistance": 0.0, "soc": 0.0}
        bms["balancing"].update(mode="active", current_a=f"{CURRENT_A} A", efficiency=EFFICIENCY)
        bms["tick_s"] = 0.05  # a slower firmware tick keeps the test short (decisions: 1 s)

    station = edited_station(tmp_path, active)
    _, run, checks = run_procedure(PROC, station, tmp_path / "results", params={
        "current": f"{CURRENT_A * 1000:g} mA", "mode": "active", "efficiency": EFFICIENCY * 100})
    cell = load_cell(REPO / "fixtures" / "cells" / "nmc-1p95ah.yaml")
    predicted_s, one_mv_s, v_high = _closed_form(cell)
    measured_s = checks.loc["balancing.time_to_target", "value"]
    # resolution: one balancing decision (1 s), one frame (0.1 s), 1 mV of the DBC
    assert measured_s == pytest.approx(predicted_s, abs=2.0 + one_mv_s)
    assert checks.loc["balancing.predicted_time", "value"] == pytest.approx(predicted_s, rel=0.01)
    # charge moving to the others closes the spread sooner than bleeding at the same current
    soc_t, ocv_t = np.asarray(cell.model.ocv_v.soc), np.asarray(cell.model.ocv_v.values)
    v_low = np.interp(SOC, soc_t, ocv_t)
    passive_s = (np.interp(v_low + SPREAD_V, ocv_t, soc_t) - np.interp(v_low + TARGET_V, ocv_t, soc_t)) \
        * cell.capacity_ah * 3600.0 / CURRENT_A
    assert predicted_s < passive_s - 5.0
    assert checks.loc["balancing.high_cell_flag", "value"] == 1
    # energy: taken from the high cell at I and its voltage; moved = eta x taken; the rest is heat
    taken = checks.loc["balancing.energy_taken", "value"]
    assert taken == pytest.approx(CURRENT_A * measured_s * v_high, rel=0.03)
    assert checks.loc["balancing.energy_moved", "value"] == pytest.approx(EFFICIENCY * taken)
    assert checks.loc["balancing.energy_dissipated", "value"] == pytest.approx((1 - EFFICIENCY) * taken)
    spread = run.records("bms_balancing")
    assert spread.spread_v.iloc[-1] < TARGET_V and spread.spread_v.iloc[0] > 0.03
    assert (checks.verdict != "fail").all(), checks[checks.verdict == "fail"]
