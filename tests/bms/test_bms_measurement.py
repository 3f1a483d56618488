"""bms_measurement: the BMS's readings against the bench's references. Truth: the station
file's own calibration errors (current-sensor gain and offset, a miscalibrated cell
channel), with the DBC's resolution (PackCurrent 0.01 A, CellV 1 mV) as the tolerance."""

from __future__ import annotations

import pytest
from bms_helpers import STATION, VEHICLE, edited_station, run_procedure, station_settings

from labctl.errors import ValidationError
from labctl.procedures import load_procedure
from labctl.stations.load import load_station
from labctl.steps.bms.measurement import parse_tolerance
from tests.support import REPO

PROC = REPO / "procedures" / "bms" / "measurement.yaml"
LEVELS = (0.0, 5.0, -5.0, -15.0)  # the procedure's currents


def _tag(level: float) -> str:
    return f"{level:+g}A"


def test_a_well_calibrated_bms_passes_and_its_current_sensor_is_characterised(tmp_path):
    _, _, checks = run_procedure(PROC, STATION, tmp_path / "results")
    soc = station_settings()["soc"]
    gain, offset = soc["current_gain_error"], soc["current_offset_a"]
    judged = checks[checks["verdict"] != "info"]
    assert len(judged) == len(LEVELS) * (2 + 16 + 16) and (judged["verdict"] == "pass").all()
    for level in LEVELS:  # |reported - true| = |I x gain + offset|, to the DBC's 0.01 A
        error = checks.loc[f"measurement.pack_current_a.{_tag(level)}", "value"]
        assert error == pytest.approx(abs(level * gain + offset), abs=0.0101)
    assert checks.loc["measurement.pack_current_a.gain_error", "value"] == pytest.approx(gain, abs=1e-3)
    assert checks.loc["measurement.pack_current_a.offset", "value"] == pytest.approx(offset, abs=0.01)


def test_a_miscalibrated_current_sensor_and_cell_channel_fail_where_they_are_off(tmp_path):
    def edit(bms):
        bms["soc"].update(current_gain_error=0.03, current_offset_a=0.2)
        bms["sensor"]["cell_offsets"] = {3: "8 mV"}

    station = edited_station(tmp_path, edit)
    _, _, checks = run_procedure(PROC, station, tmp_path / "results")
    for level in LEVELS:  # the tolerance: 1 % of the reading + 0.1 A
        row = checks.loc[f"measurement.pack_current_a.{_tag(level)}"]
        true_error = abs(level * 0.03 + 0.2)
        assert row["value"] == pytest.approx(true_error, abs=0.0101)
        assert row["high"] == pytest.approx(0.01 * abs(level) + 0.1, rel=1e-3)
        if abs(true_error - row["high"]) > 0.02:  # clear of the edge by two DBC steps
            assert row["verdict"] == ("fail" if true_error > row["high"] else "pass")
    assert checks.loc["measurement.pack_current_a.gain_error", "value"] == pytest.approx(0.03, abs=1e-3)
    assert checks.loc["measurement.pack_current_a.offset", "value"] == pytest.approx(0.2, abs=0.01)
    for level in LEVELS:
        cell3 = checks.loc[f"measurement.cell_voltage_v.03.{_tag(level)}"]
        assert cell3["verdict"] == "fail" and cell3["value"] == pytest.approx(0.008, abs=0.0015)
        others = checks[checks.index.str.match(rf"measurement\.cell_voltage_v\.(?!03)\d\d\.\{_tag(level)}$")]
        assert len(others) == 15 and (others["verdict"] == "pass").all()


def test_a_pack_level_map_is_judged_on_its_extremes_and_power(tmp_path):
    _, _, checks = run_procedure(PROC, VEHICLE, tmp_path / "results")
    for level in LEVELS:
        for role in ("pack_power_w", "min_cell_voltage_v", "max_cell_voltage_v",
                     "min_cell_temperature_c", "max_cell_temperature_c"):
            assert checks.loc[f"measurement.{role}.{_tag(level)}", "verdict"] == "pass"
    assert not checks.index.str.startswith("measurement.cell_voltage_v").any()


def test_tolerances_parse_as_datasheets_state_them():
    assert parse_tolerance("0.5 % + 50 mV", "voltage") == pytest.approx((0.005, 0.05))
    assert parse_tolerance("5 mV", "voltage") == pytest.approx((0.0, 0.005))
    assert parse_tolerance("1 %", "current") == pytest.approx((0.01, 0.0))
    for bad in ("", "-1 %", "5 A", "1 % +", "0 mV"):
        with pytest.raises(ValueError):
            parse_tolerance(bad, "voltage")


def test_a_bad_tolerance_or_current_is_located_before_the_run(tmp_path):
    proc = tmp_path / "m.yaml"
    proc.write_text("name: m\nsteps:\n  - bms_measurement:\n      currents: [0 A, 5 V]\n"
                    "      tolerance: {cell_voltage: 5 A, pack_colour: 1 %}\n")
    station = load_station(STATION)
    from labctl.cells import load_cell

    with pytest.raises(ValidationError) as exc:
        load_procedure(proc, cell=load_cell("nmc-1p95ah"), station=station)
    text = str(exc.value)
    assert "currents[1]" in text and "tolerance.cell_voltage" in text and "pack_colour" in text
    assert all(p.line is not None for p in exc.value.problems)
