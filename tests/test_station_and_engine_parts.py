"""Station files, the engine's capacity accounting and step continuation."""

from __future__ import annotations

import numpy as np
import pytest

from labctl.capabilities.cycler import SampleBatch
from labctl.capabilities.steps import ElectricalStep, EndCondition, Mode, Profile, Quantity
from labctl.engine.accounting import CycleCounter, StepAccounting
from labctl.engine.remaining import remaining_step
from labctl.errors import ValidationError
from labctl.stations.load import load_station
from tests.support import REPO


def test_default_station_loads_with_roles_and_ranges():
    spec = load_station(REPO / "instruments" / "sim.yaml")
    assert set(spec.instruments) == {"cycler", "chamber", "pstat", "press"}
    assert spec.instruments["cycler"].driver == "sim-cycler"
    assert spec.instruments["cycler"].ranges["max_current_a"] == 20.0
    assert spec.instruments["cycler"].calibration_due == "2027-12-31"


@pytest.mark.parametrize(
    "body, line, field, words",
    [
        ("instruments:\n  cycler:\n    driver: keithley-9999\n", 3, "instruments.cycler.driver",
         ["unknown driver", "sim-cycler"]),
        ("instruments:\n  toaster:\n    driver: sim-cycler\n", 2, "instruments.toaster",
         ["unknown role", "chamber"]),
        ("instruments:\n  chamber:\n    driver: sim-cycler\n", 3, "instruments.chamber.driver",
         ["cannot fill role"]),
        ("instruments:\n  cycler:\n    driver: sim-cycler\n    ranges: {max_current_a: lots}\n", 4,
         "instruments.cycler.ranges.max_current_a", ["finite number"]),
        ("clock: sundial\ninstruments:\n  cycler: {driver: sim-cycler}\n", 1, "clock",
         ["virtual", "realtime"]),
    ],
)
def test_bad_station_files_name_line_and_field(tmp_path, body, line, field, words):
    path = tmp_path / "station.yaml"
    path.write_text("name: bad\n" + body)
    with pytest.raises(ValidationError) as err:
        load_station(path)
    problem = err.value.problems[0]
    assert problem.file == str(path)
    assert problem.line == line + 1  # +1 for the name line
    assert problem.field == field
    for word in words:
        assert word in problem.message


def _batch(t, v, i):
    n = len(t)
    return SampleBatch(np.asarray(t, float), np.asarray(v, float), np.asarray(i, float), np.full(n, np.nan))


def test_trapezoid_accounting_across_batches_matches_closed_form():
    # Current ramps linearly from -1 A to +1 A over 3600 s at constant 3.6 V: charge out is the
    # area of the negative triangle (0.25 Ah), charge in the positive one, in two batches.
    t = np.linspace(0, 3600, 3601)
    i = -1 + 2 * t / 3600
    counter = CycleCounter()
    acc = StepAccounting(counter, step_index=1, step_start_test_time_s=100.0, unix_origin_s=1e9)
    first = acc.columns(_batch(t[:1000], np.full(1000, 3.6), i[:1000]))
    second = acc.columns(_batch(t[1000:], np.full(2601, 3.6), i[1000:]))
    assert first["test_time_s"][0] == 100.0 and first["unix_time_s"][0] == 1e9 + 100.0
    assert first["charge_capacity_ah"][0] == 0.0
    assert second["discharge_capacity_ah"][-1] == pytest.approx(0.25, rel=1e-6)
    assert second["charge_capacity_ah"][-1] == pytest.approx(0.25, rel=1e-6)
    assert second["discharge_energy_wh"][-1] == pytest.approx(0.25 * 3.6, rel=1e-6)
    assert counter.active and counter.charge_capacity_ah == pytest.approx(0.25, rel=1e-6)
    # A new cycle resets the counters; an empty cycle is not advanced twice.
    assert counter.start_new_cycle() and counter.cycle_index == 2
    assert counter.charge_capacity_ah == 0.0
    assert not counter.start_new_cycle() and counter.cycle_index == 2


def test_instrument_integrated_charge_is_used_and_offset_by_the_cycle():
    counter = CycleCounter(charge_capacity_ah=1.0, active=True)
    acc = StepAccounting(counter, 3, 0.0, 0.0)
    batch = _batch([0, 10], [3.5, 3.6], [1.0, 1.0])
    batch.charge_ah = np.array([0.0, 0.5])
    batch.discharge_ah = np.zeros(2)
    batch.charge_wh = np.array([0.0, 1.8])
    batch.discharge_wh = np.zeros(2)
    cols = acc.columns(batch)
    assert list(cols["charge_capacity_ah"]) == [1.0, 1.5]
    assert counter.charge_capacity_ah == 1.5


def test_remaining_step_shrinks_time_and_charge_budgets():
    step = ElectricalStep(
        Mode.CURRENT, -2.0, duration_s=600.0,
        until=(EndCondition(Quantity.VOLTAGE, "<=", 2.5), EndCondition(Quantity.CHARGE, ">=", 0.3)),
        text="Discharge at 2 A for 10 minutes or until 2.5 V or 0.3 Ah",
    )
    rest = remaining_step(step, elapsed_s=240.0, moved_ah=0.1)
    assert rest.duration_s == pytest.approx(360.0)
    assert rest.until[0].value == 2.5
    assert rest.until[1].value == pytest.approx(0.2)
    assert remaining_step(step, elapsed_s=600.0, moved_ah=0.1) is None
    assert remaining_step(step, elapsed_s=10.0, moved_ah=0.3) is None


def test_remaining_step_of_a_fresh_step_is_the_step_unless_its_budget_is_empty():
    step = ElectricalStep(Mode.CURRENT, -2.0, duration_s=600.0,
                          until=(EndCondition(Quantity.CHARGE, ">=", 0.3),))
    assert remaining_step(step, 0.0, 0.0) is step
    assert remaining_step(ElectricalStep(Mode.REST, duration_s=0.0), 0.0, 0.0) is None
    empty = ElectricalStep(Mode.CURRENT, 1.0, until=(EndCondition(Quantity.CHARGE, ">=", 0.0),))
    assert remaining_step(empty, 0.0, 0.0) is None
    # The general path, for comparison: the same budgets, as a copy.
    assert remaining_step(step, 1e-15, 0.0) == step  # 600 - 1e-15 rounds to 600


def test_remaining_profile_starts_at_the_value_in_force():
    step = ElectricalStep(Mode.CURRENT_PROFILE, profile=Profile((0.0, 10.0, 20.0, 30.0), (1.0, -1.0, 2.0, 0.0)))
    rest = remaining_step(step, elapsed_s=15.0, moved_ah=0.0)
    assert rest.profile.time_s == (0.0, 5.0, 15.0)
    assert rest.profile.value == (-1.0, 2.0, 0.0)
