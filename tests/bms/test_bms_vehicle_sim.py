"""The simulated BMS presents itself through a vehicle-facing DBC (fixtures/dbc/vehicle-bms.dbc):
what it sends follows the station's mapping (sign, units, DBC offsets), signals without a
role go out as "not available" (never a silent 0), and every message carries its own
counter and CRC-8 with the parameters the station gives per message. Frames are decoded
here with cantools and CRCs computed bit by bit, independently of labctl's code."""

from __future__ import annotations

import cantools
import numpy as np
import pytest
import yaml
from bms_helpers import VEHICLE, VEHICLE_DBC, crc8_bitwise
from scipy.interpolate import RegularGridInterpolator

from labctl.can.checksum import ChecksumSpec, checksum, checksums, crc8
from labctl.cells.load import load_cell
from labctl.stations.build import open_station
from labctl.stations.load import load_station

DB = cantools.database.load_file(str(VEHICLE_DBC))
LIMITS = yaml.safe_load(VEHICLE.read_text())["instruments"]["bms"]["current_limits"]


def _table(direction: str) -> RegularGridInterpolator:
    t = LIMITS[direction]
    return RegularGridInterpolator((t["temperature_c"], t["soc"]), np.array(t["current_a"]))


@pytest.fixture(scope="module")
def frames():
    """Frames both ways after 3 s of 5 A discharge, one cell forced to 4.1234 V and every
    temperature sensor to 17.5 degC (between two rows of the limit tables)."""
    station = open_station(load_station(VEHICLE), load_cell("nmc-1p95ah"))
    try:
        bms = station["bms"]
        bms.port.recording = True
        bms.command("cmd_contactor_close", True)
        bms.stimulus.set_current(-5.0)  # labctl: + = charge, so this is a 5 A discharge
        for c in range(1, 17):
            bms.stimulus.force_temperature(c, 17.5)
        bms.run_for(2.0)
        bms.stimulus.force_cell_voltage(7, 4.1234)
        bms.run_for(1.0)
        cells_v = bms.pack.cell_voltage_v().copy()
        recorded = bms.port.take_recording()
        notes = bms.identify()
    finally:
        station.close()
    return recorded, cells_v, notes


def _last(recorded, name: str) -> dict:
    msg = DB.get_message_by_name(name)
    got = [m for m in recorded if m.arbitration_id == msg.frame_id]
    return DB.decode_message(msg.frame_id, bytes(got[-1].data), decode_choices=False)


def test_values_follow_the_mapping_sign_and_units(frames):
    recorded, cells_v, _ = frames
    status = _last(recorded, "BMS_PackStatus")
    # the vehicle bus counts discharge as positive: 5 A out of the pack reads +5.0 A
    assert status["PackCurrent"] == pytest.approx(5.0, abs=0.1)
    assert status["ContactorState"] == 2  # closed
    limits = _last(recorded, "BMS_Limits")
    # PackPower in kW, + = discharge: pack voltage x 5 A
    assert limits["PackPower"] == pytest.approx(status["PackVoltage"] * 5.0 / 1000.0, abs=0.02)
    cv = _last(recorded, "BMS_CellVoltStats")
    assert cv["MaxCellVoltage"] == pytest.approx(4.1234, abs=0.001)
    others = np.delete(cells_v, 6)
    assert cv["MinCellVoltage"] == pytest.approx(others.min(), abs=0.002)
    assert cv["CellVoltageDelta"] == pytest.approx((4.1234 - others.min()) * 1000, abs=2)
    ct = _last(recorded, "BMS_CellTempStats")
    assert ct["MinCellTemp"] == ct["MaxCellTemp"] == pytest.approx(17.5, abs=0.5)
    # allowed currents: the station's tables at 17.5 degC and the SoC the BMS reports
    soc = status["PackSOC"] / 100.0
    assert limits["MaxChargeCurrent"] == pytest.approx(float(_table("charge")([17.5, soc])[0]),
                                                        abs=0.1)
    assert limits["MaxDischargeCurrent"] == pytest.approx(
        float(_table("discharge")([17.5, soc])[0]), abs=0.1)
    assert 0 < limits["MaxChargeCurrent"] < 8.0  # a real derated value, not 0 and not a table edge


def test_signals_without_a_role_are_sent_as_not_available(frames):
    recorded, _, notes = frames
    faults = _last(recorded, "BMS_Faults")
    assert faults["IsolationResistance"] == 65535  # the DBC's value table calls 65535 "SNA"
    ct = _last(recorded, "BMS_CellTempStats")
    assert ct["MinTempCellId"] == ct["MaxTempCellId"] == 255  # all ones: J1939 "not available"
    assert faults["FaultIsolation"] == 0  # an unmodelled flag is off
    assert "BMS_Faults.IsolationResistance (value table SNA)" in notes["not_available"]
    assert "BMS_CellTempStats.MinTempCellId" in notes["not_available"]


def test_every_message_has_its_own_counter_and_crc(frames):
    recorded, _, _ = frames
    by_id: dict[int, list] = {}
    for m in recorded:
        by_id.setdefault(m.arbitration_id, []).append(m)
    assert set(by_id) == {m.frame_id for m in DB.messages}
    for msg in DB.messages:
        got = by_id[msg.frame_id]
        assert len(got) >= 10, msg.name
        counters = [DB.decode_message(msg.frame_id, bytes(m.data))["Counter"] for m in got]
        assert all((b - a) % 16 == 1 for a, b in zip(counters, counters[1:], strict=False)), msg.name
        for m in got:
            data = bytes(m.data)
            if msg.name == "VCU_BmsCommand":  # AUTOSAR CRC8H2F over bytes 0-6, no data id
                want = crc8_bitwise(data[:7], 0x2F, 0xFF, 0xFF)
            else:  # SAE J1850 over the id's low byte, then bytes 0-6
                want = crc8_bitwise(bytes([msg.frame_id & 0xFF]) + data[:7], 0x1D, 0xFF, 0xFF)
            assert data[7] == want, (msg.name, data.hex())


def test_crc8_matches_the_catalogue_check_values():
    # "123456789" check values of the CRC catalogue (reveng): CRC-8/SAE-J1850 0x4B,
    # CRC-8/AUTOSAR 0xDF, CRC-8/SMBUS 0xF4
    assert crc8(b"123456789") == 0x4B
    assert crc8(b"123456789", 0x2F, 0xFF, 0xFF) == 0xDF
    assert crc8(b"123456789", 0x07, 0x00, 0x00) == 0xF4
    rng = np.random.default_rng(3)
    data = rng.integers(0, 256, (200, 8), dtype=np.uint8)
    for spec in (ChecksumSpec("crc8", 0x2F, 0xFF, 0xFF, False), ChecksumSpec("crc8", 0x07, 0, 0),
                 ChecksumSpec("sum8"), ChecksumSpec("xor8", include_id=True)):
        many = checksums(spec, data, 7, 0x3A0)
        one = [checksum(spec, bytes(r), 7, 0x3A0) for r in data]
        assert list(many) == one, spec
    spec = ChecksumSpec("crc8", 0x2F, 0x00, 0x00, False)
    assert checksum(spec, bytes(range(8)), 7, 0x3A0) == crc8_bitwise(bytes(range(7)), 0x2F, 0, 0)
