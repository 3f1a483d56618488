"""Property-based: any text gives a step/procedure or a ValidationError, never another exception."""

from __future__ import annotations

import math

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl.capabilities.steps import ElectricalStep
from labctl.errors import ValidationError
from labctl.procedures import loads_procedure, parse_step
from labctl.procedures.conditions import ConditionError, parse_until
from labctl.procedures.model import CompiledProcedure
from labctl.procedures.substitute import substitute
from tests.procedures.helpers import drive, make_cell, make_station, result

LFP = make_cell("lfp-2p2ah", 2.2, 3.65, 2.5, 1.0, 3.0)
STATION = make_station(chamber=True)
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

WORDS = [
    "Charge",
    "Discharge",
    "Hold",
    "Rest",
    "at",
    "for",
    "until",
    "or",
    "log",
    "every",
    ",",
    "1C",
    "C/20",
    "C/0",
    "2 C",
    "3.65 V",
    "500 mA",
    "5 W",
    "10 s",
    "1 hour",
    "0.2 Ah",
    "45 °C",
    "-1",
    "0",
    "nan",
    "inf",
    "1e400",
    "<",
    ">=",
    "Q",
    "{x}",
    "%",
    "degC",
    "mV",
    "1",
    "2.5",
]
grammarish = st.lists(st.sampled_from(WORDS), max_size=10).map(" ".join)


@FAST
@given(st.one_of(st.text(max_size=60), grammarish))
def test_any_step_text_parses_or_raises_validation_error(text):
    try:
        step = parse_step(text, cell=LFP)
    except ValidationError as exc:
        assert exc.problems and all(p.message for p in exc.problems)
        return
    assert isinstance(step, ElectricalStep)
    assert math.isfinite(step.value)
    assert step.duration_s is None or (math.isfinite(step.duration_s) and step.duration_s > 0)


@FAST
@given(
    st.sampled_from(["Charge", "Discharge"]),
    st.floats(min_value=0.001, max_value=1e4, allow_nan=False),
    st.sampled_from([("A", 1.0), ("mA", 1e-3), ("C", 2.2)]),
    st.floats(min_value=0.001, max_value=1e6, allow_nan=False),
    st.sampled_from([("s", 1.0), ("min", 60.0), ("h", 3600.0), ("ms", 1e-3)]),
)
def test_generated_steps_have_the_values_written(verb, x, current_unit, t, time_unit):
    text = f"{verb} at {x!r} {current_unit[0]} for {t!r} {time_unit[0]}"
    step = parse_step(text, cell=LFP)
    sign = 1 if verb == "Charge" else -1
    assert step.value == pytest.approx(sign * x * current_unit[1], rel=1e-12)
    assert step.duration_s == pytest.approx(t * time_unit[1], rel=1e-12)


@FAST
@given(st.text(max_size=80))
def test_until_grammar_never_crashes(text):
    try:
        conds = parse_until(text)
    except ConditionError as exc:
        assert 0 <= exc.offset <= len(text)
        return
    assert conds


@FAST
@given(st.text(max_size=60))
def test_substitution_never_crashes_and_maps_offsets_inside_the_original(text):
    new, tmap, problems = substitute(text, {"x": "1.5", "cell.max_voltage_v": "3.65"})
    for i in range(len(new) + 1):
        assert 0 <= tmap.original(i) <= len(text)
    for offset, message in problems:
        assert 0 <= offset < len(text) and message


def compile_or_error(text: str) -> None:
    try:
        proc = loads_procedure(text, cell=LFP, station=STATION, file="/tmp/labctl-prop/p.yaml")
    except ValidationError as exc:
        assert exc.problems
        for p in exc.problems:
            assert p.message
            assert p.line is None or p.line >= 1
        return
    assert isinstance(proc, CompiledProcedure)
    # Nested until-only loops may legitimately plan 10,000 x 10,000 steps: look at the start only.
    planned = drive(proc.plan(), lambda s: result(discharge_ah=1.0, charge_ah=1.0), limit=20_000)
    assert all(isinstance(p.step.text, str) for p in planned)


@FAST
@given(st.text(max_size=200))
def test_any_yaml_text_compiles_or_raises_validation_error(text):
    compile_or_error(text)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 20),
    st.floats(allow_nan=True, allow_infinity=True),
    grammarish,
    st.sampled_from(
        [
            "{n}",
            "every 10 s",
            "C/20",
            "30 min",
            "cell",
            "x.yaml",
            "discharge_capacity_ah < 80 % of first",
        ]
    ),
)
KEYS = [
    "name",
    "steps",
    "step",
    "repeat",
    "until",
    "max",
    "cycle",
    "chamber",
    "setpoint_c",
    "include",
    "with",
    "log",
    "parameters",
    "default",
    "min",
    "type",
    "safety",
    "max_voltage_v",
    "requires",
    "n",
    "on",
    "stable_for",
    "current_limit",
    "bogus",
]
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), children, max_size=4),
    ),
    max_leaves=20,
)


@FAST
@given(st.dictionaries(st.sampled_from(KEYS), documents, max_size=5))
def test_structured_documents_compile_or_raise_validation_error(doc):
    compile_or_error(yaml.safe_dump(doc, allow_unicode=True))


@FAST
@given(st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=1, max_size=30))
def test_plan_replay_is_deterministic(capacities):
    text = """
steps:
  - repeat: 30
    until: discharge_capacity_ah < 90 % of previous or discharge_capacity_ah < 0.5 Ah
    steps: [Charge at 1C, Discharge at 1C]
"""
    proc = loads_procedure(text, cell=LFP)

    def responder():
        it = iter(capacities * 30)
        return lambda p: result(discharge_ah=next(it)) if p.step.value < 0 else result(charge_ah=2)

    first, second = drive(proc.plan(), responder()), drive(proc.plan(), responder())
    assert first == second
    # independent truth: walk the capacities by hand
    caps = (capacities * 30)[:30]
    n = 30
    for k, c in enumerate(caps):
        if c < 0.5 or (k > 0 and c < 0.9 * caps[k - 1]):
            n = k + 1
            break
    assert len(first) == 2 * n


VALID_STEPS = [
    "Rest for 1 s",
    "Charge at 1C",
    "Discharge at C/2 for 10 min",
    "Hold at 3.6 V until C/20",
    "Discharge at 5 W for 10 s, log every 2 s",
    "Charge at 0.5C for 30 minutes or until 3.6 V",
]
trees = st.recursive(
    st.sampled_from(VALID_STEPS),
    lambda children: st.builds(
        lambda n, body, cycle: {"repeat": n, "cycle": cycle, "steps": body},
        st.integers(1, 3),
        st.lists(children, min_size=1, max_size=3),
        st.booleans(),
    ),
    max_leaves=8,
)


def expected_steps(node) -> int:
    if isinstance(node, str):
        return 1
    return node["repeat"] * sum(expected_steps(c) for c in node["steps"])


def max_depth(node, depth=0) -> int:
    if isinstance(node, str):
        return depth
    return max(max_depth(c, depth + 1) for c in node["steps"])


@FAST
@given(st.lists(trees, min_size=1, max_size=4))
def test_valid_trees_compile_and_plan_the_right_number_of_steps(steps):
    proc = loads_procedure(yaml.safe_dump({"steps": steps}), cell=LFP, station=STATION)
    planned = drive(proc.plan(), lambda s: result())
    assert len(planned) == sum(expected_steps(s) for s in steps)
    assert max(len(p.iteration) for p in planned) == max(max_depth(s) for s in steps)
    assert {p.step.text for p in planned} <= set(VALID_STEPS)
