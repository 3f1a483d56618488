"""Fixtures shared by the qualification suites (beside the labctl pytest plugin's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.capabilities.limits import SafetyLimits

DUMMY_CELL = Path(__file__).parent / "dummy-rc.yaml"


@pytest.fixture
def cell_limits(station) -> SafetyLimits:
    """The cycler cell's limits (with 50 mV margin) as hard limits for qualification steps."""
    lim = station.context.cell.limits
    return SafetyLimits(max_voltage_v=lim.max_voltage_v + 0.05,
                        min_voltage_v=lim.min_voltage_v - 0.05,
                        max_charge_current_a=lim.max_charge_current_a * 1.1,
                        max_discharge_current_a=lim.max_discharge_current_a * 1.1)


@pytest.fixture
def dummy_cell_pstat(labctl_session, pstat):
    """The potentiostat on the dummy cell (10 Ohm + 100 Ohm || 1 uF).

    On a simulated bench the potentiostat is rebuilt on the dummy cell's file; on
    hardware the engineer connects the dummy cell to the station's potentiostat.
    """
    if not labctl_session.sim:
        yield pstat
        return
    from labctl.cells import load_cell
    from labctl.stations.build import open_station
    from labctl.stations.load import load_station
    from labctl.stations.spec import StationSpec

    spec = load_station(labctl_session.station_path())
    only = StationSpec(spec.name, {"pstat": spec.instruments["pstat"]})
    dummy = open_station(only, load_cell(DUMMY_CELL))
    try:
        yield dummy["pstat"]
    finally:
        dummy.safe_state()
        dummy.close()
