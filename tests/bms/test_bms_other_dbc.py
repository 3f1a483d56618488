"""The same BMS procedures pass against a second DBC (other names, ids, byte order, units,
checksum), through the station file's mapping only."""

from __future__ import annotations

import pytest
from bms_helpers import OTHER, run_procedure, station_settings

from tests.support import REPO


@pytest.mark.parametrize("proc", ["protection", "can-timing", "fault-injection"])
def test_procedure_passes_on_other_dbc(tmp_path, proc):
    out, run, checks = run_procedure(REPO / "procedures" / "bms" / f"{proc}.yaml", OTHER,
                                     tmp_path / "results")
    assert len(checks) >= 8
    assert (checks.verdict != "fail").all(), checks[checks.verdict == "fail"]
    assert run.analysis_summary("bms")["verdict"] == "pass"
    if proc == "can-timing":  # the other DBC's own message names and cycle times were judged
        assert "BMU_Alarms.cycle_time" in checks.index
        assert checks.loc["BMU_Alarms.cycle_time", "high"] == pytest.approx(0.050 * 1.02)
        assert checks.loc["BMU_PackState.checksum_errors", "value"] == 0
    assert station_settings(OTHER)["topology"] == "master-slave"
