"""Abuse permission: normal procedures never cross cell limits; abuse ones only as declared,
bounded by their own safety values, and only on a station with an abuse-rated chamber."""

from __future__ import annotations

import pytest

from labctl.engine.session import prepare
from labctl.errors import ValidationError
from tests.abuse.abuse_helpers import NMC, REPO, proc, run
from tests.support import labctl_cmd

ABUSE_STATION = REPO / "instruments" / "sim-abuse.yaml"
NORMAL_STATION = REPO / "instruments" / "sim.yaml"


def _problems(p, station=ABUSE_STATION):
    with pytest.raises(ValidationError) as info:
        prepare(p, station_path=station, cell_ref=NMC)
    return info.value.problems


def test_normal_procedure_cannot_exceed_cell_limits(tmp_path):
    p = proc(tmp_path, """
        steps:
          - dsc_ramp: {to: 300 °C}
          - Charge at 1C until 5 V
    """)
    problems = _problems(p)
    text = "\n".join(str(x) for x in problems)
    assert "300 °C is above the max temperature" in text
    assert "5 V is above the max voltage 4.2 V" in text
    assert {x.line for x in problems} == {3, 4}


def test_safety_cannot_be_loosened_without_permission(tmp_path):
    p = proc(tmp_path, """
        safety: {max_voltage_v: 5}
        steps:
          - Rest for 1 min
    """)
    assert "looser than the limit" in str(_problems(p)[0])


def test_abuse_on_a_station_without_abuse_rated_chamber_is_rejected_located(tmp_path):
    p = proc(tmp_path, """
        name: x
        abuse: {allow: [max_temperature_c], reason: test}
        safety: {max_temperature_c: 400}
        steps:
          - dsc_ramp: {to: 300 °C}
    """)
    problems = _problems(p, NORMAL_STATION)
    rated = [x for x in problems if "abuse-rated" in x.message]
    assert len(rated) == 1 and rated[0].line == 3 and rated[0].field == "abuse"
    # the same file on the CLI: exit 2, no traceback, the location printed
    res = labctl_cmd("validate", str(p), "--station", str(NORMAL_STATION), "--cell", NMC)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr + res.stdout
    assert f"{p.name}:3" in res.stderr + res.stdout


@pytest.mark.parametrize("body, needle, line", [
    ("abuse: true", "abuse is a mapping", 2),
    ("abuse: {allow: [max_voltage_v]}", "needs a reason", 2),
    ("abuse: {allow: [max_volts], reason: r}", "unknown limit 'max_volts'", 2),
    ("abuse: {allow: [max_voltage_v], reason: r}", "give its new limit in safety", 2),
])
def test_abuse_declaration_problems_are_located(tmp_path, body, needle, line):
    p = proc(tmp_path, f"""
        {body}
        steps:
          - Rest for 1 min
    """)
    problems = _problems(p)
    hits = [x for x in problems if needle in x.message]
    assert hits and hits[0].line == line


def test_abuse_limit_is_still_bounded_by_its_safety_value(tmp_path):
    p = proc(tmp_path, """
        abuse: {allow: [max_voltage_v], reason: overcharge}
        safety: {max_voltage_v: 5}
        steps:
          - Charge at 1C until 5.5 V
          - dsc_ramp: {to: 300 °C}
    """)
    text = "\n".join(str(x) for x in _problems(p))
    assert "procedure's safety limit max_voltage_v = 5 V" in text
    assert "300 °C is above the max temperature" in text  # not allowed: still the cell's limit


def test_abuse_overcharge_runs_past_the_voltage_limit(tmp_path):
    out, r = run(REPO / "procedures" / "overcharge.yaml", ABUSE_STATION, tmp_path)
    assert out.status == "completed", out.reason
    steps = r.steps
    over = steps[steps.kind == "overcharge"].iloc[0]
    th = r.records("thermal")
    oc = th[th.phase == "overcharge"]
    assert oc.soc.max() > 1.05  # charged past full
    assert oc.cell_temperature_c.max() >= 150  # the stop temperature ended the current
    assert "150 °C" in over.end_reason
    ts = r.timeseries
    during = ts[ts.step_index == over.step_index]
    assert (during.current_a > 1.8).mean() > 0.9
    assert r.meta is not None
