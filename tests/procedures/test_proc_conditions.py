"""Loop conditions: the tiny grammar and the metrics over an iteration's results."""

from __future__ import annotations

import math

import pytest

from labctl.procedures.conditions import ConditionError, iteration_metrics, parse_until
from tests.procedures.helpers import result


def test_metrics_of_an_iteration():
    results = [
        result(charge_ah=2.0, charge_wh=6.8, max_temperature_c=31.0, duration_s=3600),
        result(duration_s=600, max_temperature_c=float("nan")),
        result(
            discharge_ah=1.9,
            discharge_wh=6.0,
            end_voltage_v=2.51,
            max_temperature_c=33.5,
            duration_s=3400,
        ),
    ]
    m = iteration_metrics(results)
    assert m["charge_capacity_ah"] == 2.0 and m["discharge_capacity_ah"] == 1.9
    assert m["coulombic_efficiency"] == pytest.approx(1.9 / 2.0)
    assert m["energy_efficiency"] == pytest.approx(6.0 / 6.8)
    assert m["max_temperature_c"] == 33.5  # NaN (no thermocouple) is skipped
    assert m["end_voltage_v"] == 2.51
    assert m["duration_s"] == 7600
    assert math.isnan(iteration_metrics([result()])["coulombic_efficiency"])  # nothing charged


def hist(*values, metric="discharge_capacity_ah"):
    return [{metric: v} for v in values]


def test_absolute_thresholds_with_units():
    (c,) = parse_until("discharge_capacity_ah < 1600 mAh")
    assert c.value == pytest.approx(1.6)
    assert c.holds(hist(2.0, 1.59)) and not c.holds(hist(2.0, 1.6))
    (c,) = parse_until("coulombic_efficiency < 99 %")
    assert c.value == pytest.approx(0.99)
    (c,) = parse_until("max_temperature_c >= 45 °C")
    assert c.holds(hist(45.0, metric="max_temperature_c"))


def test_relative_thresholds():
    (c,) = parse_until("discharge_capacity_ah < 80 % of first")
    assert not c.holds(hist(2.0))  # never true on the first iteration for a positive value
    assert not c.holds(hist(2.0, 1.6)) and c.holds(hist(2.0, 1.599))
    (c,) = parse_until("discharge_capacity_ah < 90 % of max")
    assert c.holds(hist(2.0, 2.2, 1.97))  # 1.97 < 0.9 * 2.2 = 1.98
    (c,) = parse_until("discharge_capacity_ah <= 95 % of previous")
    assert not c.holds(hist(2.0)) and c.holds(hist(2.0, 1.9)) and not c.holds(hist(2.0, 1.91))


def test_or_and_nan():
    conds = parse_until("discharge_capacity_ah < 1 Ah or end_voltage_v < 2.6 V")
    assert len(conds) == 2
    assert not any(
        c.holds([{"discharge_capacity_ah": math.nan, "end_voltage_v": math.nan}]) for c in conds
    )


@pytest.mark.parametrize(
    ("text", "word", "token"),
    [
        ("capacity < 1", "unknown metric 'capacity'", "capacity"),
        ("discharge_capacity_ah < 80 % of best", "unknown reference 'best'", "best"),
        ("discharge_capacity_ah < 3 V", "is a voltage", "V"),
        ("discharge_capacity_ah = 3", "cannot read", "discharge"),
        ("end_voltage_v < 3 V or capacity < 1", "unknown metric 'capacity'", "capacity"),
        ("", "an until condition is text", ""),
    ],
)
def test_errors_point_at_the_bad_part(text, word, token):
    with pytest.raises(ConditionError) as info:
        parse_until(text)
    assert word in info.value.reason
    assert info.value.offset == text.index(token)
