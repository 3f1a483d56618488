"""Python procedures: loading, parameters, branching on results, and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.capabilities.steps import Mode
from labctl.errors import ValidationError
from labctl.procedures import load_procedure, validate_procedure
from tests.procedures.helpers import drive, result

RAMP = Path(__file__).resolve().parents[2] / "procedures" / "examples" / "ramp.py"


def ramp_responder(sag_at: int | None = None, v0: float = 3.31, dv: float = 0.05):
    """Pulse k ends at v0 - dv*k; optionally pulse `sag_at` hits a cell limit."""
    pulses = []

    def respond(planned):
        step = planned.step
        if step.mode is Mode.CURRENT and step.value < 0 and step.duration_s is not None:
            k = len(pulses)
            pulses.append(step)
            kind = "condition" if k == sag_at else "time"
            return result(end_voltage_v=v0 - dv * k, end_kind=kind)
        return result(end_voltage_v=v0)

    return respond, pulses


def test_ramp_example_branches_on_end_voltage(lfp, bench):
    proc = load_procedure(RAMP, cell=lfp, station=bench)
    assert proc.name == "ramp" and proc.required_roles == ("cycler",)
    assert proc.parameters["start_c"] == 0.5
    respond, pulses = ramp_responder()
    planned = drive(proc.plan(), respond)
    threshold = 2.5 + 0.2
    # pulse k ends at 3.31 - 0.05 k; the first below 2.7 V is k = 13 (2.66 V)
    n = next(k for k in range(100) if 3.31 - 0.05 * k < threshold) + 1
    assert len(pulses) == n == 14
    assert len(planned) == 3 + n + (n - 1) + 1  # charge, hold, rest; pulses and rests; final rest
    expected_rates = [min(0.5 + 0.25 * k, 2.0) for k in range(n)]
    assert [-p.value for p in pulses] == pytest.approx([r * 2.2 for r in expected_rates])
    assert planned[0].step.until[0].value == pytest.approx(3.65)


def test_ramp_stops_when_a_pulse_is_cut_short(lfp):
    proc = load_procedure(RAMP, cell=lfp)
    respond, pulses = ramp_responder(sag_at=3)
    drive(proc.plan(), respond)
    assert len(pulses) == 4


def test_ramp_parameters(lfp):
    proc = load_procedure(RAMP, cell=lfp, params={"start_c": "1", "step_c": "0"})
    respond, pulses = ramp_responder()
    drive(proc.plan(), respond)
    assert {round(-p.value, 9) for p in pulses} == {2.2}
    (p,) = validate_procedure(RAMP, cell=lfp, params={"start_c": "50"})
    assert p.field == "--param start_c" and p.file == str(RAMP)


def test_syntax_error_names_file_and_line(write, lfp):
    path = write("bad.py", "def procedure(ctx):\n    yield ctx.step('Rest for 1 s'\n")
    (p,) = validate_procedure(path, cell=lfp)
    assert p.file == str(path) and p.line in (2, 3) and "syntax" in p.message.lower()


def test_missing_or_non_generator_procedure(write, lfp):
    (p,) = validate_procedure(write("none.py", "X = 1\n"), cell=lfp)
    assert "def procedure(ctx)" in p.message
    (p,) = validate_procedure(write("plain.py", "def procedure(ctx):\n    return 1\n"), cell=lfp)
    assert "generator" in p.message and p.line == 1


def test_import_error_names_the_line(write, lfp):
    path = write("boom.py", "import math\nraise RuntimeError('no bench')\n")
    (p,) = validate_procedure(path, cell=lfp)
    assert p.line == 2 and "no bench" in p.message


def test_bad_step_text_at_run_time(write, lfp):
    path = write(
        "p.py",
        "def procedure(ctx):\n    yield ctx.step('Rest for 1 s')\n"
        "    yield ctx.step('Charge at 1 Q')\n",
    )
    plan = load_procedure(path, cell=lfp).plan()
    first = next(plan)
    assert first.step.text == "Rest for 1 s" and first.step.source.line == 2
    with pytest.raises(ValidationError) as info:
        plan.send(result())
    (p,) = info.value.problems
    assert p.file == str(path) and p.line == 3 and "unknown unit 'Q'" in p.message


def test_requires_and_safety_and_new_cycle(write, lfp, bench):
    path = write(
        "p.py",
        """
        REQUIRES = ["cycler", "chamber"]
        SAFETY = {"max_temperature_c": 45}

        def procedure(ctx):
            for _ in range(2):
                yield ctx.step("Charge at 1C", new_cycle=True)
                yield ctx.chamber(30)
    """,
    )
    (p,) = validate_procedure(path, cell=lfp, station=bench)
    assert "requires a chamber" in p.message
    proc = load_procedure(path, cell=lfp)
    assert proc.safety.max_temperature_c == 45
    planned = drive(proc.plan(), lambda s: result())
    assert [s.new_cycle for s in planned] == [True, False, True, False]
    assert planned[1].step.setpoint_c == 30.0
    path = write(
        "q.py",
        "SAFETY = {'max_voltage_v': 9}\ndef procedure(ctx):\n    yield ctx.step('Rest for 1 s')\n",
    )
    (p,) = validate_procedure(path, cell=lfp)
    assert "only tighten" in p.message
