"""The simulated cell against closed-form solutions computed here, independently."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labctl.capabilities import (
    ElectricalStep,
    EndCondition,
    EndKind,
    LoggingPolicy,
    Mode,
    Profile,
    Quantity,
    SafetyLimits,
)
from tests.sim.helpers import channel, joined, linear_cell, make_cell, run, table

A, B = 3.0, 1.0  # OCV = A + B s
Q = 2.0  # Ah
R0 = 0.05


def v_until(value: float, op: str = "<=") -> EndCondition:
    return EndCondition(Quantity.VOLTAGE, op, value, f"{value} V")


def test_cc_discharge_matches_closed_form_at_every_sample_and_at_cut_off():
    s0, current, v_cut = 0.9, -1.5, 3.2
    ch = channel(linear_cell(A, B, r0=R0, capacity_ah=Q, initial_soc=s0))
    step = ElectricalStep(Mode.CURRENT, current, until=(v_until(v_cut),))
    batches, end = run(ch, step, logging=LoggingPolicy(period_s=1.0))
    d = joined(batches)
    t = d["step_time_s"]
    expected = A + B * (s0 + current * t / (3600 * Q)) + current * R0
    np.testing.assert_allclose(d["voltage_v"], expected, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(d["current_a"], current)

    t_cut = (v_cut - A - current * R0 - B * s0) * 3600 * Q / (B * current)
    assert end.kind is EndKind.CONDITION and end.condition_index == 0
    assert "3.2 V" in end.reason
    assert abs(t[-1] - t_cut) <= 1e-3
    assert d["voltage_v"][-1] == pytest.approx(v_cut, abs=1e-6)
    # Samples every second before the cut-off, the cut-off itself last.
    np.testing.assert_allclose(np.diff(t[:-1]), 1.0)
    assert t[-1] - t[-2] <= 1.0
    # Charge and energy out of the cell, from the model.
    assert d["discharge_ah"][-1] == pytest.approx(-current * t_cut / 3600, rel=1e-9)
    assert np.all(d["charge_ah"] == 0.0)
    energy = -current * ((A + current * R0 + B * s0) * t_cut
                         + B * current * t_cut**2 / (2 * 3600 * Q)) / 3600
    assert d["discharge_wh"][-1] == pytest.approx(energy, rel=1e-9)
    assert ch.true_state.soc == pytest.approx(s0 + current * t_cut / (3600 * Q), abs=1e-9)


def test_rc_pairs_relax_exponentially_after_a_pulse():
    pairs = ((0.02, 10.0), (0.03, 200.0))
    s0, current, pulse_s = 0.5, 2.0, 60.0
    ch = channel(linear_cell(A, B, r0=R0, rc=pairs, capacity_ah=Q, initial_soc=s0))
    run(ch, ElectricalStep(Mode.CURRENT, current, duration_s=pulse_s))
    batches, end = run(ch, ElectricalStep(Mode.REST, duration_s=600.0),
                       logging=LoggingPolicy(period_s=2.0))
    assert end.kind is EndKind.TIME
    d = joined(batches)
    t = d["step_time_s"]
    s1 = s0 + current * pulse_s / (3600 * Q)
    v_end_of_pulse = [r * current * (1 - math.exp(-pulse_s / tau)) for r, tau in pairs]
    expected = A + B * s1 + sum(v * np.exp(-t / tau) for v, (_, tau) in zip(v_end_of_pulse, pairs, strict=True))
    np.testing.assert_allclose(d["voltage_v"], expected, rtol=0, atol=1e-9)
    assert t[-1] == 600.0 and np.all(d["current_a"] == 0)


def test_cv_hold_current_decays_exponentially_and_ends_at_its_cut_off():
    s0, v_hold, i_end = 0.3, 3.6, 0.1
    ch = channel(linear_cell(A, B, r0=R0, capacity_ah=Q, initial_soc=s0))
    step = ElectricalStep(Mode.VOLTAGE, v_hold, current_limit_a=10.0,
                          until=(EndCondition(Quantity.CURRENT, "<=", i_end, "C/20"),))
    batches, end = run(ch, step, logging=LoggingPolicy(period_s=5.0))
    d = joined(batches)
    t = d["step_time_s"]
    i0 = (v_hold - A - B * s0) / R0
    rate = B / (3600 * Q * R0)
    np.testing.assert_allclose(d["current_a"], i0 * np.exp(-rate * t), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(d["voltage_v"], v_hold)
    assert end.kind is EndKind.CONDITION and "fell to 0.1 A" in end.reason
    assert abs(t[-1] - math.log(i0 / i_end) / rate) <= 1e-3


def test_hold_above_its_current_limit_charges_at_the_limit_then_holds():
    s0, v_hold, limit = 0.2, 3.5, 1.0
    ch = channel(linear_cell(A, B, r0=R0, capacity_ah=Q, initial_soc=s0))
    step = ElectricalStep(Mode.VOLTAGE, v_hold, current_limit_a=limit, duration_s=4000.0)
    batches, end = run(ch, step, logging=LoggingPolicy(period_s=10.0))
    d = joined(batches)
    t, v, i = d["step_time_s"], d["voltage_v"], d["current_a"]
    # CC at the limit until A + B s + limit R0 reaches the hold voltage...
    t_switch = ((v_hold - limit * R0 - A) / B - s0) * 3600 * Q / limit
    cc = t < t_switch
    np.testing.assert_allclose(i[cc], limit)
    np.testing.assert_allclose(v[cc], A + B * (s0 + limit * t[cc] / (3600 * Q)) + limit * R0,
                               atol=1e-9)
    # ...then the hold, decaying from the limit.
    rate = B / (3600 * Q * R0)
    np.testing.assert_allclose(i[~cc], limit * np.exp(-rate * (t[~cc] - t_switch)), rtol=1e-7)
    np.testing.assert_allclose(v[~cc], v_hold, atol=1e-9)
    assert end.kind is EndKind.TIME and t[-1] == 4000.0
    assert d["charge_ah"][-1] == pytest.approx(
        limit * t_switch / 3600 + limit / rate * (1 - math.exp(-rate * (4000 - t_switch))) / 3600,
        rel=1e-7)


def test_constant_power_draws_the_power_at_every_sample():
    cell = make_cell(ocv=table([0, 0.2, 0.6, 1], [3.0, 3.5, 3.7, 4.1]), r0=0.06,
                     rc=((0.02, 20.0), (0.03, 600.0)), capacity_ah=Q, initial_soc=0.9)
    ch = channel(cell)
    power = -6.0
    step = ElectricalStep(Mode.POWER, power, current_limit_a=20.0, until=(v_until(3.3),))
    batches, end = run(ch, step, logging=LoggingPolicy(period_s=1.0))
    d = joined(batches)
    np.testing.assert_allclose(d["voltage_v"] * d["current_a"], power, rtol=1e-3)
    assert end.kind is EndKind.CONDITION and d["voltage_v"][-1] == pytest.approx(3.3, abs=1e-6)
    # Energy out equals power times time.
    assert d["discharge_wh"][-1] == pytest.approx(-power * d["step_time_s"][-1] / 3600, rel=1e-3)


def test_current_profile_is_followed_value_by_value():
    times, values = (0.0, 10.0, 25.5, 31.0), (1.0, -2.0, 0.5, 0.0)
    ch = channel(linear_cell(A, B, r0=R0, rc=((0.02, 5.0),), capacity_ah=Q))
    step = ElectricalStep(Mode.CURRENT_PROFILE, profile=Profile(times, values), duration_s=40.0)
    batches, end = run(ch, step, logging=LoggingPolicy(period_s=1.0))
    d = joined(batches)
    t = d["step_time_s"]
    in_force = np.asarray(values)[np.searchsorted(times, t, side="right") - 1]
    np.testing.assert_array_equal(d["current_a"][:-1], in_force[:-1])
    charge = 1.0 * 10.0 + 0.5 * 5.5  # Ah * 3600
    discharge = 2.0 * 15.5
    assert d["charge_ah"][-1] == pytest.approx(charge / 3600, rel=1e-12)
    assert d["discharge_ah"][-1] == pytest.approx(discharge / 3600, rel=1e-12)
    assert end.kind is EndKind.TIME and t[-1] == 40.0


def test_charge_condition_ends_at_the_exact_charge():
    ch = channel(linear_cell(A, B, r0=R0, capacity_ah=Q, initial_soc=0.2))
    step = ElectricalStep(Mode.CURRENT, 1.7,
                          until=(EndCondition(Quantity.CHARGE, ">=", 0.25, "0.25 Ah"),))
    batches, end = run(ch, step)
    d = joined(batches)
    assert end.kind is EndKind.CONDITION and "0.25 Ah" in end.reason
    assert abs(d["step_time_s"][-1] - 0.25 * 3600 / 1.7) <= 1e-3
    assert d["charge_ah"][-1] == pytest.approx(0.25, abs=1e-9)


def test_safety_limit_ends_the_step_at_the_crossing():
    s0, current, v_max = 0.5, 2.0, 3.7
    ch = channel(linear_cell(A, B, r0=R0, capacity_ah=Q, initial_soc=s0))
    step = ElectricalStep(Mode.CURRENT, current, until=(v_until(3.9, ">="),))
    batches, end = run(ch, step, limits=SafetyLimits(max_voltage_v=v_max))
    d = joined(batches)
    t_cross = ((v_max - A - current * R0) / B - s0) * 3600 * Q / current
    assert end.kind is EndKind.SAFETY
    assert end.reason.startswith("safety: voltage") and "3.7 V" in end.reason
    assert abs(d["step_time_s"][-1] - t_cross) <= 1e-3
    assert d["voltage_v"][-1] == pytest.approx(v_max, abs=1e-6)
    assert np.all(d["voltage_v"][:-1] <= v_max)


def test_a_step_that_already_meets_its_condition_ends_at_once():
    ch = channel(linear_cell(A, B, r0=R0, capacity_ah=Q, initial_soc=0.5))
    batches, end = run(ch, ElectricalStep(Mode.CURRENT, -1.0, until=(v_until(3.6),)))
    d = joined(batches)
    assert len(d["step_time_s"]) == 1 and d["step_time_s"][0] == 0.0
    assert end.kind is EndKind.CONDITION


def test_rest_without_an_end_is_stopped_by_the_maximum_step_time():
    ch = channel(linear_cell(A, B, capacity_ah=Q), max_step_s=7200.0)
    batches, end = run(ch, ElectricalStep(Mode.REST), logging=LoggingPolicy(period_s=60.0))
    assert end.kind is EndKind.LIMIT
    assert batches[-1].step_time_s[-1] == 7200.0
