"""Cell temperature and the simulated chamber, against the lumped-model solutions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labctl.capabilities import (
    ChamberRanges,
    ElectricalStep,
    EndCondition,
    EndKind,
    LoggingPolicy,
    Mode,
    Quantity,
)
from labctl.cells.spec import ThermalModel
from labctl.clock import VirtualClock
from labctl.errors import InstrumentError
from labctl.sim import SimChamber, SimWorld
from tests.sim.helpers import channel, joined, make_cell, run, table

C_TH, H = 40.0, 0.08  # J/K, W/K: tau = 500 s
TAU = C_TH / H


def flat_cell(**kw):
    """A big cell with a gentle OCV, so long constant-current steps stay inside 0..1."""
    return make_cell(ocv=table([0, 1], [3.2, 3.4]), capacity_ah=100.0,
                     thermal=ThermalModel(C_TH, H), **kw)


def test_constant_current_heats_the_cell_towards_ambient_plus_i2r_over_h():
    current, r0 = 5.0, 0.02
    ch = channel(flat_cell(r0=r0))
    batches, _ = run(ch, ElectricalStep(Mode.CURRENT, current, duration_s=3000.0),
                     logging=LoggingPolicy(period_s=10.0))
    d = joined(batches)
    rise = current**2 * r0 / H  # 6.25 K
    expected = 25.0 + rise * (1 - np.exp(-d["step_time_s"] / TAU))
    np.testing.assert_allclose(d["temperature_c"], expected, atol=1e-9)
    assert d["temperature_c"][-1] == pytest.approx(25.0 + rise, abs=0.02 * rise)


def test_temperature_condition_ends_at_the_predicted_instant():
    current, r0, target = 5.0, 0.02, 29.0
    ch = channel(flat_cell(r0=r0))
    step = ElectricalStep(Mode.CURRENT, current,
                          until=(EndCondition(Quantity.TEMPERATURE, ">=", target, "29 °C"),))
    batches, end = run(ch, step, logging=LoggingPolicy(period_s=10.0))
    rise = current**2 * r0 / H
    t_expected = -TAU * math.log(1 - (target - 25.0) / rise)
    assert end.kind is EndKind.CONDITION
    assert abs(batches[-1].step_time_s[-1] - t_expected) <= 1e-3
    assert batches[-1].temperature_c[-1] == pytest.approx(target, abs=1e-6)


def test_chamber_ramp_reaches_the_setpoint_on_time_and_the_cell_follows():
    clock = VirtualClock()
    world = SimWorld(clock, ambient_c=25.0)
    chamber = SimChamber(world, ChamberRanges(-40.0, 100.0, max_ramp_c_per_min=10.0))
    ch = channel(flat_cell(r0=0.02), world=world)
    rate = 2.0 / 60.0  # K/s
    chamber.set_temperature(45.0, ramp_c_per_min=2.0)
    t_reach = 20.0 / rate  # 600 s
    assert chamber.temperature_c() == 25.0
    assert world.ambient_c_at(np.array([t_reach / 2, t_reach, 2 * t_reach])) == pytest.approx(
        [35.0, 45.0, 45.0])
    batches, _ = run(ch, ElectricalStep(Mode.REST, duration_s=3000.0),
                     logging=LoggingPolicy(period_s=5.0))
    d = joined(batches)
    t = d["step_time_s"]
    # First-order lag behind a ramp, then the approach to the hold value.
    ramp = 25.0 + rate * (t - TAU * (1 - np.exp(-t / TAU)))
    at_reach = 25.0 + rate * (t_reach - TAU * (1 - math.exp(-t_reach / TAU)))
    hold = 45.0 - (45.0 - at_reach) * np.exp(-(t - t_reach) / TAU)
    np.testing.assert_allclose(d["temperature_c"], np.where(t <= t_reach, ramp, hold), atol=1e-6)
    assert clock.now() == 3000.0
    assert chamber.temperature_c() == 45.0


def test_chamber_refuses_setpoints_outside_its_range_and_goes_safe():
    world = SimWorld(VirtualClock())
    chamber = SimChamber(world, ChamberRanges(-10.0, 60.0), safe_setpoint_c=20.0,
                         default_ramp_c_per_min=1.0)
    with pytest.raises(InstrumentError, match="outside its range"):
        chamber.set_temperature(80.0)
    chamber.set_temperature(50.0)
    world.clock.sleep_until(600.0)
    assert chamber.temperature_c() == pytest.approx(35.0)
    chamber.safe_state()  # from 35 °C down to 20 °C at 1 °C/min
    world.clock.sleep_until(600.0 + 15 * 60.0)
    assert chamber.temperature_c() == pytest.approx(20.0)
    assert chamber.identify()["model"] == "sim-chamber"


def test_chamber_state_round_trip():
    world = SimWorld(VirtualClock())
    chamber = SimChamber(world, ChamberRanges(-10.0, 60.0))
    chamber.set_temperature(40.0, 5.0)
    state = chamber.get_state()
    other_world = SimWorld(VirtualClock())
    other = SimChamber(other_world, ChamberRanges(-10.0, 60.0))
    other.set_state(state)
    t = np.linspace(0, 600, 13)
    np.testing.assert_array_equal(other.air_temperature_at(t), chamber.air_temperature_at(t))


def test_warm_cell_has_lower_resistance_by_arrhenius():
    ea = 0.3
    hot = channel(make_cell(ocv=table([0, 1], [3.2, 3.4]), r0=0.05, activation_energy_ev=ea,
                            initial_temperature_c=45.0))
    cold = channel(make_cell(ocv=table([0, 1], [3.2, 3.4]), r0=0.05, activation_energy_ev=ea,
                             initial_temperature_c=25.0))
    step = ElectricalStep(Mode.CURRENT, 1.0, duration_s=1.0)
    v_hot = run(hot, step)[0][0].voltage_v[0]
    v_cold = run(cold, step)[0][0].voltage_v[0]
    k_b = 8.617333262e-5
    factor = math.exp(ea / k_b * (1 / 318.15 - 1 / 298.15))
    # V = OCV(0.5) + I R0(T); the cell's temperature stays (inert thermal mass).
    assert v_cold - 3.3 == pytest.approx(0.05, rel=1e-9)
    assert v_hot - 3.3 == pytest.approx(0.05 * factor, rel=2e-3)  # model evaluated to 0.1 K


def test_resistance_follows_the_cell_temperature_through_a_chamber_ramp():
    """R0 is re-evaluated as the cell cools: within the documented few percent."""
    ea, r0, current = 0.3, 0.05, 0.5
    clock = VirtualClock()
    world = SimWorld(clock)
    chamber = SimChamber(world, ChamberRanges(-40.0, 100.0))
    cell = make_cell(ocv=table([0, 1], [3.2, 3.4]), r0=r0, capacity_ah=100.0,
                     thermal=ThermalModel(C_TH, H), activation_energy_ev=ea)
    ch = channel(cell, world=world)
    chamber.set_temperature(-10.0, ramp_c_per_min=1.0)  # 35 minutes of ramp
    d = joined(run(ch, ElectricalStep(Mode.CURRENT, current, duration_s=3 * 3600.0),
                   logging=LoggingPolicy(period_s=10.0))[0])
    soc = 0.5 + current * d["step_time_s"] / 3600 / 100.0
    k_b = 8.617333262e-5
    factor = np.exp(ea / k_b * (1 / (d["temperature_c"] + 273.15) - 1 / 298.15))
    r_seen = (d["voltage_v"] - (3.2 + 0.2 * soc)) / current
    # Steady state in the cold chamber, warmed by its own I^2 R.
    assert d["temperature_c"][-1] == pytest.approx(-10.0 + current**2 * r_seen[-1] / H, abs=0.05)
    assert r_seen[-1] / r0 > 4.0  # the cold cell's resistance really is much higher
    # Documented: within MAX_PARAM_CHANGE (12 %), about half of it or less most of the time.
    error = np.abs(r_seen / (r0 * factor) - 1)
    assert error.max() <= 0.12 and error.mean() <= 0.03
