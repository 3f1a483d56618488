"""check_step: each limit, and where the message says it came from."""

from __future__ import annotations

from dataclasses import replace

from labctl.capabilities.limits import SafetyLimits
from labctl.capabilities.steps import ChamberStep, ElectricalStep, Mode, Profile, SourceRef
from labctl.procedures import check_step, parse_step
from tests.procedures.helpers import make_cell, make_station


def messages(step, cell, station=None, safety=None):
    return [p.message for p in check_step(step, cell=cell, station=station, safety=safety)]


def test_valid_steps_have_no_problems(lfp, bench):
    for text in (
        "Charge at 1C until 3.65 V",
        "Hold at 3.65 V until C/20",
        "Rest for 1 hour",
        "Discharge at 3C until 2.5 V",
        "Discharge at 10 W for 10 s",
    ):
        assert messages(parse_step(text, cell=lfp), lfp, bench) == [], text


def test_lfp_to_4v2_is_rejected_naming_the_cell_file(lfp, bench):
    step = replace(
        parse_step("Charge at 1C until 4.2 V", cell=lfp),
        source=SourceRef("p.yaml", 3, 5, "steps[0]"),
    )
    (p,) = check_step(step, cell=lfp, station=bench)
    assert "4.2 V" in p.message and "3.65 V" in p.message and lfp.source in p.message
    assert (p.file, p.line, p.field) == ("p.yaml", 3, "steps[0]")
    assert p.column == 5 + step.text.index("4.2 V")  # points at the condition


def test_current_above_the_cell_max_charge_current(lfp):
    (msg,) = messages(parse_step("Charge at 1.5C until 3.6 V", cell=lfp), lfp)
    assert "3.3 A" in msg and "max charge current 2.2 A" in msg and "allowed: up to 2.2 A" in msg


def test_current_above_the_instrument_range():
    big = make_cell("lfp-big", 50.0, 3.65, 2.5, 1.0, 3.0)  # the cell allows 150 A
    station = make_station(max_current_a=10.0)
    (msg,) = messages(parse_step("Discharge at 12 A for 1 s", cell=big), big, station)
    assert "max_current_a 10 A" in msg and "instruments/bench-a.yaml" in msg


def test_hold_voltage_outside_cell_limits(lfp):
    (hi,) = messages(parse_step("Hold at 3.8 V until C/20", cell=lfp), lfp)
    assert "above the max voltage 3.65 V" in hi and "allowed: 2.5 V to 3.65 V" in hi
    (lo,) = messages(parse_step("Hold at 2.2 V until C/20", cell=lfp), lfp)
    assert "below the min voltage 2.5 V" in lo


def test_power_worst_case_current(lfp):
    # |P| / V_min: 20 W / 2.5 V = 8 A > 6.6 A (3C); 15 W / 2.5 V = 6 A is fine
    (msg,) = messages(parse_step("Discharge at 20 W for 10 s", cell=lfp), lfp)
    assert "8 A" in msg and "6.6 A" in msg
    assert messages(parse_step("Discharge at 15 W for 10 s", cell=lfp), lfp) == []
    # charging at power: 6 W / 2.5 V = 2.4 A > 2.2 A
    assert len(messages(parse_step("Charge at 6 W for 10 s", cell=lfp), lfp)) == 1


def test_profile_extremes_are_checked(lfp):
    step = ElectricalStep(Mode.CURRENT_PROFILE, profile=Profile((0.0, 10.0), (1.0, -7.0)))
    (msg,) = messages(step, lfp)
    assert "discharge" in msg and "7 A" in msg


def test_safety_limits_are_checked_too(lfp):
    tight = SafetyLimits(max_voltage_v=3.6, max_charge_current_a=1.0)
    msgs = messages(parse_step("Charge at 1C until 3.65 V", cell=lfp), lfp, safety=tight)
    assert any("max_voltage_v = 3.6 V" in m for m in msgs)
    assert any("max_charge_current_a = 1 A" in m for m in msgs)


def test_chamber_setpoint_limits(lfp, bench_chamber, bench):
    assert messages(ChamberStep(setpoint_c=25.0), lfp, bench_chamber) == []
    (msg,) = messages(ChamberStep(setpoint_c=70.0), lfp, bench_chamber)
    assert "max temperature 60 °C" in msg and lfp.source in msg
    hot = make_cell("abuse", 1.0, 4.2, 2.5, 1, 1, t_max=400.0, t_min=-80.0)
    (msg,) = messages(ChamberStep(setpoint_c=180.0), hot, bench_chamber)
    assert "max_temperature_c 150 °C" in msg and "instruments/bench-a.yaml" in msg
    (msg,) = messages(ChamberStep(setpoint_c=-60.0), hot, bench_chamber)
    assert "min_temperature_c -40 °C" in msg
    (msg,) = messages(ChamberStep(setpoint_c=25.0), lfp, bench)  # no chamber on this station
    assert "needs a chamber" in msg


def test_chamber_step_fields(lfp):
    msgs = messages(
        ChamberStep(setpoint_c=25.0, tolerance_c=0.0, timeout_s=-1, stabilise_on="air"), lfp
    )
    assert len(msgs) == 3


def test_durations_and_values_must_be_finite(lfp):
    step = ElectricalStep(Mode.REST, duration_s=-3.0, text="Rest")
    assert any("duration" in m for m in messages(step, lfp))
    step = ElectricalStep(Mode.CURRENT, value=float("nan"), text="Charge at nan")
    assert messages(step, lfp)


def test_electrical_step_needs_a_cycler(lfp):
    from labctl.stations.spec import StationSpec

    empty = StationSpec("empty", {}, source="empty.yaml")
    (msg,) = messages(parse_step("Rest for 1 s", cell=lfp), lfp, empty)
    assert "needs a cycler" in msg
