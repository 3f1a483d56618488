"""The 2281S driver path without hardware: station file -> driver -> PyMeasure's Keithley2281S
-> pyvisa-sim (instruments/sim-devices.yaml answers a fixed 3.3 V / +0.5 A point)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labctl.cells import load_cell
from labctl.engine.session import prepare, start_run
from labctl.errors import LabctlError
from labctl.stations.build import open_station
from labctl.stations.load import load_station
from labctl.store.run import open_run

REPO = Path(__file__).resolve().parent.parent.parent
EXAMPLE = REPO / "instruments" / "example-2281s-sim.yaml"
CELL = "fixtures/cells/lfp-2p2ah.yaml"
PROC = """name: 2281s-sim-check
requires: [cycler]
log: every 1 s
steps:
  - Rest for 5 s
  - Charge at 0.5 A for 5 s
"""


def test_time_based_procedure_runs_through_the_2281s_driver(tmp_path):
    proc = tmp_path / "proc.yaml"
    proc.write_text(PROC)
    out = start_run(prepare(proc, station_path=EXAMPLE, cell_ref=CELL), results_root=tmp_path / "r")
    assert out.status == "completed", out.reason
    run = open_run(out.path)
    ident = run.meta["station"]["instruments"]["cycler"]
    assert ident["model"] == "MODEL 2281S-20-6" and ident["serial"] == "SIM2281"
    assert ident["calibration_due"] == "2027-03-31"
    ts = run.timeseries
    assert np.all(ts["voltage_v"] == 3.3) and np.all(ts["current_a"] == 0.5)
    assert list(run.steps["duration_s"]) == [5.0, 5.0]
    assert len(ts) == 12  # 0..5 s logged every 1 s, two steps
    # +0.5 A for 10 s (the device's fixed answer, also during rest) by the loop's trapezoids.
    assert np.isclose(run.steps["charge_capacity_ah"].sum(), 0.5 * 10 / 3600)


def test_discharge_beyond_the_sink_is_refused_before_the_run(tmp_path):
    from labctl.errors import ValidationError

    proc = tmp_path / "proc.yaml"
    proc.write_text(PROC.replace("Charge at 0.5 A for 5 s", "Discharge at 2 A for 5 s"))
    with pytest.raises(ValidationError, match=r"max_discharge_current_a 1 A"):
        prepare(proc, station_path=EXAMPLE, cell_ref=CELL)


def test_discharge_beyond_the_sink_fails_the_run_cleanly_without_the_declared_range(tmp_path):
    # A station file that forgot max_discharge_current_a: the channel still refuses.
    station = tmp_path / "station.yaml"
    station.write_text(EXAMPLE.read_text().replace(" max_discharge_current_a: 1.0,", "")
                       .replace('"@sim"', f"'{REPO / 'instruments' / 'sim-devices.yaml'}@sim'"))
    proc = tmp_path / "proc.yaml"
    proc.write_text(PROC.replace("Charge at 0.5 A for 5 s", "Discharge at 2 A for 5 s"))
    out = start_run(prepare(proc, station_path=station, cell_ref=CELL), results_root=tmp_path / "r")
    assert out.status != "completed"
    assert "1 A sink" in (out.reason or "")


def test_ranges_beyond_the_2281s_are_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("max_current_a: 6.0", "max_current_a: 8.0")
                   .replace('"@sim"', f"'{REPO / 'instruments' / 'sim-devices.yaml'}@sim'"))
    with pytest.raises(LabctlError, match=r"max_current_a <= 6.1"):
        open_station(load_station(bad), load_cell(CELL))
