"""The step grammar against numbers worked out by hand."""

from __future__ import annotations

import pytest

from labctl.capabilities.steps import LoggingPolicy, Mode, Quantity
from labctl.errors import ValidationError
from labctl.procedures import parse_logging, parse_step


def conds(step):
    return [(c.quantity, c.op, pytest.approx(c.value)) for c in step.until]


def test_cc_charge_in_c_rate(lfp):
    s = parse_step("Charge at 1C until 3.6 V", cell=lfp)
    assert s.mode is Mode.CURRENT and s.value == pytest.approx(2.2)  # 1C of 2.2 Ah
    # 3.6 V is tighter than the cell's 3.65 V: no extra cut-off
    assert conds(s) == [(Quantity.VOLTAGE, ">=", 3.6)]


def test_discharge_sign_and_implicit_cutoff(lfp):
    s = parse_step("Discharge at 500 mA for 10 s", cell=lfp)
    assert s.value == pytest.approx(-0.5) and s.duration_s == 10.0
    assert conds(s) == [(Quantity.VOLTAGE, "<=", 2.5)]
    assert s.until[-1].text == "cell limit 2.5 V"


def test_charge_without_end_stops_at_cell_max(nmc):
    s = parse_step("Charge at 0.5C", cell=nmc)
    assert s.value == pytest.approx(0.975)
    assert conds(s) == [(Quantity.VOLTAGE, ">=", 4.2)]


def test_charge_ending_above_cell_max_keeps_the_cell_limit_too(lfp):
    s = parse_step("Charge at 1C until 4.2 V", cell=lfp)
    assert (Quantity.VOLTAGE, ">=", pytest.approx(3.65)) in conds(s)


def test_hold_until_c20_and_current_limit(lfp):
    s = parse_step("Hold at 3.65 V until C/20", cell=lfp)
    assert s.mode is Mode.VOLTAGE and s.value == 3.65
    assert conds(s) == [(Quantity.CURRENT, "<=", 0.11)]  # 2.2 Ah / 20
    # a hold may push current either way: the smaller of the two cell currents bounds it
    assert s.current_limit_a == pytest.approx(min(2.2, 6.6))


def test_hold_until_ma(nmc):
    s = parse_step("Hold at 4.2 V until 50 mA", cell=nmc)
    assert conds(s) == [(Quantity.CURRENT, "<=", 0.05)]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("Rest for 1 hour", 3600),
        ("Rest for 30 minutes", 1800),
        ("rest for 2 h", 7200),
        ("Rest for 90 sec", 90),
    ],
)
def test_rest(lfp, text, seconds):
    s = parse_step(text, cell=lfp)
    assert s.mode is Mode.REST and s.value == 0 and s.duration_s == seconds and s.until == ()


def test_power_step(lfp):
    s = parse_step("Discharge at 5 W for 10 s", cell=lfp)
    assert s.mode is Mode.POWER and s.value == -5.0 and s.duration_s == 10.0
    assert s.current_limit_a == pytest.approx(6.6)
    # at constant power the discharge current grows as the voltage falls; a charge's shrinks
    s = parse_step("Discharge at 5 W until 3 A", cell=lfp)
    assert conds(s) == [(Quantity.CURRENT, ">=", 3.0), (Quantity.VOLTAGE, "<=", 2.5)]
    s = parse_step("Charge at 5 W until 1 A", cell=lfp)
    assert conds(s)[0] == (Quantity.CURRENT, "<=", 1.0)


def test_time_or_voltage(lfp):
    s = parse_step("Charge at 0.5C for 30 minutes or until 3.6 V", cell=lfp)
    assert s.value == pytest.approx(1.1) and s.duration_s == 1800
    assert conds(s) == [(Quantity.VOLTAGE, ">=", 3.6)]


def test_charge_moved(lfp):
    for text in ("Discharge at C/3 for 0.22 Ah", "Discharge at C/3 until 220 mAh"):
        s = parse_step(text, cell=lfp)
        assert s.value == pytest.approx(-2.2 / 3)
        assert conds(s) == [(Quantity.CHARGE, ">=", 0.22), (Quantity.VOLTAGE, "<=", 2.5)]


def test_temperature_conditions(lfp):
    s = parse_step("Charge at 1C until 45 °C or 3.6 V", cell=lfp)
    assert conds(s) == [(Quantity.TEMPERATURE, ">=", 45.0), (Quantity.VOLTAGE, ">=", 3.6)]
    s = parse_step("Rest until 30 degC", cell=lfp)  # a rest cools down
    assert conds(s) == [(Quantity.TEMPERATURE, "<=", 30.0)]
    s = parse_step("Rest until > 3.3 V", cell=lfp)  # relaxation direction given explicitly
    assert conds(s) == [(Quantity.VOLTAGE, ">=", 3.3)]


def test_case_insensitive_and_spaced_c_rate(lfp):
    s = parse_step("DISCHARGE AT 2 c UNTIL 2800 mV", cell=lfp)
    assert s.value == pytest.approx(-4.4)
    assert conds(s) == [(Quantity.VOLTAGE, "<=", 2.8)]
    # An SI prefix keeps its case: "MV" is megavolts, never millivolts (issue 13).
    with pytest.raises(ValidationError, match="case-sensitive"):
        parse_step("DISCHARGE AT 2 c UNTIL 2800 MV", cell=lfp)


def test_logging_clause(lfp):
    s = parse_step("Rest for 1 hour, log every 10 s", cell=lfp)
    assert s.logging == LoggingPolicy(period_s=10.0)
    s = parse_step("Charge at 1C until 3.6 V, log every 1 s or 5 mV", cell=lfp)
    assert s.logging == LoggingPolicy(period_s=1.0, delta_v=0.005)
    s = parse_step("Hold at 3.6 V until C/20, log every 30 s or 2 mV or 10 mA", cell=lfp)
    assert s.logging == LoggingPolicy(period_s=30.0, delta_v=0.002, delta_i=0.01)
    default = LoggingPolicy(period_s=7.0)
    assert parse_step("Rest for 1 s", cell=lfp, default_logging=default).logging == default
    assert parse_logging("every 5 mV", default=default) == LoggingPolicy(
        period_s=7.0, delta_v=0.005
    )


def test_step_text_is_kept(lfp):
    assert parse_step("  Rest for 1 hour ", cell=lfp).text == "Rest for 1 hour"


def problem_of(text, cell):
    with pytest.raises(ValidationError) as info:
        parse_step(text, cell=cell)
    return info.value.problems


def test_unknown_unit_column(lfp):
    text = "Charge at 1 Q"
    (p,) = problem_of(text, lfp)
    assert "unknown unit 'Q' for a current; allowed: A, mA, C-rate like 1C or C/20" in p.message
    assert p.column == text.index("Q") + 1


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Sing at 1C", ["unknown step 'Sing'", "Charge, Discharge, Hold or Rest"]),
        ("Rest for -1 s", ["greater than zero"]),
        ("Rest for 0 min", ["greater than zero"]),
        ("Rest for nan s", ["not a finite number"]),
        ("Charge at -1 A", ["must not carry a sign", "Discharge"]),
        ("Charge at 0 A", ["greater than zero"]),
        ("Rest", ["needs an end"]),
        ("Hold at 3.6 V", ["needs an end"]),
        ("Hold until C/20", ["needs a voltage"]),
        ("Charge until 3.6 V", ["needs a current"]),
        ("Charge at 4.2 V", ["Hold at 4.2 V"]),
        ("Charge at 1C until C/20", ["belongs to a Hold"]),
        ("Rest until 3.3 V", ["'until > 3.3 V'"]),
        ("Rest at 1C for 1 s", ["no set-point"]),
        ("Charge at 1C until 1 hour", ["for 1 hour"]),
        ("Charge at 1C for 1 s for 2 s", ["only one duration"]),
        ("Hold at 3.6 V until 3.5 V", ["keeps the voltage constant"]),
        ("Charge at 1C until < 3.6 V", ["raises the voltage"]),
        ("Rest for 1 h, log every 0 s", ["greater than zero"]),
        ("Rest for 1 h, log sometimes", ["log every 10 s"]),
        ("Charge quickly at 1C", ["unexpected 'quickly'"]),
        ("", ["empty step"]),
    ],
)
def test_rejected_steps(lfp, text, words):
    problems = problem_of(text, lfp)
    message = " | ".join(p.message for p in problems)
    for w in words:
        assert w in message
    assert all(p.column is not None and 1 <= p.column <= max(len(text), 1) + 1 for p in problems)


def test_several_problems_in_one_step_are_all_reported(lfp):
    text = "Charge at 1 Q until 3 Z"
    problems = problem_of(text, lfp)
    assert [p.column for p in problems] == [text.index("Q") + 1, text.index("Z") + 1]
