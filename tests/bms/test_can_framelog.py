"""Frames decoded from the BLF log match what the simulated BMS sent; the batch decoder
agrees with cantools on every frame."""

from __future__ import annotations

import numpy as np
import pytest
from bms_helpers import OTHER, STATION

from labctl.can.decode import BatchDecoder
from labctl.can.framelog import read_log, write_blf
from labctl.can.frames import FrameBatch
from labctl.cells.load import load_cell
from labctl.stations.build import open_station
from labctl.stations.load import load_station


@pytest.mark.parametrize("station_file", [STATION, OTHER], ids=["labctl-dbc", "other-dbc"])
def test_log_round_trip_matches_frames_as_sent(tmp_path, station_file):
    station = open_station(load_station(station_file), load_cell("lfp-2p2ah"))
    try:
        bms = station["bms"]
        bms.keep_sent = True
        bms.port.recording = True
        bms.command("cmd_contactor_close", True)
        bms.stimulus.set_current(-5.0)
        bms.run_for(3.0)
        bms.stimulus.force_cell_voltage(3, 4.1234)
        bms.run_for(2.0)
        recorded = bms.port.take_recording()
        sent = bms.sent_log
    finally:
        station.close()
    path = tmp_path / "frames.blf"
    assert write_blf(path, recorded) == len(recorded)
    batch = read_log(path)
    rx = batch.select(batch.is_rx)
    assert len(rx) == len(sent) > 100
    # bytes as sent, in time order
    sent_bytes = np.array([list(d.ljust(8, b"\0")) for _, _, _, d in sent], dtype=np.uint8)
    order = np.argsort([t for t, _, _, _ in sent], kind="stable")
    assert np.array_equal(rx.data, sent_bytes[order])
    # physical values as the BMS meant them, within half a DBC resolution
    smap = bms.smap
    dec = BatchDecoder(smap.db).decode(rx)
    seen: dict[str, int] = {}
    for _, name, values, _ in (sent[i] for i in order):
        k = seen.get(name, 0)
        seen[name] = k + 1
        msg = smap.message(name)
        for sig, value in values.items():
            scale = msg.get_signal_by_name(sig).scale
            assert dec[name][sig][k] == pytest.approx(value, abs=scale / 2 + 1e-9), (name, sig)
    # the forced cell reading came through the log
    ref = smap.refs("cell_voltage_v")[2]
    volts = ref.to_labctl(dec[ref.message][ref.signal])
    assert volts[-1] == pytest.approx(4.1234, abs=0.002)
    # the batch decoder agrees with cantools frame by frame
    for m in FrameBatch.to_messages(rx)[:300]:
        msg = smap.db.get_message_by_frame_id(m.arbitration_id)
        ref_vals = msg.decode(bytes(m.data), decode_choices=False)
        k = int(np.flatnonzero(np.isclose(dec[msg.name]["time_s"], m.timestamp, atol=1e-6))[0])
        for sig, v in ref_vals.items():
            assert dec[msg.name][sig][k] == pytest.approx(v, abs=1e-9)
