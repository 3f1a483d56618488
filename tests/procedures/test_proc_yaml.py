"""YAML procedure files: compilation, located problems, parameters, safety, includes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from labctl.capabilities.steps import ChamberStep, LoggingPolicy, Mode, Quantity
from labctl.errors import ValidationError
from labctl.procedures import load_procedure, validate_procedure
from tests.procedures.helpers import drive, result


def problems(path, cell, station=None, params=None):
    found = validate_procedure(path, cell=cell, station=station, params=params)
    assert found, "expected the file to be rejected"
    return found


def column_of(path: Path, line: int, token: str) -> int:
    """1-based column of `token` on a 1-based line of a file: the independent truth."""
    return path.read_text().splitlines()[line - 1].index(token) + 1


def texts(planned):
    return [p.step.text for p in planned]


def test_compile_simple_file(write, lfp, bench):
    path = write(
        "p.yaml",
        """
        name: simple
        description: a test
        log: every 10 s
        steps:
          - Rest for 1 minute
          - Charge at 1C until {cell.max_voltage_v} V
          - step: Hold at {cell.max_voltage_v} V until C/20
            log: every 30 s or 5 mV
    """,
    )
    proc = load_procedure(path, cell=lfp, station=bench)
    assert (proc.name, proc.description, proc.required_roles) == ("simple", "a test", ("cycler",))
    assert proc.text == path.read_text()
    assert proc.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    planned = drive(proc.plan(), lambda p: result())
    assert texts(planned) == [
        "Rest for 1 minute",
        "Charge at 1C until 3.65 V",
        "Hold at 3.65 V until C/20",
    ]
    assert [p.path for p in planned] == ["steps[0]", "steps[1]", "steps[2]"]
    rest, charge, hold = (p.step for p in planned)
    assert rest.logging == LoggingPolicy(period_s=10.0)
    assert hold.logging == LoggingPolicy(period_s=30.0, delta_v=0.005)
    assert charge.value == pytest.approx(2.2)
    assert hold.current_limit_a == pytest.approx(2.2)
    assert (charge.source.file, charge.source.line, charge.source.column) == (str(path), 6, 5)


def test_default_safety_is_cell_limits_with_tolerances(write, lfp):
    path = write("p.yaml", "steps: [Rest for 1 s]\n")
    s = load_procedure(path, cell=lfp).safety
    assert s.max_voltage_v == pytest.approx(3.65 + 0.05)
    assert s.min_voltage_v == pytest.approx(2.5 - 0.05)
    assert s.max_charge_current_a == pytest.approx(2.2 * 1.05)
    assert s.max_discharge_current_a == pytest.approx(6.6 * 1.05)
    assert (s.max_temperature_c, s.min_temperature_c) == (60.0, -20.0)


def test_safety_section_tightens(write, lfp):
    path = write(
        "p.yaml",
        """
        safety: {max_temperature_c: 45, max_voltage_v: 3.6 V, max_discharge_current_a: 2C}
        steps: [Rest for 1 s]
    """,
    )
    s = load_procedure(path, cell=lfp).safety
    assert (s.max_temperature_c, s.max_voltage_v) == (45.0, 3.6)
    assert s.max_discharge_current_a == pytest.approx(4.4)


def test_safety_looser_than_cell_is_rejected(write, lfp):
    path = write(
        "p.yaml",
        """
        safety:
          max_temperature_c: 70
        steps: [Rest for 1 s]
    """,
    )
    (p,) = problems(path, lfp)
    assert p.line == 2 and p.field == "safety.max_temperature_c"
    assert "60" in p.message and "only tighten" in p.message and lfp.source in p.message


def test_steps_checked_against_the_tightened_safety(write, lfp):
    path = write(
        "p.yaml",
        """
        safety: {max_voltage_v: 3.55}
        steps:
          - Charge at 1C until 3.6 V
    """,
    )
    (p,) = problems(path, lfp)
    assert p.line == 3 and "3.55" in p.message


def test_lfp_overcharge_rejected_with_location(write, lfp, bench):
    path = write("over.yaml", "name: over\nsteps:\n  - Charge at 1C until 4.2 V\n")
    (p,) = problems(path, lfp, bench)
    assert (p.file, p.line, p.column) == (str(path), 3, column_of(path, 3, "4.2 V"))
    assert "3.65" in p.message


def test_unknown_unit_column_in_file(write, lfp):
    path = write("bad.yaml", "name: bad\nsteps:\n  - Charge at 1 Q until 3.6 V\n")
    (p,) = problems(path, lfp)
    assert (p.line, p.column) == (3, column_of(path, 3, "Q"))
    assert "allowed: A, mA, C-rate like 1C or C/20" in p.message


def test_quoted_scalar_columns(write, lfp):
    path = write("bad.yaml", 'steps:\n  - "Charge at 1 Q"\n')
    (p,) = problems(path, lfp)
    assert p.column == column_of(path, 2, "Q")


def test_all_problems_are_listed(write, lfp, bench):
    path = write(
        "bad.yaml",
        """
        name: many
        steps:
          - Charge at 1C until 4.2 V
          - Sing at 1C
          - Rest for -1 s
          - Hold at 3.9 V until C/20
          - Discharge at 20 A until 2.5 V
          - dance: {}
          - step: Rest for 1 s
            colour: red
    """,
    )
    found = problems(path, lfp, bench)
    lines = sorted({p.line for p in found})
    assert lines == [3, 4, 5, 6, 7, 8, 10]
    text = "\n".join(p.message for p in found)
    assert "unknown step 'Sing'" in text and "unknown key 'colour'" in text
    assert "max_current_a 10 A" in text  # 20 A is beyond the cycler too


def test_load_procedure_raises_validation_error(write, lfp):
    path = write("bad.yaml", "steps:\n  - Sing at 1C\n  - Rest for 0 s\n")
    with pytest.raises(ValidationError) as info:
        load_procedure(path, cell=lfp)
    assert len(info.value.problems) == 2
    assert str(path) + ":2:" in str(info.value)


def test_yaml_python_tag_is_refused(write, lfp, tmp_path):
    marker = tmp_path / "pwned"
    path = write("evil.yaml", f"steps: !!python/object/apply:os.system ['touch {marker}']\n")
    (p,) = problems(path, lfp)
    assert "tag" in p.message
    assert not marker.exists()


def test_top_level_and_structure_errors(write, lfp):
    path = write(
        "p.yaml",
        """
        nmae: typo
        steps: []
    """,
    )
    msgs = " | ".join(p.message for p in problems(path, lfp))
    assert "unknown key 'nmae'" in msgs and "non-empty list" in msgs
    assert "steps" in " ".join(p.message for p in problems(write("q.yaml", "name: x\n"), lfp))
    assert problems(write("r.yaml", "- Rest for 1 s\n"), lfp)[0].message.startswith(
        "a procedure file"
    )


# -- parameters --------------------------------------------------------------------------------

PARAM_FILE = """
    name: params
    parameters:
      c_rate: {default: 1.0, min: 0.05, max: 1, unit: C}
      rest: {default: 10, min: 1, max: 120, unit: min}
      n: {default: 2, min: 1, max: 10, type: int}
    steps:
      - Charge at {c_rate}C until {cell.max_voltage_v} V
      - Rest for {rest} min
"""


def test_parameter_defaults_and_overrides(write, lfp):
    path = write("p.yaml", PARAM_FILE)
    proc = load_procedure(path, cell=lfp)
    assert proc.parameters == {"c_rate": 1.0, "rest": 10.0, "n": 2}
    proc = load_procedure(path, cell=lfp, params={"c_rate": "0.5", "rest": "0.5 h", "n": "3"})
    assert proc.parameters == {"c_rate": 0.5, "rest": 30.0, "n": 3}
    charge, rest = (p.step for p in drive(proc.plan(), lambda p: result()))
    assert charge.value == pytest.approx(1.1) and rest.duration_s == 1800
    assert load_procedure(path, cell=lfp, params={"c_rate": "C/4"}).parameters["c_rate"] == 0.25


def test_a_third_runs_exactly_and_reads_shortly(write, lfp):
    """C/3 runs at capacity/3 (to 12 digits); the step's text shows 0.3333C, not 0.333333333333C."""
    path = write("p.yaml", PARAM_FILE)
    proc = load_procedure(path, cell=lfp, params={"c_rate": "C/3"})
    charge, rest = (p.step for p in drive(proc.plan(), lambda p: result()))
    # the step runs with the twelve digits of format_number, not the four it shows
    assert charge.value == pytest.approx(lfp.capacity_ah / 3, rel=1e-11)
    assert abs(charge.value - lfp.capacity_ah * 0.3333) > 1e-5
    assert charge.text == f"Charge at 0.3333C until {lfp.limits.max_voltage_v:g} V"
    assert rest.text == "Rest for 10 min"


def test_parameter_override_out_of_range_or_unknown(write, lfp):
    path = write("p.yaml", PARAM_FILE)
    (p,) = problems(path, lfp, params={"c_rate": "50"})
    assert p.field == "--param c_rate" and p.line == 3 and "0.05 C to 1 C" in p.message
    (p,) = problems(path, lfp, params={"nope": "1"})
    assert "unknown parameter 'nope'" in p.message and "c_rate, rest, n" in p.message
    (p,) = problems(path, lfp, params={"n": "2.5"})
    assert "whole number" in p.message
    (p,) = problems(path, lfp, params={"c_rate": "1 V"})
    assert "is a voltage" in p.message


def test_unknown_placeholder(write, lfp):
    path = write("p.yaml", "steps:\n  - Charge at {rate}C until {cell.max_voltage_v} V\n")
    (p,) = problems(path, lfp)
    assert p.line == 2 and p.column == column_of(path, 2, "{rate}")
    assert "unknown parameter {rate}" in p.message


def test_bad_declarations(write, lfp):
    path = write(
        "p.yaml",
        """
        parameters:
          a: {default: 5, min: 10}
          b: {min: 1}
          c: {default: 1, unit: furlongs}
          d: {default: 1, colour: red}
        steps: [Rest for 1 s]
    """,
    )
    found = problems(path, lfp)
    assert sorted(p.line for p in found) == [2, 3, 4, 5]


# -- requires, chamber ---------------------------------------------------------------------------


def test_missing_role(write, lfp, bench, bench_chamber):
    path = write(
        "p.yaml",
        """
        requires: [cycler, chamber]
        steps:
          - chamber: {setpoint_c: 40}
    """,
    )
    found = problems(path, lfp, bench)
    assert any(p.line == 1 and "requires a chamber" in p.message for p in found)
    proc = load_procedure(path, cell=lfp, station=bench_chamber)
    assert proc.required_roles == ("cycler", "chamber")
    (p,) = problems(write("q.yaml", "requires: [oven]\nsteps: [Rest for 1 s]\n"), lfp)
    assert "unknown role 'oven'" in p.message


def test_chamber_step(write, lfp, bench_chamber):
    path = write(
        "p.yaml",
        """
        steps:
          - chamber: {setpoint_c: 25, ramp_c_per_min: 1, tolerance_c: 0.5, stable_for: 30 min,
                      timeout: 4 hours, on: cell}
    """,
    )
    (planned,) = drive(
        load_procedure(path, cell=lfp, station=bench_chamber).plan(), lambda p: result()
    )
    step = planned.step
    assert isinstance(step, ChamberStep)
    assert (step.setpoint_c, step.ramp_c_per_min, step.tolerance_c) == (25.0, 1.0, 0.5)
    assert (step.stable_for_s, step.timeout_s, step.stabilise_on) == (1800.0, 14400.0, "cell")


def test_chamber_setpoint_outside_ranges(write, lfp, bench_chamber):
    path = write(
        "p.yaml", "steps:\n  - chamber: {setpoint_c: 70}\n  - chamber: {setpoint_c: 25, on: air}\n"
    )
    found = problems(path, lfp, bench_chamber)
    assert any(p.line == 2 and "60 °C" in p.message for p in found)
    assert any(p.line == 3 and "cell or chamber" in p.message for p in found)


# -- repeat ------------------------------------------------------------------------------------


def test_repeat_count_cycles_and_iterations(write, lfp):
    path = write(
        "p.yaml",
        """
        parameters: {n: {default: 3, type: int, min: 1}}
        steps:
          - Rest for 1 s
          - repeat: "{n}"
            steps:
              - Charge at 1C
              - Discharge at 1C
    """,
    )
    planned = drive(load_procedure(path, cell=lfp).plan(), lambda p: result())
    assert len(planned) == 1 + 3 * 2
    assert [p.new_cycle for p in planned] == [False, True, False, True, False, True, False]
    assert [p.iteration for p in planned[1:]] == [(1,), (1,), (2,), (2,), (3,), (3,)]
    assert planned[2].path == "steps[1].steps[1]"


def test_repeat_until_capacity_fade(write, lfp):
    path = write(
        "p.yaml",
        """
        steps:
          - repeat: 100
            until: discharge_capacity_ah < 80 % of first
            steps:
              - Charge at 1C
              - Discharge at 1C
    """,
    )
    capacities = iter([2.0, 1.9, 1.7, 1.55, 1.5, 1.4])  # 1.55 < 0.8 * 2.0 = 1.6 in cycle 4

    def respond(planned):
        if planned.step.value < 0:
            return result(discharge_ah=next(capacities))
        return result(charge_ah=2.0)

    planned = drive(load_procedure(path, cell=lfp).plan(), respond)
    assert len(planned) == 4 * 2


def test_repeat_until_only_has_a_cap(write, lfp):
    path = write(
        "p.yaml",
        """
        steps:
          - repeat:
            until: max_temperature_c > 50 °C
            steps: [Rest for 1 s]
          - repeat:
            until: coulombic_efficiency < 90 %
            max: 7
            steps: [Rest for 1 s]
    """,
    )
    planned = drive(load_procedure(path, cell=lfp).plan(), lambda p: result())
    assert len(planned) == 10_000 + 7


def test_repeat_needs_count_or_until(write, lfp):
    path = write("p.yaml", "steps:\n  - repeat:\n    steps: [Rest for 1 s]\n")
    assert "count" in problems(path, lfp)[0].message
    path = write("q.yaml", "steps:\n  - repeat: 0\n    steps: [Rest for 1 s]\n")
    assert "at least 1" in problems(path, lfp)[0].message
    path = write(
        "r.yaml", "steps:\n  - repeat: 2\n    until: capacity < 3\n    steps: [Rest for 1 s]\n"
    )
    (p,) = problems(path, lfp)
    assert "unknown metric 'capacity'" in p.message and "discharge_capacity_ah" in p.message
    assert p.column == column_of(path, 3, "capacity")


def test_nested_repeat_and_cycle_false(write, lfp):
    path = write(
        "p.yaml",
        """
        steps:
          - repeat: 2
            steps:
              - Rest for 1 s
              - repeat: 2
                cycle: false
                steps: [Rest for 2 s]
    """,
    )
    planned = drive(load_procedure(path, cell=lfp).plan(), lambda p: result())
    assert [p.iteration for p in planned] == [(1,), (1, 1), (1, 2), (2,), (2, 1), (2, 2)]
    assert [p.new_cycle for p in planned] == [True, False, False, True, False, False]


def test_plan_is_deterministic_under_replay(write, lfp):
    path = write(
        "p.yaml",
        """
        steps:
          - repeat: 50
            until: discharge_capacity_ah < 95 % of previous
            steps: [Charge at 1C, Discharge at 1C]
    """,
    )
    proc = load_procedure(path, cell=lfp)

    def respond_factory():
        caps = iter([2.0 * 0.99**k if k != 6 else 1.0 for k in range(50)])
        return lambda p: (
            result(discharge_ah=next(caps)) if p.step.value < 0 else result(charge_ah=2)
        )

    first = drive(proc.plan(), respond_factory())
    second = drive(proc.plan(), respond_factory())
    assert first == second
    assert len(first) == 7 * 2  # the 7th discharge (1.0 Ah) is < 95 % of the 6th


# -- includes ----------------------------------------------------------------------------------


def test_include_with_parameters(write, lfp):
    write(
        "lib/charge.yaml",
        """
        parameters: {c_rate: {default: 1, unit: C, max: 1}}
        log: every 5 s
        steps:
          - Charge at {c_rate}C until {cell.max_voltage_v} V
    """,
    )
    main = write(
        "main.yaml",
        """
        parameters: {rate: {default: 0.5, unit: C}}
        steps:
          - Rest for 1 s
          - include: lib/charge.yaml
            with: {c_rate: "{rate}"}
    """,
    )
    proc = load_procedure(main, cell=lfp)
    planned = drive(proc.plan(), lambda p: result())
    assert planned[1].path == "steps[1]>charge.yaml>steps[0]"
    rest, charge = (p.step for p in planned)
    assert charge.value == pytest.approx(1.1) and charge.logging.period_s == 5.0
    assert rest.logging.period_s == 1.0
    inc = (main.parent / "lib" / "charge.yaml").resolve()
    assert proc.included_files == (str(inc),)
    expected = hashlib.sha256(main.read_bytes() + b"\0" + inc.read_bytes()).hexdigest()
    assert proc.sha256 == expected


def test_problem_inside_include_names_that_file(write, lfp):
    inc = write("inc.yaml", "steps:\n  - Rest for 1 s\n  - Charge at 1C until 4.2 V\n")
    main = write("main.yaml", "steps:\n  - include: inc.yaml\n")
    (p,) = problems(main, lfp)
    assert Path(p.file).resolve() == inc.resolve() and p.line == 3
    write("ok.yaml", "steps:\n  - Rest for 1 s\n")
    (p,) = problems(
        write(
            "m2.yaml",
            """
        steps:
          - include: ok.yaml
            with: {c_rate: 2}
    """,
        ),
        lfp,
    )
    assert "unknown parameter 'c_rate'" in p.message and p.line == 3 and p.file.endswith("m2.yaml")


def test_include_escape_loop_and_missing(write, lfp, tmp_path):
    write("outside.yaml", "steps: [Rest for 1 s]\n")
    main = write("sub/main.yaml", "steps:\n  - include: ../outside.yaml\n")
    assert "leaves the procedure's directory" in problems(main, lfp)[0].message
    write("sub/a.yaml", "steps:\n  - include: b.yaml\n")
    write("sub/b.yaml", "steps:\n  - include: a.yaml\n")
    (p,) = problems(tmp_path / "sub" / "a.yaml", lfp)
    assert "include loop: a.yaml -> b.yaml -> a.yaml" in p.message
    main = write("sub/m.yaml", "steps:\n  - include: nothere.yaml\n")
    assert "not found" in problems(main, lfp)[0].message


def test_max_duration_and_problem_order(write, lfp):
    path = write("p.yaml", "max_duration: 2 days\nsteps: [Rest for 1 s]\n")
    assert load_procedure(path, cell=lfp).max_duration_s == 2 * 86400
    path = write("q.yaml", "steps:\n  - Rest for 0 s\n  - Sing\nmax_duration: -1 h\n")
    assert [p.line for p in problems(path, lfp)] == [2, 3, 4]


@pytest.mark.parametrize("text, said", [
    ("max_duration: [1]", "must be text, got a list"),
    ("max_duration: 5 furlongs", "unknown unit 'furlongs'"),
    ("max_duration: -1 h", "must be greater than zero"),
])
def test_a_message_names_its_field_once(write, lfp, text, said):
    """The field is printed before every message: the message does not name it again."""
    (p,) = problems(write("p.yaml", f"{text}\nsteps: [Rest for 1 s]\n"), lfp)
    assert p.field == "max_duration" and p.message.startswith(said)
    assert str(p).count("max_duration") == 1


def test_missing_file(lfp, tmp_path):
    (p,) = problems(tmp_path / "missing.yaml", lfp)
    assert "not found" in p.message


def test_step_modes_compile(write, lfp):
    path = write(
        "p.yaml",
        "steps:\n  - Discharge at 5 W for 10 s\n  - step: Hold at 3.6 V for 1 h\n"
        "    current_limit: 1 A\n",
    )
    power, hold = (p.step for p in drive(load_procedure(path, cell=lfp).plan(), lambda p: result()))
    assert power.mode is Mode.POWER and power.until[-1].quantity is Quantity.VOLTAGE
    assert hold.current_limit_a == 1.0


def test_hold_current_limit_clamped_to_the_cycler(write, bench):
    from tests.procedures.helpers import make_cell

    big = make_cell("big", 50.0, 3.65, 2.5, 1.0, 1.0)  # would allow 50 A
    path = write("p.yaml", "steps:\n  - Hold at 3.6 V until C/20\n")
    (hold,) = (
        p.step
        for p in drive(load_procedure(path, cell=big, station=bench).plan(), lambda p: result())
    )
    assert hold.current_limit_a == 10.0
