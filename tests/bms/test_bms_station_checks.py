"""What a station file and a BMS procedure are refused for before the run (each a finding of
issue 13 on the landed main): two roles on one signal, a cell number beyond the station's
cells, missing cycle times, per-cell procedures on a pack-level DBC, a dead node that cannot
exist, bad checksum parameters, mapping scale/offset, and a DBC whose absurd signal position
would hang cantools."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from bms_helpers import STATION, VEHICLE, edited_station, run_procedure

from labctl.analysis.bms.checks import message_checks
from labctl.can.decode import BatchDecoder
from labctl.can.frames import FrameBatch
from labctl.can.signals import signal_map_for_station
from labctl.engine.session import prepare
from labctl.errors import ValidationError
from tests.support import REPO

PROCS = REPO / "procedures" / "bms"


def _refused(proc, station) -> str:
    with pytest.raises(ValidationError) as info:
        prepare(proc, station_path=station)
    return "\n".join(str(p) for p in info.value.problems)


def _proc(tmp_path, step: str):
    p = tmp_path / "p.yaml"
    p.write_text(f"name: p\nrequires: [bms]\nsteps:\n  - {step}\n")
    return p


def test_two_roles_on_one_signal_are_refused(tmp_path):
    def edit(bms):  # one flag for both directions, mapped twice
        bms["signals"]["fault_over_current_discharge"] = "Flt_OverCurrentChg"

    text = _refused(PROCS / "can-timing.yaml", edited_station(tmp_path, edit))
    assert "fault_over_current_charge, fault_over_current_discharge are all mapped to " \
           "BMS_Faults.Flt_OverCurrentChg" in text
    assert "maps it once, as fault_over_current" in text


def test_cell_beyond_the_station_is_refused_before_the_run(tmp_path):
    steps = ["bms_protection: {protection: over_voltage, threshold: 4.25 V, delay: 1 s, "
             "start: 4.2 V, step: 5 mV, cell: 17}",
             "bms_fault_injection: {fault: open_wire, cell: 20, expect: fault_sensor}",
             "bms_balancing: {current: 250 mA, cell: 17}"]
    for step in steps:
        text = _refused(_proc(tmp_path, step), STATION)
        assert "does not exist" in text and "has cells 1 to 16" in text, step


def test_missing_cycle_time_is_said_before_the_run_and_in_the_checks(tmp_path):
    def edit(bms):
        del bms["cycle_times"]

    station = edited_station(tmp_path, edit, VEHICLE)
    text = _refused(PROCS / "can-timing.yaml", station)
    assert "message BMS_CellTempStats" in text and "no GenMsgCycleTime" in text
    assert "cycle_times: {BMS_CellTempStats: 100 ms}" in text
    # a procedure whose limits do not rest on that message still runs
    prepare(PROCS / "protection-vehicle.yaml", station_path=station)
    # the frame checks say so instead of dropping the cycle checks silently
    smap = signal_map_for_station(station)
    t = np.arange(0.0, 5.0, 0.2)
    frames = [smap.encode("BMS_CellTempStats", {"MinCellTemp": 25.0, "MaxCellTemp": 26.0},
                          counter=k) for k in range(len(t))]
    msg = smap.message("BMS_CellTempStats")
    batch = FrameBatch(t, np.full(len(t), msg.frame_id, np.uint32), np.zeros(len(t), bool),
                       np.full(len(t), 8, np.uint8), np.frombuffer(b"".join(frames), np.uint8)
                       .reshape(-1, 8).copy(), np.ones(len(t), bool))
    rows = {c.name: c for c in message_checks(smap, BatchDecoder(smap.db), batch)}
    row = rows["BMS_CellTempStats.cycle_time"]
    assert row.verdict == "info" and "NOT judged" in row.detail
    assert row.value == pytest.approx(0.2)
    assert "BMS_CellTempStats.jitter" not in rows
    assert rows["BMS_CellTempStats.counter_errors"].value == 0
    assert rows["BMS_CellTempStats.checksum_errors"].value == 0


def test_per_cell_procedure_on_a_pack_level_dbc_says_why(tmp_path):
    text = _refused(PROCS / "balancing.yaml", VEHICLE)
    assert "bms_balancing cannot run on this station" in text
    assert "per-cell balancing decisions" in text
    assert "'cell_voltage_v', 'balancing'" in text and "only pack-level values" in text
    # a protection needing a signal the DBC lacks names the role
    assert "'fault_pressure'" in _refused(PROCS / "protection.yaml", VEHICLE)


def test_dead_node_without_slave_nodes_is_refused_truthfully(tmp_path):
    def edit(bms):
        bms["topology"] = "modular"

    station = edited_station(tmp_path, edit, VEHICLE)
    text = _refused(_proc(tmp_path, "bms_fault_injection: {fault: dead_node, node: module1, "
                                    "expect: fault_comm}"), station)
    assert "node 'module1' does not exist" in text
    assert "modular topology" in text and "every message is sent by the master" in text
    assert "centralized" not in text


@pytest.mark.parametrize("entry,message", [
    ({"signal": "BMS_Faults.CRC8", "algorithm": "crc8", "polynomial": 0x1FF}, "polynomial must be a byte"),
    ({"signal": "BMS_Faults.CRC8", "algorithm": "sum8", "polynomial": 0x2F}, "sum8 has none"),
    ({"signal": "BMS_Faults.CRC8", "algorithm": "crc16"}, "must be one of sum8, xor8, crc8"),
    ({"signal": "BMS_Faults.CRC8", "reflect": True}, "unknown key(s) reflect"),
    ({"signal": "BMS_Faults.Counter"}, "a checksum must be one whole, byte-aligned byte"),
])
def test_bad_checksum_parameters_are_located(tmp_path, entry, message):
    def edit(bms):
        bms["checksums"][-1] = entry

    station = edited_station(tmp_path, edit, VEHICLE)
    with pytest.raises(ValidationError) as info:
        signal_map_for_station(station)
    p = info.value.problems[0]
    assert message in p.message and "instruments.bms.checksums[5]" in p.field and p.line is not None


def test_mapping_scale_and_offset(tmp_path):
    def edit(bms):
        bms["signals"]["pack_current_a"] = {"signal": "PackCurrent", "scale": -1, "offset": 0.5}

    smap = signal_map_for_station(edited_station(tmp_path, edit, VEHICLE))
    ref = smap.scalar["pack_current_a"]
    # labctl value = DBC value x scale + offset: +12 A on the bus (discharge) is -11.5 A here
    assert float(ref.to_labctl(12.0)) == pytest.approx(-11.5)
    assert ref.to_dbc(-11.5) == pytest.approx(12.0)
    assert smap.describe()["signals"]["pack_current_a"] == {
        "signal": "BMS_PackStatus.PackCurrent", "scale": -1.0, "offset": 0.5}

    for bad, message in (({"signal": "PackCurrent", "scale": 0}, "scale must not be 0"),
                         ({"signal": "FaultSensor", "scale": -1}, "is a flag")):
        def edit_bad(bms, bad=bad):
            bms["signals"]["pack_current_a" if "Current" in bad["signal"] else "fault_sensor"] = bad

        with pytest.raises(ValidationError) as info:
            signal_map_for_station(edited_station(tmp_path, edit_bad, VEHICLE))
        assert message in str(info.value)


def test_shared_counter_names_and_message_signal(tmp_path):
    smap = signal_map_for_station(VEHICLE)
    # `counters: [Counter]`: the signal of that name in every message that has one
    assert smap.counters == {m: "Counter" for m in ("VCU_BmsCommand", "BMS_PackStatus",
                                                    "BMS_CellVoltStats", "BMS_CellTempStats",
                                                    "BMS_Limits", "BMS_Faults")}
    assert smap.checksum_spec("VCU_BmsCommand").polynomial == 0x2F
    assert smap.checksum_spec("VCU_BmsCommand").with_id is False
    assert smap.checksum_spec("BMS_Faults").polynomial == 0x1D

    def edit(bms):  # a role on a name every message has must say which message
        bms["signals"]["soc"] = "CRC8"

    with pytest.raises(ValidationError) as info:
        signal_map_for_station(edited_station(tmp_path, edit, VEHICLE))
    assert "is in several messages" in str(info.value) and "write Message.Signal" in str(info.value)


BAD_DBC = """VERSION ""

NS_ :

BS_:

BU_: BMS

BO_ 100 Status: 8 BMS
 SG_ Ok : 0|8@1+ (1,0) [0|255] "" BMS
 SG_ Huge : {start}|{length}@1+ (1,0) [0|1] "" BMS
"""


@pytest.mark.parametrize("start,length", [(0, 2_000_000_000), (4_000_000_000, 8)])
def test_absurd_signal_position_is_refused_not_hung(tmp_path, start, length):
    dbc = tmp_path / "bad.dbc"
    dbc.write_text(BAD_DBC.format(start=start, length=length))
    station = edited_station(tmp_path, lambda bms: bms.update(dbc=str(dbc)))
    proc = PROCS / "can-timing.yaml"
    # cantools alone never returns on this file: run the user's command with a deadline
    code = textwrap.dedent(f"""
        import sys
        from labctl.cli import main
        sys.argv = ["labctl", "validate", {str(proc)!r}, "--station", {str(station)!r}]
        main()
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=REPO)
    assert out.returncode == 2, out.stderr
    assert "line 11: signal Huge starts at bit" in out.stdout + out.stderr
    assert "Traceback" not in out.stderr


def test_frame_fault_on_a_message_without_cycle_time_is_refused(tmp_path):
    def edit(bms):
        del bms["cycle_times"]

    station = edited_station(tmp_path, edit, VEHICLE)
    text = _refused(_proc(tmp_path, "bms_fault_injection: {fault: delay_frames, message: "
                                    "BMS_CellTempStats, delay: 300 ms, expect: max_gap}"), station)
    assert "max_gap of BMS_CellTempStats is judged against its cycle time" in text
    # with the station's 200 ms it runs, and a 500 ms delay (a 700 ms gap, above the 3-cycle
    # timeout of 600 ms) is caught
    _, _, checks = run_procedure(_proc(tmp_path, "bms_fault_injection: {fault: delay_frames, "
                                                 "message: BMS_CellTempStats, delay: 500 ms, "
                                                 "expect: max_gap}"), VEHICLE, tmp_path / "r")
    assert checks.loc["delay_frames.detected_max_gap", "value"] == 1
    gap = checks.loc["delay_frames.BMS_CellTempStats.max_gap", "value"]
    assert gap == pytest.approx(0.7, abs=0.005)


def test_shared_checksum_name_refined_for_one_message(tmp_path):
    def edit(bms):
        bms["checksums"] = ["CRC8", {"signal": "VCU_BmsCommand.CRC8", "algorithm": "crc8",
                                     "polynomial": 0x2F, "include_id": False}]

    smap = signal_map_for_station(edited_station(tmp_path, edit, VEHICLE))
    assert len(smap.checksums) == 6 and set(smap.checksums.values()) == {"CRC8"}
    assert smap.checksum_spec("VCU_BmsCommand").polynomial == 0x2F
    assert smap.checksum_spec("BMS_Limits").polynomial == 0x1D  # the station's default

    def twice(bms):  # the same message named twice explicitly is still an error
        bms["checksums"] = ["BMS_Limits.CRC8", "BMS_Limits.CRC8"]

    with pytest.raises(ValidationError) as info:
        signal_map_for_station(edited_station(tmp_path, twice, VEHICLE))
    assert "message BMS_Limits already has checksum CRC8" in str(info.value)


def test_the_map_stored_with_a_run_decodes_as_the_station_did(tmp_path):
    import json
    import shutil

    from labctl.can.framelog import load_run_map

    smap = signal_map_for_station(VEHICLE)
    (tmp_path / "can").mkdir()
    shutil.copy(smap.dbc_path, tmp_path / "can" / smap.dbc_path.name)
    (tmp_path / "can" / "signal_map.json").write_text(json.dumps(smap.describe()))
    again = load_run_map(tmp_path)
    assert again.checksum_specs == smap.checksum_specs
    assert again.checksum_default == smap.checksum_default
    assert again.cycle_times == {"BMS_CellTempStats": 0.2}
    assert again.counters == smap.counters and again.checksums == smap.checksums
    assert again.scalar == smap.scalar  # refs with scale, offset and equals
    frame = smap.encode("BMS_Limits", {"MaxChargeCurrent": 5.0}, counter=3)
    assert again.encode("BMS_Limits", {"MaxChargeCurrent": 5.0}, counter=3) == frame


def test_unknown_sim_bms_setting_is_refused_at_validation(tmp_path):
    station = edited_station(tmp_path, lambda bms: bms.update(cycle_time={"BMS_Faults": 0.05}),
                             VEHICLE)
    text = _refused(PROCS / "can-timing.yaml", station)
    assert "unknown setting 'cycle_time' for driver 'sim-bms'" in text and "cycle_times" in text
