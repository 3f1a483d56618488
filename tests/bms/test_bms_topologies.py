"""The four topologies change who sends what and how late the master sees a measurement; the
protection procedure still measures each threshold within one step and each trip delay within
one Faults period of (configured delay + measurement latency), the latency taken from the
station file: voltages and temperatures come from the cell sensing nodes, the pack current
from the master's own sensor (no latency)."""

from __future__ import annotations

import cantools
import pytest
from bms_helpers import STATION, edited_station, run_procedure, station_settings

from labctl.cells.load import load_cell
from labctl.errors import LabctlError
from labctl.stations.build import open_station
from labctl.stations.load import load_station
from labctl.units import parse_quantity
from tests.support import REPO

DB = cantools.database.load_file(str(REPO / "fixtures" / "dbc" / "labctl-bms.dbc"))
P_FAULTS = DB.get_message_by_name("BMS_Faults").cycle_time / 1000.0
# latency configured per topology; the distributed one is long enough to break a spec
LATENCY = {"centralized": 0.0, "modular": 0.02, "master-slave": 0.05, "distributed": 0.25}
# protection -> (staircase start, step, cell, sensed by the cell nodes?)
STAIRS = {"over_voltage": ("4.24 V", "5 mV", 6, True),
          "under_voltage": ("2.72 V", "10 mV", 14, True),
          "over_current_discharge": ("19 A", "500 mA", 1, False),
          "over_temperature": ("59.5 degC", "0.5 degC", 10, True)}


def _si(text) -> float:
    return parse_quantity(str(text), allow_bare=True).value


def _procedure(path):
    prot = station_settings()["protections"]
    lines = ["name: topo", "requires: [bms]", "steps:"]
    for name, (start, step, cell, _) in STAIRS.items():
        lines.append(f"  - bms_protection: {{protection: {name}, threshold: {prot[name]['threshold']}, "
                     f"delay: {prot[name]['delay']}, start: {start}, step: {step}, cell: {cell}}}")
    lines.append("  - bms_report: {}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("topology", list(LATENCY))
def test_protections_measured_with_latency_on_each_topology(tmp_path, topology):
    def edit(bms):
        bms["topology"] = topology
        bms["latency_s"] = LATENCY[topology]

    station = edited_station(tmp_path, edit)
    _, _, checks = run_procedure(_procedure(tmp_path / "p.yaml"), station, tmp_path / "results")
    prot = station_settings()["protections"]
    for name, (_, step, _, by_cells) in STAIRS.items():
        threshold, delay = _si(prot[name]["threshold"]), _si(prot[name]["delay"])
        assert abs(checks.loc[f"{name}.threshold", "value"] - threshold) <= _si(step) + 1e-9
        expected = delay + (LATENCY[topology] if by_cells else 0.0)
        measured = checks.loc[f"{name}.trip_delay", "value"]
        assert abs(measured - expected) <= P_FAULTS, (topology, name, measured, expected)
        # the check judges against the spec delay +- one period: a late BMS fails it
        late = expected - delay > P_FAULTS
        assert checks.loc[f"{name}.trip_delay", "verdict"] == ("fail" if late else "pass"), name
    if topology == "distributed":  # the latency really shows (not hidden by the frame period)
        assert checks.loc["over_voltage.trip_delay", "value"] > _si(prot["over_voltage"]["delay"]) \
            + LATENCY[topology] - P_FAULTS / 2


def test_centralized_has_no_slave_nodes(tmp_path):
    station = open_station(load_station(STATION), load_cell("nmc-1p95ah"))
    try:
        with pytest.raises(LabctlError, match="a centralized BMS has only its master node"):
            station["bms"].stimulus.inject("dead_node", node="module1")
    finally:
        station.close()
