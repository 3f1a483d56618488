"""A missing or mismatched signal in the station's mapping is a located error before the run."""

from __future__ import annotations

import pytest
from bms_helpers import edited_station

from labctl.engine.session import prepare
from labctl.errors import ValidationError
from tests.support import REPO

PROC = REPO / "procedures" / "bms" / "can-timing.yaml"


def _problems(tmp_path, edit) -> list:
    station = edited_station(tmp_path, edit)
    with pytest.raises(ValidationError) as info:
        prepare(PROC, station_path=station)
    return info.value.problems, station.read_text().splitlines()


def test_missing_signal_names_file_line_and_similar_names(tmp_path):
    def edit(bms):
        bms["signals"]["pack_current_a"] = "PackCurent"

    problems, lines = _problems(tmp_path, edit)
    p = next(p for p in problems if "PackCurent" in p.message)
    assert p.file.endswith("sim-bms.yaml") and "PackCurent" in lines[p.line - 1]
    assert "similar: PackCurrent" in p.message and p.field.endswith("signals.pack_current_a")


def test_unit_mismatch_and_bad_template_and_checksum(tmp_path):
    def edit(bms):
        bms["signals"]["pack_voltage_v"] = "CellT01"  # a temperature for a voltage
        bms["signals"]["cell_temperature_c"] = "CellT{x}"
        bms["checksums"][0] = "CMD_Counter"  # 4 bits, not a byte

    problems, lines = _problems(tmp_path, edit)
    text = "\n".join(str(p) for p in problems)
    assert "pack_voltage_v needs a voltage signal" in text and "'degC'" in text
    assert "template 'CellT{x}'" in text
    assert "a checksum must be one whole, byte-aligned byte" in text
    assert all(p.line is not None for p in problems)


def test_unmapped_role_needed_by_a_step(tmp_path):
    def edit(bms):
        del bms["signals"]["fault_over_voltage"]

    station = edited_station(tmp_path, edit)
    proc = tmp_path / "p.yaml"
    proc.write_text("name: p\nsteps:\n  - bms_protection: {protection: over_voltage, threshold: "
                    "4.25 V, delay: 1 s, start: 4.2 V, step: 5 mV}\n")
    with pytest.raises(ValidationError) as info:
        prepare(proc, station_path=station)
    assert "fault_over_voltage" in str(info.value) and info.value.problems[0].line == 3
