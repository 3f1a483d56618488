"""On-board SoC with the EKF (soc_method: ekf, labctl.analysis.soc's filter per cell inside the
simulated BMS): from a SoC 20 % wrong the BMS converges onto the reference Coulomb count over a
drive profile (RMSE after convergence <= 1 %), while plain Coulomb counting keeps the offset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from bms_helpers import edited_station, run_procedure

TRUE_SOC, WRONG_SOC = 0.80, 0.60  # the pack's SoC, and what the BMS believes at power-up
SETTLE_S = 60.0
PROFILE = "{time: [0, 20, 50, 60, 90, 100, 130], current: [-8, -15, 4, -6, 0, -12, 2]}"


def _run(tmp_path, method: str, repeat: int):
    def edit(bms):
        bms["soc_method"] = method
        bms["soc"]["initial_soc"] = WRONG_SOC
        bms["tick_s"] = 0.05  # the firmware tick; the EKF runs every soc.period_s (0.1 s)
        # cells as resistive as the cell file the EKF uses (capacity spread kept): with the
        # station's 5 % resistance spread (seed 7: 4 % below the file on average) the EKF reads
        # the smaller IR drop as ~2 % more SoC under load - a model error, not convergence
        bms["pack"]["spread"]["resistance"] = 0.0

    station = edited_station(tmp_path, edit)
    proc = tmp_path / "soc.yaml"
    proc.write_text("name: soc\nrequires: [bms]\nsteps:\n"
                    f"  - bms_soc: {{initial_soc: {TRUE_SOC}, profile: {PROFILE}, repeat: {repeat},\n"
                    f"              max_error: 25 %, settle: {SETTLE_S} s, max_rmse: 1 %}}\n"
                    "  - bms_report: {}\n")
    out, run, checks = run_procedure(proc, station, tmp_path / "results")
    sig = pd.read_parquet(next((out.path / "can").glob("step-*-signals.parquet")))
    soc_frames = sig[sig.signal == "SoC"].sort_values("test_time_s")
    return run.records("bms_soc"), checks, soc_frames


def test_ekf_converges_from_a_wrong_initial_soc(tmp_path):
    rows, checks, frames = _run(tmp_path, "ekf", 2)
    # the BMS's first SoC frames (before the profile, contactors closing) say 60 %: 20 % low
    assert frames.value.iloc[0] / 100 == pytest.approx(WRONG_SOC, abs=0.01)
    t = rows.test_time_s - rows.test_time_s.iloc[0]
    err = rows.soc_bms - rows.soc_reference
    after = t >= SETTLE_S
    rmse = float(np.sqrt(np.mean(err[after] ** 2)))
    assert rmse <= 0.01, rmse
    assert checks.loc["soc.rmse_after_settle", "value"] == pytest.approx(rmse, abs=0.002)
    assert checks.loc["soc.rmse_after_settle", "verdict"] == "pass"
    # the reference really moved: the profile drew a good share of the charge
    assert rows.soc_reference.iloc[0] - rows.soc_reference.iloc[-1] > 0.2


def test_coulomb_counting_keeps_the_offset(tmp_path):
    rows, checks, frames = _run(tmp_path, "coulomb_ocv", 1)
    assert frames.value.iloc[0] / 100 == pytest.approx(WRONG_SOC, abs=0.01)
    err = rows.soc_bms - rows.soc_reference
    # the whole way through 20 % low (current sensor errors add well under 1 %)
    assert np.all(np.abs(err + (TRUE_SOC - WRONG_SOC)) < 0.01), err.describe()
    assert checks.loc["soc.rmse_after_settle", "verdict"] == "fail"
