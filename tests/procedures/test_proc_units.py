"""labctl.units: every spelling converts to SI by the factor a person would use."""

from __future__ import annotations

import math

import pytest

from labctl import units
from labctl.errors import ValidationError
from labctl.units import UnitError, format_number, parse_quantity


@pytest.mark.parametrize(
    ("text", "kind", "si"),
    [
        ("3.65 V", units.VOLTAGE, 3.65),
        ("3650 mV", units.VOLTAGE, 3.65),
        ("2 A", units.CURRENT, 2.0),
        ("500 mA", units.CURRENT, 0.5),
        ("5 W", units.POWER, 5.0),
        ("250 mW", units.POWER, 0.25),
        ("10 s", units.TIME, 10.0),
        ("10 sec", units.TIME, 10.0),
        ("1 second", units.TIME, 1.0),
        ("10 seconds", units.TIME, 10.0),
        ("250 ms", units.TIME, 0.25),
        ("30 min", units.TIME, 1800.0),
        ("1 minute", units.TIME, 60.0),
        ("30 minutes", units.TIME, 1800.0),
        ("2 h", units.TIME, 7200.0),
        ("1 hr", units.TIME, 3600.0),
        ("1 hour", units.TIME, 3600.0),
        ("1.5 hours", units.TIME, 5400.0),
        ("1 day", units.TIME, 86400.0),
        ("2 days", units.TIME, 172800.0),
        ("0.22 Ah", units.CHARGE, 0.22),
        ("220 mAh", units.CHARGE, 0.22),
        ("7.5 Wh", units.ENERGY, 7.5),
        ("45 °C", units.TEMPERATURE, 45.0),
        ("45 degC", units.TEMPERATURE, 45.0),
        ("-10 °C", units.TEMPERATURE, -10.0),
        ("1e3 mA", units.CURRENT, 1.0),
        ("3.6V", units.VOLTAGE, 3.6),
        ("95 %", units.RATIO, 0.95),
    ],
)
def test_units_convert_to_si(text, kind, si):
    q = parse_quantity(text)
    assert q.kind == kind
    assert q.value == pytest.approx(si, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "c"),
    [("1C", 1.0), ("0.5C", 0.5), ("2 C", 2.0), ("C/20", 0.05), ("c/3", 1 / 3), ("C / 2.5", 0.4)],
)
def test_c_rates_resolve_with_the_capacity(text, c):
    q = parse_quantity(text, units.CURRENT)
    assert q.kind == units.C_RATE
    assert q.to_si(2.2) == pytest.approx(c * 2.2, rel=1e-12)


def test_case_insensitive_units():
    assert parse_quantity("500 mA", units.CURRENT).value == pytest.approx(0.5)
    assert parse_quantity("1 HOUR", units.TIME).value == 3600.0
    # ...except an SI prefix: "500 MA" is megaamperes, never 0.5 A (issue 13).
    with pytest.raises(UnitError, match="case-sensitive"):
        parse_quantity("500 MA", units.CURRENT)


def test_unknown_unit_lists_allowed_and_points_at_it():
    text = "1 Q"
    with pytest.raises(UnitError) as info:
        parse_quantity(text, units.CURRENT)
    err = info.value
    assert "unknown unit 'Q' for a current; allowed: A, mA, C-rate like 1C or C/20" in err.reason
    assert err.offset == text.index("Q")
    assert isinstance(err, ValidationError)  # callers catching ValidationError see it


def test_wrong_kind_says_what_it_is():
    with pytest.raises(UnitError, match="is a voltage, expected a current"):
        parse_quantity("3 V", units.CURRENT)


@pytest.mark.parametrize("text", ["nan V", "inf s", "-inf A", "1e999 V"])
def test_non_finite_numbers_are_refused(text):
    with pytest.raises(UnitError):
        parse_quantity(text)


def test_missing_unit_and_decimal_comma():
    with pytest.raises(UnitError, match="missing unit after 3.65 for a voltage; allowed: V, mV"):
        parse_quantity("3.65", units.VOLTAGE)
    assert parse_quantity("3.65", units.VOLTAGE, allow_bare=True).value == 3.65
    with pytest.raises(UnitError, match="decimal point"):
        parse_quantity("3,65 V", units.VOLTAGE)


def test_duration_helper_rejects_zero_and_negative():
    assert units.parse_duration_s("30 min") == 1800.0
    assert units.parse_duration_s(12) == 12.0
    for bad in ("0 s", "-5 min", 0, -1.0, float("nan")):
        with pytest.raises(UnitError):
            units.parse_duration_s(bad)


def test_helpers_and_format_number():
    assert units.parse_current_a("C/20", capacity_ah=2.2) == pytest.approx(0.11)
    assert units.parse_voltage_v("2750 mV") == pytest.approx(2.75)
    assert units.parse_temperature_c("25 degC") == 25.0
    assert units.unit_factor("mAh") == pytest.approx(1e-3)
    assert format_number(1.0) == "1" and format_number(0.05) == "0.05" and format_number(3) == "3"
    assert float(format_number(1 / 3)) == pytest.approx(1 / 3, rel=1e-11)
    assert math.isclose(float(format_number(3.65)), 3.65)
