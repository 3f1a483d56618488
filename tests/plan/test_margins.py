"""The margins table: a limit the run stops on reads 0, "reached" (not a hair of margin
with "27 °C > 27 °C" beside it, as a review found), a current that never flows is 0 A."""

from __future__ import annotations

import pytest

from labctl.capabilities.limits import SafetyLimits, violation_text
from labctl.engine.session import prepare
from labctl.plan import plan_prepared
from labctl.plan.report import margins, tripped_limit
from labctl.plan.walk import Extreme
from tests.plan.conftest import write
from tests.support import REPO

LIMITS = SafetyLimits(max_voltage_v=4.25, min_voltage_v=2.7, max_charge_current_a=2.0,
                      max_discharge_current_a=4.0, max_temperature_c=27.0,
                      min_temperature_c=-20.0)


def test_a_value_that_rounds_to_its_limit_reads_as_reaching_it():
    assert violation_text("temperature", 27.04, "°C", ">", 27.0) == \
        "safety: temperature 27.04 °C > 27 °C"
    assert violation_text("temperature", 26.99993, "°C", ">", 27.0) == \
        "safety: temperature rose to its limit of 27 °C"
    assert violation_text("voltage", 2.70001, "V", "<", 2.7) == \
        "safety: voltage fell to its limit of 2.7 V"


@pytest.mark.parametrize(("reason", "limit"), [
    ("safety: temperature 27.04 °C > 27 °C", "max_temperature"),
    ("safety: temperature rose to its limit of 27 °C", "max_temperature"),
    ("safety: cell temperature 501 °C >= 500 °C", "max_temperature"),  # an abuse step's
    ("safety: temperature -21 °C < -20 °C", "min_temperature"),
    ("safety: voltage fell to its limit of 2.7 V", "min_voltage"),
    ("safety: voltage 4.3 V > 4.25 V", "max_voltage"),
    ("safety: charge current 2.2 A > 2.1 A", "charge_current"),
    ("safety: discharge current 4.2 A > 4.1 A", "discharge_current"),
    ("time elapsed", None),
    ("reached 4.2 V", None),
])
def test_the_limit_a_safety_end_passed(reason, limit):
    assert tripped_limit(reason) == limit


def test_reached_limits_and_currents_that_never_flow():
    extremes = {
        "max_voltage_v": Extreme(3.6), "min_voltage_v": Extreme(-3.4),
        # a discharge only: the largest charge current is negative, the discharge's 3.9 A
        "charge_current_a": Extreme(-3.9), "discharge_current_a": Extreme(3.9),
        "max_temperature_c": Extreme(26.99993), "min_temperature_c": Extreme(-25.0),
    }
    out = margins(extremes, LIMITS, frozenset({"max_temperature"}))
    assert out["max_temperature"]["margin"] == 0.0 and out["max_temperature"]["reached"]
    assert out["charge_current"]["value"] == 0.0
    assert out["charge_current"]["margin"] == pytest.approx(2.0)
    assert out["discharge_current"]["margin"] == pytest.approx(0.1)
    assert out["min_voltage"]["margin"] == pytest.approx(0.7) and not out["min_voltage"]["reached"]


def test_a_plan_stopped_by_a_temperature_limit_shows_it_reached(tmp_path):
    proc = write(tmp_path, "hot", "name: hot\nlog: every 10 s\nsafety:\n  max_temperature_c: 27\n"
                 "steps:\n  - Discharge at 2C until {cell.min_voltage_v} V\n")
    report = plan_prepared(prepare(proc, station_path=REPO / "instruments" / "sim.yaml",
                                   cell_ref="nmc-1p95ah"))
    assert report.status == "aborted"
    hot = report.margins["max_temperature"]
    assert hot["reached"] and hot["margin"] <= 0.0
    assert not any("27 °C > 27 °C" in w for w in report.warnings), report.warnings
    assert all("safety: safety:" not in w for w in report.warnings)
    assert report.margins["charge_current"]["value"] == 0.0  # the procedure never charges
