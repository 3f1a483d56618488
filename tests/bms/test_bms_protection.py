"""Each protection of the simulated BMS trips at its configured threshold and delay, and the
validation procedure measures both within one step / one message period; a mis-set
threshold makes the validation fail."""

from __future__ import annotations

import json

import cantools
import pytest
from bms_helpers import STATION, edited_station, run_procedure, station_settings

from labctl.units import parse_quantity
from tests.support import REPO

PROC = REPO / "procedures" / "bms" / "protection.yaml"
# procedure staircase step of each protection (as written in the procedure file)
STEPS = {"over_voltage": 0.005, "under_voltage": 0.010, "over_current_charge": 0.25,
         "over_current_discharge": 0.5, "over_temperature": 0.5, "under_temperature": 0.5,
         "over_pressure": 0.25, "under_pressure": 0.25}


def _si(text) -> float:
    return parse_quantity(str(text), allow_bare=True).value


@pytest.fixture(scope="module")
def protection_run(tmp_path_factory):
    return run_procedure(PROC, STATION, tmp_path_factory.mktemp("results"))


def test_each_protection_trips_at_configured_threshold_and_delay(protection_run):
    _, run, checks = protection_run
    configured = station_settings()["protections"]
    db = cantools.database.load_file(str(REPO / "fixtures" / "dbc" / "labctl-bms.dbc"))
    period = db.get_message_by_name("BMS_Faults").cycle_time / 1000.0
    assert set(configured) == set(STEPS)
    for name, cfg in configured.items():
        threshold, delay = _si(cfg["threshold"]), _si(cfg["delay"])
        measured = checks.loc[f"{name}.threshold", "value"]
        # the staircase trips on the first level at or past the threshold: within one step
        assert abs(measured - threshold) <= STEPS[name] + 1e-9, (name, measured, threshold)
        measured_delay = checks.loc[f"{name}.trip_delay", "value"]
        assert abs(measured_delay - delay) <= period, (name, measured_delay, delay)
        assert checks.loc[f"{name}.contactor_open", "verdict"] == "pass", name
    assert (checks.verdict != "fail").all(), checks[checks.verdict == "fail"]


def test_report_lists_every_check_with_limits(protection_run):
    out, run, checks = protection_run
    folder = out.path / "analysis" / "bms"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["verdict"] == "pass" and summary["checks"] == len(checks)
    assert (folder / "checks.csv").read_text().count("\n") == len(checks) + 1
    for fig in ("cell_voltages.png", "balancing.png", "trips.png"):
        assert (folder / fig).stat().st_size > 1000


def test_mis_set_threshold_fails_validation(tmp_path):
    def mis_set(bms):
        bms["protections"]["over_voltage"]["threshold"] = "4.30 V"  # spec says 4.25 V

    station = edited_station(tmp_path, mis_set)
    proc = tmp_path / "ov.yaml"
    proc.write_text("name: ov\nrequires: [bms]\nsteps:\n"
                    "  - bms_protection: {protection: over_voltage, threshold: 4.25 V, delay: 1 s,\n"
                    "                     start: 4.20 V, step: 5 mV, stop: 4.35 V, cell: 2}\n"
                    "  - bms_report: {}\n")
    out, run, checks = run_procedure(proc, station, tmp_path / "results")
    assert checks.loc["over_voltage.threshold", "verdict"] == "fail"
    assert checks.loc["over_voltage.threshold", "value"] == pytest.approx(4.30, abs=0.005)
    summary = run.analysis_summary("bms")
    assert summary["verdict"] == "fail" and "over_voltage.threshold" in summary["failed_checks"]
