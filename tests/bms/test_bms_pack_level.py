"""Every BMS procedure that makes sense without per-cell data runs on a station whose DBC
reports only pack-level values (instruments/sim-bms-vehicle.yaml): protections judged on the
min/max cell values the BMS reports against the levels the bench applied, one over-current
flag for both directions, CAN timing with a cycle time from the station file, counters and
per-message CRCs, fault injection, SoC; and the new current-limit procedure against the
specified tables. Expected values come from the station file and the DBC."""

from __future__ import annotations

import cantools
import numpy as np
import pytest
import yaml
from bms_helpers import VEHICLE, VEHICLE_DBC, edited_station, run_procedure, station_settings
from scipy.interpolate import RegularGridInterpolator

from labctl.units import parse_quantity
from tests.support import REPO

PROCS = REPO / "procedures" / "bms"
DB = cantools.database.load_file(str(VEHICLE_DBC))
CFG = station_settings(VEHICLE)


def _si(text) -> float:
    return parse_quantity(str(text), allow_bare=True).value


@pytest.fixture(scope="module")
def protection_run(tmp_path_factory):
    return run_procedure(PROCS / "protection-vehicle.yaml", VEHICLE, tmp_path_factory.mktemp("r"))


def test_protections_on_pack_level_signals(protection_run):
    _, run, checks = protection_run
    assert (checks.verdict != "fail").all(), checks[checks.verdict == "fail"]
    period = DB.get_message_by_name("BMS_Faults").cycle_time / 1000.0
    steps = {"over_voltage": 0.005, "under_voltage": 0.010, "over_current_charge": 0.25,
             "over_current_discharge": 0.5, "over_temperature": 0.5, "under_temperature": 0.5}
    for name, cfg in CFG["protections"].items():
        threshold = _si(cfg["threshold"])
        assert abs(checks.loc[f"{name}.threshold", "value"] - threshold) <= steps[name] + 1e-9
        assert abs(checks.loc[f"{name}.trip_delay", "value"] - _si(cfg["delay"])) <= period
        # what the BMS reported at the tripping level is what the bench applied there
        level = checks.loc[f"{name}.threshold", "value"]
        assert checks.loc[f"{name}.reported_value", "value"] == pytest.approx(level, abs=0.01
                                                                               if "volt" in name
                                                                               else 1.0)
    # the reading of a voltage protection is the BMS's max/min cell voltage (no per-cell values)
    assert checks.loc["over_voltage.reported_value", "detail"].startswith("max_cell_voltage_v")
    assert checks.loc["under_voltage.reported_value", "detail"].startswith("min_cell_voltage_v")
    # both current directions were judged on the one over-current flag
    for name in ("over_current_charge", "over_current_discharge"):
        assert checks.loc[f"{name}.trip_delay", "detail"].endswith("flag fault_over_current")
    assert run.analysis_summary("bms")["verdict"] == "pass"


@pytest.mark.parametrize("proc", ["can-timing", "fault-injection"])
def test_timing_and_fault_procedures_on_pack_level_signals(tmp_path, proc):
    out, run, checks = run_procedure(PROCS / f"{proc}.yaml", VEHICLE, tmp_path / "results")
    assert (checks.verdict != "fail").all(), checks[checks.verdict == "fail"]
    if proc == "can-timing":
        # the DBC has no cycle time for BMS_CellTempStats: the station file's 200 ms is judged
        assert DB.get_message_by_name("BMS_CellTempStats").cycle_time in (None, 0)
        row = checks.loc["BMS_CellTempStats.cycle_time"]
        assert row["value"] == pytest.approx(0.200, abs=0.002)
        assert "station file cycle_times" in row["detail"]
        assert checks.loc["BMS_Faults.cycle_time", "value"] == pytest.approx(0.050, abs=0.001)
        for m in ("BMS_PackStatus", "BMS_CellVoltStats", "BMS_CellTempStats", "BMS_Limits",
                  "BMS_Faults"):
            assert checks.loc[f"{m}.counter_errors", "value"] == 0
            assert checks.loc[f"{m}.checksum_errors", "value"] == 0
            assert "crc8 poly 0x1D" in checks.loc[f"{m}.checksum_errors", "detail"]
    else:  # the injected bad CRCs and dropped frames were seen through the shared names
        assert checks.loc["bad_checksum.detected_checksum_errors", "value"] == 1
        assert checks.loc["bad_checksum.BMS_PackStatus.checksum_errors", "value"] == 2
        assert checks.loc["drop_frames.detected_counter_errors", "value"] == 1


def test_soc_on_pack_level_signals(tmp_path):
    proc = tmp_path / "soc.yaml"
    proc.write_text("name: soc\nrequires: [bms]\nsteps:\n"
                    "  - bms_soc: {initial_soc: 70 %, profile: {time: [0, 30, 60], "
                    "current: [-10, 4, 0]}, repeat: 2, max_error: 1 %}\n")
    _, run, checks = run_procedure(proc, VEHICLE, tmp_path / "results")
    assert checks.loc["soc.max_error", "verdict"] == "pass"
    soc = run.records("bms_soc")
    # the BMS's SoC followed the discharge: 2 x (10 A x 30 s - 4 A x 30 s) = 3 Ah... of 1.95 Ah
    # cells -> the reference fell by 2 x 180 As / (1.95 Ah x 3600) and the BMS with it
    drop = 2 * (10 * 30 - 4 * 30) / (1.95 * 3600)
    assert soc.soc_reference.iloc[0] - soc.soc_reference.iloc[-1] == pytest.approx(drop, rel=0.02)
    assert abs(soc.soc_bms.iloc[-1] - soc.soc_reference.iloc[-1]) < 0.01


CL_PROC = """name: cl
requires: [bms]
steps:
  - bms_current_limit:
      direction: charge
      table:
        temperature_c: [-10, 0, 10, 25, 45, 55]
        soc: [0 %, 50 %, 80 %, 95 %]
        current_a: [[0, 0, 0, 0], [1, 1, 0.5, 0], [4, 4, 2, 0.5], [8, 8, 5, 1], [6, 6, 4, 1],
                    [0, 0, 0, 0]]
      temperatures: [0, 17.5, 25, 45]
      socs: [50 %, 60 %]
      move_current: 4 A
      settle: 1 s
  - bms_current_limit:
      direction: discharge
      table:
        temperature_c: [-20, -10, 0, 25, 50, 60]
        soc: [0 %, 10 %, 30 %, 100 %]
        current_a: [[0, 2, 4, 4], [0, 4, 8, 8], [0, 6, 12, 12], [0, 8, 16, 16], [0, 8, 16, 16],
                    [0, 0, 0, 0]]
      temperatures: [-10, 12.5, 25]
      socs: [55 %]
      move_current: 4 A
      settle: 1 s
"""


def _truth(table: dict, temperature_c: float, soc: float) -> float:
    grid = RegularGridInterpolator((table["temperature_c"], table["soc"]),
                                   np.array(table["current_a"], float))
    return float(grid([temperature_c, soc])[0])


def test_current_limits_follow_the_specified_tables(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    def no_pyplot(*args, **kwargs):
        # pyplot's one figure list per process, numbered without a lock: channels writing
        # reports at once (threads of one labctl run) could draw into each other's figures.
        raise AssertionError("the BMS report must not make its figures through pyplot")

    monkeypatch.setattr(plt, "figure", no_pyplot)
    proc = tmp_path / "cl.yaml"
    proc.write_text(CL_PROC + "  - bms_report: {}\n")
    out, run, checks = run_procedure(proc, VEHICLE, tmp_path / "results")
    assert (out.path / "analysis" / "bms" / "current_limits.png").stat().st_size > 1000
    assert (checks.verdict != "fail").all(), checks[checks.verdict == "fail"]
    rows = run.records("bms_current_limit")
    assert len(rows) == 4 * 2 + 3
    for r in rows.itertuples():
        # the station file's table (the BMS's calibration) at the temperature applied and the
        # SoC the BMS reported; within the DBC's 0.1 A resolution and half a SoC count
        truth = _truth(CFG["current_limits"][r.direction], r.temperature_c, r.soc_bms)
        assert r.limit_a == pytest.approx(truth, abs=0.1 + 0.06), r
    soc_points = rows[rows.direction == "charge"].soc_bms
    assert soc_points.min() == pytest.approx(0.50, abs=0.01)
    assert soc_points.max() == pytest.approx(0.60, abs=0.01)
    assert rows[rows.direction == "discharge"].soc_bms.iloc[0] == pytest.approx(0.55, abs=0.01)

    def at(direction: str, temperature_c: float) -> float:
        sel = (rows.direction == direction) & (rows.temperature_c == temperature_c)
        return float(rows[sel].limit_a.iloc[0])

    assert at("charge", 17.5) == pytest.approx(6.0, abs=0.1)  # half way from 4 A to 8 A
    assert at("discharge", 12.5) == pytest.approx(14.0, abs=0.1)  # half way from 12 A to 16 A


def test_mis_calibrated_limit_fails_where_the_table_differs(tmp_path):
    edited = {}

    def mis_set(bms):
        bms["current_limits"]["charge"]["current_a"][3] = [8.0, 7.0, 5.0, 1.0]  # spec: 8 A at 50 %
        edited.update(bms["current_limits"]["charge"])

    station = edited_station(tmp_path, mis_set, VEHICLE)
    proc = tmp_path / "cl.yaml"
    proc.write_text(CL_PROC.split("  - bms_current_limit:\n      direction: discharge")[0])
    _, run, checks = run_procedure(proc, station, tmp_path / "results")
    values = checks[~checks.index.str.endswith("response_time")]
    failed = sorted(values[values.verdict == "fail"].index)
    # the 25 degC row changed: its points and the 17.5 degC ones (interpolated from it) fail;
    # 0 and 45 degC do not depend on it and pass
    assert failed == sorted(f"current_limit.charge.{t}degC.soc{s}pct" for t in ("17.5", "25")
                            for s in (50, 60)), failed
    for r in run.records("bms_current_limit").itertuples():
        assert r.limit_a == pytest.approx(_truth(edited, r.temperature_c, r.soc_bms), abs=0.16)
    assert checks.loc["current_limit.charge.25degC.soc50pct", "value"] == pytest.approx(7.0, abs=0.1)


def test_vehicle_station_declares_the_conventions():
    raw = yaml.safe_load(VEHICLE.read_text())["instruments"]["bms"]
    assert raw["signals"]["pack_current_a"] == {"signal": "PackCurrent", "scale": -1}
    status = DB.get_message_by_name("BMS_PackStatus")
    assert status.get_signal_by_name("PackCurrent").offset == pytest.approx(-3276.8)
    assert all({"Counter", "CRC8"} <= {s.name for s in m.signals} for m in DB.messages)
    volts = {s.name for m in DB.messages for s in m.signals if s.unit in ("V", "mV")}
    assert volts == {"PackVoltage", "MinCellVoltage", "MaxCellVoltage", "CellVoltageDelta"}
