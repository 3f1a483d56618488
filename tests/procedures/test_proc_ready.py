"""The ready procedures in procedures/ are valid for every preset chemistry."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.capabilities.steps import Mode, Quantity
from labctl.procedures import load_procedure
from tests.procedures.helpers import drive, make_cell, make_station, result

REPO = Path(__file__).resolve().parents[2]
READY = ["quickstart.yaml", "capacity.yaml", "cycling.yaml", "cycle-life.yaml", "examples/ramp.py"]
PRESETS = ["lfp-2p2ah", "nmc-1p95ah", "lto-1p8ah"]
FIXTURE_CELLS = {  # used until labctl.cells.load_cell exists
    "lfp-2p2ah": lambda: make_cell("lfp-2p2ah", 2.2, 3.65, 2.5, 1.0, 3.0),
    "nmc-1p95ah": lambda: make_cell("nmc-1p95ah", 1.95, 4.2, 2.75, 1.0, 2.0),
    "lto-1p8ah": lambda: make_cell("lto-1p8ah", 1.8, 2.85, 1.8, 10.0, 10.0),
}


def preset(name):
    try:
        from labctl.cells import load_cell
    except ImportError:
        return FIXTURE_CELLS[name]()
    return load_cell(name)


@pytest.mark.parametrize("cell_name", PRESETS)
@pytest.mark.parametrize("file", READY)
def test_ready_procedure_is_valid(file, cell_name):
    cell = preset(cell_name)
    proc = load_procedure(REPO / "procedures" / file, cell=cell, station=make_station(chamber=True))
    assert proc.required_roles == ("cycler",)
    planned = drive(
        proc.plan(), lambda p: result(end_kind="time", end_voltage_v=cell.limits.max_voltage_v)
    )
    assert planned
    for p in planned:  # every charge ends at the cell's own max voltage, every discharge at its min
        step = p.step
        volts = [c.value for c in step.until if c.quantity is Quantity.VOLTAGE]
        if step.mode is Mode.CURRENT and step.value > 0:
            assert max(volts) == pytest.approx(cell.limits.max_voltage_v)
        if step.mode is Mode.CURRENT and step.value < 0 and step.duration_s is None:
            assert min(volts) == pytest.approx(cell.limits.min_voltage_v)


def test_quickstart_shape():
    cell = preset("nmc-1p95ah")
    proc = load_procedure(REPO / "procedures" / "quickstart.yaml", cell=cell)
    steps = [p.step for p in drive(proc.plan(), lambda p: result())]
    planned = drive(proc.plan(), lambda p: result())
    assert [s.kind for s in steps] == [
        "rest", "discharge", "rest", "charge", "hold", "rest", "discharge", "rest"]
    assert [p.new_cycle for p in planned] == [False] * 3 + [True] + [False] * 4
    assert [s.duration_s for s in steps if s.kind == "rest"] == [60, 600, 600, 600]
    assert steps[3].value == pytest.approx(cell.capacity_ah)  # 1C
    assert steps[4].until[0].value == pytest.approx(cell.capacity_ah / 20)  # until C/20
    assert all(s.logging.period_s == 10.0 for s in steps)


def test_capacity_defaults_to_c3():
    cell = preset("lfp-2p2ah")
    proc = load_procedure(REPO / "procedures" / "capacity.yaml", cell=cell)
    steps = [p.step for p in drive(proc.plan(), lambda p: result())]
    assert steps[0].value == pytest.approx(cell.capacity_ah / 3, rel=1e-9)
    assert steps[3].value == pytest.approx(-cell.capacity_ah / 3, rel=1e-9)
    assert [s.duration_s for s in steps if s.kind == "rest"] == [3600, 3600]


def test_cycling_runs_n_cycles_or_stops_on_fade():
    cell = preset("lfp-2p2ah")
    path = REPO / "procedures" / "cycling.yaml"
    planned = drive(load_procedure(path, cell=cell).plan(), lambda p: result(discharge_ah=2.0))
    assert len(planned) == 3 * 5 and sum(p.new_cycle for p in planned) == 3
    proc = load_procedure(path, cell=cell, params={"n_cycles": "100"})
    caps = iter([2.0, 1.8, 1.62, 1.5, 1.4])  # 1.5 < 80 % of 2.0 in cycle 4

    def respond(p):
        return result(discharge_ah=next(caps)) if p.step.kind == "discharge" else result()

    assert len(drive(proc.plan(), respond)) == 4 * 5
