"""Cycler channel qualification: accuracy against a reference meter, step response, CV.

Limits are the channel's accuracy specification (a Keithley 2400-class SMU):
current ±(0.05 % of reading + range offset), voltage ±(0.02 % + 1 mV).
"""

from __future__ import annotations

import numpy as np
import pytest

from labctl.capabilities.steps import ElectricalStep, LoggingPolicy, Mode
from labctl.drivers.step_response import step_response

pytestmark = pytest.mark.labctl_qualification

CURRENTS_A = (-1.0, -0.1, -0.01, 0.01, 0.1)  # the 1 A, 100 mA and 10 mA ranges, both signs
CURRENT_GAIN = 0.0005
VOLTAGE_GAIN, VOLTAGE_OFFSET_V = 0.0002, 0.001


def current_offset_a(current_a: float) -> float:
    """The offset part of the spec in the range that holds `current_a`."""
    for top, offset in ((0.0105, 10e-6), (0.105, 100e-6)):
        if abs(current_a) <= top:
            return offset
    return 1e-3


def run(cycler, step, limits):
    """Run a step on the channel; returns the concatenated samples and why it ended."""
    gen = cycler.run_step(step, limits, step.logging)
    t, v, i = [], [], []
    try:
        while True:
            b = next(gen)
            t.extend(b.step_time_s)
            v.extend(b.voltage_v)
            i.extend(b.current_a)
    except StopIteration as stop:
        return np.array(t), np.array(v), np.array(i), stop.value


@pytest.mark.parametrize("current_a", CURRENTS_A)
def test_current_accuracy(cycler, reference_meter, cell_limits, measure, current_a):
    step = ElectricalStep(Mode.CURRENT, current_a, duration_s=5.0, logging=LoggingPolicy(1.0))
    _, _, i, end = run(cycler, step, cell_limits)
    assert end.kind.value == "time", end.reason
    ref = reference_meter.read().current_a  # at the channel's last reading
    tol = CURRENT_GAIN * abs(current_a) + current_offset_a(current_a)
    measure(f"current_error[{current_a:+g} A]", i[-1] - ref, low=-tol, high=tol, unit="A")
    measure(f"current_setpoint_error[{current_a:+g} A]", ref - current_a, low=-tol, high=tol,
            unit="A")


@pytest.mark.parametrize("current_a", (0.0, -0.5, 0.5))
def test_voltage_accuracy(cycler, reference_meter, cell_limits, measure, current_a):
    mode = Mode.REST if current_a == 0 else Mode.CURRENT
    step = ElectricalStep(mode, current_a, duration_s=5.0, logging=LoggingPolicy(1.0))
    _, v, _, _ = run(cycler, step, cell_limits)
    ref = reference_meter.read().voltage_v
    tol = VOLTAGE_GAIN * abs(ref) + VOLTAGE_OFFSET_V
    measure(f"voltage_error[{current_a:+g} A]", v[-1] - ref, low=-tol, high=tol, unit="V")


def test_current_rise_time_and_overshoot(cycler, reference_meter, measure):
    t, i = reference_meter.capture_current_step(cycler, 0.0, 0.5)
    settled = float(np.mean(i[-len(i) // 10:]))
    r = step_response(t, i, 0.0, settled)
    measure("current_rise_time_10_90", r.rise_time_s * 1e3, high=1.0, unit="ms")
    measure("current_overshoot", r.overshoot * 100, low=0.0, high=10.0, unit="%")
    measure("current_settling_1pct", r.settling_time_s * 1e3, high=5.0, unit="ms")


def test_cv_regulation(cycler, reference_meter, cell_limits, measure):
    _, v, _, _ = run(cycler, ElectricalStep(Mode.REST, duration_s=2.0), cell_limits)
    # 5 mV above open circuit: a CV charge below the 0.5 A limit from the start (R0 ~ 20 mOhm).
    setpoint = round(float(v[-1]) + 0.005, 4)
    step = ElectricalStep(Mode.VOLTAGE, setpoint, duration_s=60.0, current_limit_a=0.5,
                          logging=LoggingPolicy(1.0))
    t, v, i, _ = run(cycler, step, cell_limits)
    ref = reference_meter.read()
    measure("cv_setpoint_error", (ref.voltage_v - setpoint) * 1e3, low=-2.0, high=2.0, unit="mV")
    held = v[t >= 10.0]
    measure("cv_regulation_pp", (held.max() - held.min()) * 1e3, high=1.0, unit="mV")
    # Regulating, not current-limited: charging, below the limit and decaying.
    assert 0 < i[-1] < i[1] < 0.5


def test_capacity_counting_through_a_procedure(run_procedure, measure):
    from pathlib import Path

    run = run_procedure(Path(__file__).parent / "cycler-check.yaml", current="0.2 A")
    assert run.meta["status"] == "completed", run.meta.get("reason")
    steps = run.steps
    counted = float(steps["discharge_capacity_ah"].sum())
    expected = 0.2 * 30 / 3600
    measure("discharge_capacity_error", (counted - expected) / expected * 100,
            low=-1.0, high=1.0, unit="%")
