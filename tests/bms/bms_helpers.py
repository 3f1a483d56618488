"""Shared helpers of the BMS tests (station copies with edits, running a procedure)."""

from __future__ import annotations

from pathlib import Path

import yaml

from labctl.engine.session import prepare, start_run
from labctl.store.run import open_run
from tests.support import REPO

STATION = REPO / "instruments" / "sim-bms.yaml"
OTHER = REPO / "instruments" / "sim-bms-other.yaml"


def station_settings(path: Path = STATION) -> dict:
    """The bms binding as the station file states it (the independent truth of the tests)."""
    return yaml.safe_load(path.read_text())["instruments"]["bms"]


def edited_station(tmp_path: Path, edit, source: Path = STATION) -> Path:
    """A copy of a station file, changed by `edit(bms_settings)`, with absolute paths."""
    data = yaml.safe_load(source.read_text())
    bms = data["instruments"]["bms"]
    bms["dbc"] = str((source.parent / bms["dbc"]).resolve())
    bms["pack"]["cell"] = str((source.parent / bms["pack"]["cell"]).resolve())
    edit(bms)
    out = tmp_path / source.name
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def run_procedure(proc: Path, station: Path, results: Path, params: dict | None = None):
    prep = prepare(proc, station_path=station, params=params)
    out = start_run(prep, results_root=results)
    assert out.status == "completed", out.reason
    run = open_run(out.path)
    checks = run.records("bms_checks").set_index("name")
    return out, run, checks

VEHICLE = REPO / "instruments" / "sim-bms-vehicle.yaml"
VEHICLE_DBC = REPO / "fixtures" / "dbc" / "vehicle-bms.dbc"


def crc8_bitwise(data: bytes, polynomial: int, init: int, final_xor: int) -> int:
    """CRC-8 by its textbook definition, bit by bit (independent of labctl's table form)."""
    crc = init
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ polynomial) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc ^ final_xor
