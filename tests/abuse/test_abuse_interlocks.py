"""Hard interlocks of the abuse chamber: each fault injected mid-step switches heaters and current
off within one sample, faults the run with the reason, and keeps the data on disk."""

from __future__ import annotations

import numpy as np
import pytest

from labctl.capabilities.chamber import ChamberRanges
from labctl.clock import VirtualClock
from labctl.errors import InstrumentError
from labctl.sim.abuse.calorimeter import SimCalorimeter
from labctl.sim.abuse.reactions import load_preset
from labctl.sim.world import SimWorld
from tests.abuse.abuse_helpers import REPO, run, station

DSC = REPO / "procedures" / "dsc-ramp.yaml"
OVERCHARGE = REPO / "procedures" / "overcharge.yaml"
FAULT_AT = 1800.0  # s after the start: in the middle of the DSC ramp
PERIOD = 2.0  # the DSC's sample period

REASONS = {"door_open": "door/lid open", "emergency_stop": "emergency stop",
           "lost_communication": "lost communication", "over_temperature": "over-temperature"}


@pytest.mark.parametrize("kind", list(REASONS))
def test_injected_fault_mid_dsc(tmp_path, kind):
    st = station(tmp_path, faults=f"{{{kind}: {FAULT_AT}}}")
    out, r = run(DSC, st, tmp_path)
    assert out.status == "faulted"
    assert REASONS[kind] in out.reason
    th = r.records("thermal").sort_values("test_time_s")  # on disk, readable
    ramp = th[th.phase == "ramp"]
    assert len(ramp) > 100 and ramp.test_time_s.iloc[0] < FAULT_AT  # it was mid-step
    last = th.iloc[-1]
    if kind == "lost_communication":  # nothing can be read after the link is gone
        assert FAULT_AT - PERIOD <= last.test_time_s <= FAULT_AT
        logs = "\n".join(p.read_text() for p in r.path.glob("*.log")) + \
            "\n".join(p.read_text() for p in r.path.glob("*.txt"))
        assert "watchdog switched the heaters off" in logs
    else:
        assert last.test_time_s == pytest.approx(FAULT_AT, abs=1e-6)
        assert not bool(last.heater_on) and last["mode"] == "off"
        assert bool(th.iloc[-2].heater_on)
    assert (th.test_time_s <= FAULT_AT + 1e-6).all()


def test_over_temperature_limit_from_the_station_trips(tmp_path):
    st = station(tmp_path, interlock_temperature_c=150)
    out, r = run(DSC, st, tmp_path)
    assert out.status == "faulted" and "over-temperature" in out.reason
    th = r.records("thermal").sort_values("test_time_s")
    assert th.cell_temperature_c.max() == pytest.approx(150, abs=0.01)
    assert not bool(th.iloc[-1].heater_on)


@pytest.mark.parametrize("kind", ["door_open", "emergency_stop"])
def test_fault_mid_overcharge_stops_the_current_within_one_sample(tmp_path, kind):
    fault_at = 300.0
    st = station(tmp_path, faults=f"{{{kind}: {fault_at}}}")
    out, r = run(OVERCHARGE, st, tmp_path)
    assert out.status == "faulted" and REASONS[kind] in out.reason
    ts = r.timeseries
    on = ts[ts.current_a.abs() > 1e-6]
    assert on.test_time_s.min() < fault_at  # the current was flowing before
    assert on.test_time_s.max() <= fault_at + 5.0 + 1e-6  # and off within one 5 s sample
    th = r.records("thermal")
    assert th.test_time_s.max() == pytest.approx(fault_at, abs=1e-6)


def _cal(**kw):
    world = SimWorld(VirtualClock())
    return world, SimCalorimeter(world, load_preset("liquid-li-ion"),
                                 ChamberRanges(0, 500, 20, True), capacity_ah=2.0,
                                 interlock_temperature_c=300, **kw)


def test_interlock_is_latched_and_not_overridable():
    world, cal = _cal()
    cal.set_temperature(100, 10)
    cal.inject_fault("door_open", 60.0)
    world.clock.sleep_until(120.0)
    assert "door" in cal.interlock_fault()
    assert not cal.heater_on
    with pytest.raises(InstrumentError, match="interlock tripped"):
        cal.set_temperature(200, 10)
    with pytest.raises(InstrumentError, match="interlock tripped"):
        cal.set_adiabatic()
    # the air cools towards the room once the heaters are off
    world.clock.sleep_until(3600.0)
    assert cal.temperature_c() < 40


def test_lost_communication_raises_and_watchdog_turns_heaters_off():
    world, cal = _cal(faults={"lost_communication": 30.0})
    cal.set_temperature(200, 10)
    world.clock.sleep_until(100.0)
    with pytest.raises(InstrumentError):
        cal.interlock_fault()
    assert not cal.heater_on
    with pytest.raises(InstrumentError, match="watchdog"):
        cal.safe_state()
    air = cal.air_temperature_at(np.array([30.0, 1000.0]))
    assert air[1] < air[0]


def test_fault_mid_plain_discharge_step_stops_the_current_within_one_sample(tmp_path):
    # A procedure's ordinary electrical step on the abuse bench: the engine asks the
    # cycler for one sample period per batch there, so the interlock poll after each
    # batch stops the current within one sample, not at the end of a long batch.
    from tests.abuse.abuse_helpers import proc

    fault_at = 600.0
    st = station(tmp_path, faults=f"{{door_open: {fault_at}}}")
    p = proc(tmp_path, """
        log: every 10 s
        steps:
          - Discharge at C/2 for 1 hour
    """)
    out, r = run(p, st, tmp_path)
    assert out.status == "faulted" and "door/lid open" in out.reason
    ts = r.timeseries
    assert ts.test_time_s.min() < fault_at
    assert ts.test_time_s.max() <= fault_at + 10.0 + 1e-6
