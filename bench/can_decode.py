"""Decode and check logged frames of a 16-cell pack at its message rates.

Simulates the BMS of instruments/sim-bms.yaml (16 cells, 12 periodic messages, 72 frames/s)
for DURATION virtual seconds, writes the BLF log, reads it back, then decodes every frame
two ways in the same run:

- labctl: the precompiled batch decoder (labctl.can.decode) plus the checks on counters
  and checksums (labctl.analysis.bms.checks.message_checks);
- cantools: `db.decode_message(id, data)` frame by frame (no checks).

and prints frames per second for each. Usage: python bench/can_decode.py [DURATION_S]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from labctl.analysis.bms.checks import message_checks
from labctl.can.decode import BatchDecoder
from labctl.can.framelog import read_log, write_blf
from labctl.cells.load import load_cell
from labctl.stations.build import open_station
from labctl.stations.load import load_station

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    duration = float(sys.argv[1]) if len(sys.argv) > 1 else 1200.0
    station = open_station(load_station(REPO / "instruments" / "sim-bms.yaml"),
                           load_cell("lfp-2p2ah"))
    bms = station["bms"]
    bms.port.recording = True
    bms.command("cmd_contactor_close", True)
    t = time.perf_counter()
    for k in range(int(duration // 60)):
        bms.stimulus.set_current(-10.0 if k % 2 else 5.0)
        bms.run_for(60.0)
    sim_s = time.perf_counter() - t
    frames = bms.port.take_recording()
    smap = bms.smap
    station.close()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pack.blf"
        write_blf(path, frames)
        t = time.perf_counter()
        batch = read_log(path)
        read_s = time.perf_counter() - t
    n = len(batch)
    print(f"{n} frames ({duration:g} s of a 16-cell pack); simulated in {sim_s:.1f} s, "
          f"BLF read {read_s:.2f} s ({n / read_s:,.0f} frames/s)")

    decoder = BatchDecoder(smap.db)
    best = np.inf
    for _ in range(3):
        t = time.perf_counter()
        decoded = decoder.decode(batch)
        checks = message_checks(smap, decoder, batch.select(batch.is_rx))
        best = min(best, time.perf_counter() - t)
    bad = [f"{c.name}={c.value:g}" for c in checks if c.verdict == "fail"]
    print(f"labctl batch decode + checks: {n / best:12,.0f} frames/s "
          f"({len(decoded)} messages, {len(checks)} checks, {len(bad)} failed {bad})")

    ids = batch.arbitration_id.tolist()
    rows = [bytes(r) for r in batch.data]
    t = time.perf_counter()
    for fid, data in zip(ids, rows, strict=True):
        smap.db.decode_message(fid, data, decode_choices=False)
    cantools_s = time.perf_counter() - t
    print(f"cantools decode_message:      {n / cantools_s:12,.0f} frames/s (decode only)")
    print(f"speed-up: {cantools_s / best:.0f}x")


if __name__ == "__main__":
    main()
