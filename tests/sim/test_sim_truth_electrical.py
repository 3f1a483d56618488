"""The simulated cycler against closed forms derived here, independently of labctl.sim.

Every cell is built in the test with exact physics: a linear (or piecewise-linear)
OCV, a constant R0, RC pairs only where the test is about them, a thermal mass so
large the cell never warms (no temperature coupling), no noise.

Notation: OCV(s) = a + b s, Q in Ah, I in A (positive = charge), t in s.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from labctl.capabilities import (
    CyclerRanges,
    ElectricalStep,
    EndCondition,
    EndKind,
    LoggingPolicy,
    Mode,
    Profile,
    Quantity,
    SafetyLimits,
)
from labctl.cells.spec import CellLimits, CellModel, CellSpec, RCPair, Table, ThermalModel
from labctl.clock import VirtualClock
from labctl.procedures import parse_step
from labctl.sim import SimCyclerChannel, SimWorld
from tests.sim.helpers import joined
from tests.sim.helpers import run as run_to_end

INERT = ThermalModel(heat_capacity_j_per_k=1e15, heat_transfer_w_per_k=1.0)
RANGES = CyclerRanges(max_current_a=50.0, max_voltage_v=10.0, min_voltage_v=0.0)


def _cell(ocv: Table, *, r0: float, q_ah: float, s0: float, rc=(), charge_limit_a: float = 10.0,
          discharge_limit_a: float = 10.0) -> CellSpec:
    limits = CellLimits(max_voltage_v=9.0, min_voltage_v=0.5, max_charge_current_a=charge_limit_a,
                        max_discharge_current_a=discharge_limit_a, max_temperature_c=500.0,
                        min_temperature_c=-200.0)
    pairs = tuple(RCPair(Table.constant(r), Table.constant(tau)) for r, tau in rc)
    model = CellModel(ocv, Table.constant(r0), pairs, INERT, initial_soc=s0,
                      initial_temperature_c=25.0)
    return CellSpec("truth", "other", q_ah, 3.0, limits, model)


def _linear(a: float, b: float) -> Table:
    return Table(np.array([0.0, 1.0]), np.array([a, a + b]))


def _channel(cell: CellSpec, clock: VirtualClock | None = None) -> SimCyclerChannel:
    return SimCyclerChannel(SimWorld(clock or VirtualClock()), cell, ranges=RANGES)


def _run(ch: SimCyclerChannel, step: ElectricalStep, logging: LoggingPolicy | None = None,
         limits: SafetyLimits | None = None):
    # The shared runner of tests/sim/helpers.py, with this file's return shape.
    batches, end = run_to_end(ch, step, limits=limits, logging=logging or LoggingPolicy(period_s=1.0))
    cols = joined(batches)
    return cols, end


# -- constant current ------------------------------------------------------------------------


def test_cc_discharge_linear_ocv_every_sample_cut_off_time_and_charge():
    a, b, q, r0, s0 = 3.1, 0.9, 1.5, 0.04, 0.85
    current, v_cut = -2.0, 3.3
    ch = _channel(_cell(_linear(a, b), r0=r0, q_ah=q, s0=s0))
    step = ElectricalStep(Mode.CURRENT, current,
                          until=(EndCondition(Quantity.VOLTAGE, "<=", v_cut, "3.3 V"),))
    d, end = _run(ch, step)
    t = d["step_time_s"]

    expected_v = a + b * (s0 + current * t / (3600.0 * q)) + current * r0
    np.testing.assert_allclose(d["voltage_v"], expected_v, rtol=0, atol=1e-9)
    assert np.all(d["current_a"] == current)

    t_star = ((v_cut - a - current * r0) / b - s0) * 3600.0 * q / current
    assert 0 < t_star < 3600  # the set-up keeps SoC inside [0, 1]
    assert end.kind is EndKind.CONDITION
    assert end.condition_index == 0
    assert abs(t[-1] - t_star) <= 1e-3
    assert t[0] == 0.0
    # Every sample before the cut-off lies on the 1 s grid.
    np.testing.assert_allclose(t[:-1], np.arange(len(t) - 1, dtype=float), atol=1e-9)
    assert d["discharge_ah"][-1] == pytest.approx(abs(current) * t_star / 3600.0, rel=1e-6)
    assert np.all(d["charge_ah"] == 0.0)
    # Cumulative discharge at every sample is |I| t / 3600.
    np.testing.assert_allclose(d["discharge_ah"], abs(current) * t / 3600.0, rtol=1e-9, atol=1e-12)
    # Energy out: integral of |I| V dt with V linear in t.
    v0, v1 = expected_v[0], a + b * (s0 + current * t_star / (3600 * q)) + current * r0
    assert d["discharge_wh"][-1] == pytest.approx(abs(current) * 0.5 * (v0 + v1) * t_star / 3600,
                                                  rel=1e-6)
    assert ch.true_state.soc == pytest.approx(s0 + current * t_star / (3600 * q), abs=1e-9)


def test_cc_charge_ends_on_charge_moved_condition():
    a, b, q, r0, s0 = 3.0, 1.0, 2.0, 0.05, 0.2
    current, target_ah = 1.2, 0.3
    ch = _channel(_cell(_linear(a, b), r0=r0, q_ah=q, s0=s0))
    step = ElectricalStep(Mode.CURRENT, current,
                          until=(EndCondition(Quantity.CHARGE, ">=", target_ah, "0.3 Ah"),))
    d, end = _run(ch, step, LoggingPolicy(period_s=7.0))
    t_end = target_ah * 3600.0 / current
    assert end.kind is EndKind.CONDITION
    assert d["step_time_s"][-1] == pytest.approx(t_end, abs=1e-3)
    assert d["charge_ah"][-1] == pytest.approx(target_ah, rel=1e-6)
    assert np.all(d["discharge_ah"] == 0.0)


# -- RC relaxation ---------------------------------------------------------------------------


def test_rc_relaxation_after_a_pulse_follows_exponentials():
    ocv_v, r0, q = 3.3, 0.02, 2.0
    pairs = ((0.03, 40.0), (0.015, 400.0))
    current, t_pulse = -3.0, 30.0
    clock = VirtualClock()
    ch = _channel(_cell(Table(np.array([0.0, 1.0]), np.array([ocv_v, ocv_v])), r0=r0, q_ah=q,
                        s0=0.6, rc=pairs), clock)

    pulse, end = _run(ch, ElectricalStep(Mode.CURRENT, current, duration_s=t_pulse))
    assert end.kind is EndKind.TIME
    tp = pulse["step_time_s"]
    assert tp[-1] == pytest.approx(t_pulse, abs=1e-9)
    pulse_expected = ocv_v + current * r0 + sum(
        current * r * (1.0 - np.exp(-tp / tau)) for r, tau in pairs)
    np.testing.assert_allclose(pulse["voltage_v"], pulse_expected, rtol=0, atol=1e-9)

    rest, end = _run(ch, ElectricalStep(Mode.REST, 0.0, duration_s=600.0))
    assert end.kind is EndKind.TIME
    t = rest["step_time_s"]
    v0 = [current * r * (1.0 - math.exp(-t_pulse / tau)) for r, tau in pairs]
    expected = ocv_v + sum(v * np.exp(-t / tau) for v, (_, tau) in zip(v0, pairs, strict=True))
    np.testing.assert_allclose(rest["voltage_v"], expected, rtol=0, atol=1e-9)
    assert np.all(rest["current_a"] == 0.0)
    assert t[-1] == pytest.approx(600.0, abs=1e-9)
    assert clock.now() == pytest.approx(t_pulse + 600.0, abs=1e-9)


def test_rc_voltages_also_relax_while_output_is_off_between_steps():
    """Virtual time passing between two steps (the output off) relaxes the RC pair too."""
    ocv_v, r, tau = 3.3, 0.05, 100.0
    current, t_pulse, gap = -2.0, 50.0, 120.0
    clock = VirtualClock()
    ch = _channel(_cell(Table(np.array([0.0, 1.0]), np.array([ocv_v, ocv_v])), r0=0.01, q_ah=2.0,
                        s0=0.5, rc=((r, tau),)), clock)
    _run(ch, ElectricalStep(Mode.CURRENT, current, duration_s=t_pulse))
    clock.sleep_until(clock.now() + gap)
    rest, _ = _run(ch, ElectricalStep(Mode.REST, 0.0, duration_s=10.0))
    v_end_pulse = current * r * (1.0 - math.exp(-t_pulse / tau))
    expected = ocv_v + v_end_pulse * np.exp(-(gap + rest["step_time_s"]) / tau)
    np.testing.assert_allclose(rest["voltage_v"], expected, rtol=0, atol=1e-9)


# -- constant voltage ------------------------------------------------------------------------


def test_cv_hold_current_decays_exponentially_and_ends_at_c20():
    """Hold at V on OCV = a + b s with R0 only:  I = (V - a - b s) / R0 and
    ds/dt = I / (3600 Q)  =>  I(t) = I0 exp(-t / tau_h), tau_h = 3600 Q R0 / b.

    The OCV here is exactly linear, so the simulator's linear-ODE solution of a hold
    is exact (its linearisation error is zero); tolerances are round-off level:
    current to 1e-9 relative, end time to 1 ms.
    """
    a, b, q, r0, s0 = 3.0, 0.8, 2.0, 0.05, 0.5
    v_hold = 3.45
    cell = _cell(_linear(a, b), r0=r0, q_ah=q, s0=s0, charge_limit_a=5.0, discharge_limit_a=5.0)
    step = parse_step(f"Hold at {v_hold} V until C/20", cell=cell)
    assert step.mode is Mode.VOLTAGE
    i0 = (v_hold - a - b * s0) / r0
    assert 0 < i0 < step.current_limit_a  # the hold starts without current limiting
    i_end = q / 20.0
    tau_h = 3600.0 * q * r0 / b

    d, end = _run(_channel(cell), step)
    t = d["step_time_s"]
    np.testing.assert_allclose(d["current_a"], i0 * np.exp(-t / tau_h), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(d["voltage_v"], v_hold, rtol=0, atol=1e-12)
    assert end.kind is EndKind.CONDITION
    assert t[-1] == pytest.approx(math.log(i0 / i_end) * tau_h, abs=1e-3)
    assert d["current_a"][-1] == pytest.approx(i_end, rel=1e-6)
    # Charge moved: integral of I0 e^(-t/tau) = (I0 - I_end) tau.
    assert d["charge_ah"][-1] == pytest.approx((i0 - i_end) * tau_h / 3600.0, rel=1e-6)


def test_cv_hold_across_an_ocv_breakpoint_piecewise_exponential():
    """OCV piecewise linear: slope b1 below s_k, b2 above. The current decays with
    rate b1 / (3600 Q R0) until the SoC reaches s_k, then with b2 (the current is
    continuous there). Closed form per segment; end time from both.
    """
    q, r0, s0, s_k = 2.0, 0.04, 0.30, 0.32
    a1, b1, b2 = 3.0, 1.0, 3.0
    ocv_k = a1 + b1 * s_k
    ocv = Table(np.array([0.0, s_k, 1.0]), np.array([a1, ocv_k, ocv_k + b2 * (1.0 - s_k)]))
    v_hold = 3.40
    cell = _cell(ocv, r0=r0, q_ah=q, s0=s0, charge_limit_a=5.0, discharge_limit_a=5.0)
    step = parse_step(f"Hold at {v_hold} V until C/20", cell=cell)
    i0 = (v_hold - a1 - b1 * s0) / r0
    assert i0 < step.current_limit_a
    i_k = (v_hold - ocv_k) / r0
    tau1, tau2 = 3600 * q * r0 / b1, 3600 * q * r0 / b2
    t_k = tau1 * math.log(i0 / i_k)
    i_end = q / 20
    assert i_k > i_end
    t_end = t_k + tau2 * math.log(i_k / i_end)

    d, end = _run(_channel(cell), step)
    t = d["step_time_s"]
    expected = np.where(t <= t_k, i0 * np.exp(-t / tau1), i_k * np.exp(-(t - t_k) / tau2))
    np.testing.assert_allclose(d["current_a"], expected, rtol=1e-7)
    assert end.kind is EndKind.CONDITION
    assert t[-1] == pytest.approx(t_end, abs=1e-3)


def test_cc_then_cv_hand_over_when_the_hold_needs_more_than_the_limit():
    a, b, q, r0, s0 = 3.0, 0.8, 2.0, 0.05, 0.4
    v_hold, limit = 3.45, 0.5
    cell = _cell(_linear(a, b), r0=r0, q_ah=q, s0=s0)
    step = replace(parse_step(f"Hold at {v_hold} V until C/20", cell=cell), current_limit_a=limit)
    assert (v_hold - a - b * s0) / r0 > limit  # an unlimited hold would draw more
    # CC at the limit until OCV + I R0 reaches the set-point...
    t_sw = ((v_hold - a - limit * r0) / b - s0) * 3600 * q / limit
    # ... then the hold: I = limit * exp(-(t - t_sw) / tau_h).
    tau_h = 3600 * q * r0 / b
    i_end = q / 20
    t_end = t_sw + tau_h * math.log(limit / i_end)

    d, end = _run(_channel(cell), step)
    t, v, i = d["step_time_s"], d["voltage_v"], d["current_a"]
    cc = t < t_sw - 1e-6
    cv = t > t_sw + 1e-6
    assert cc.sum() > 100 and cv.sum() > 100
    np.testing.assert_allclose(i[cc], limit, rtol=0, atol=1e-12)
    np.testing.assert_allclose(v[cc], a + b * (s0 + limit * t[cc] / (3600 * q)) + limit * r0,
                               rtol=0, atol=1e-9)
    np.testing.assert_allclose(v[cv], v_hold, rtol=0, atol=1e-9)
    np.testing.assert_allclose(i[cv], limit * np.exp(-(t[cv] - t_sw) / tau_h), rtol=1e-7)
    assert np.all(v <= v_hold + 1e-9)
    assert np.all(i <= limit + 1e-12)
    assert end.kind is EndKind.CONDITION
    assert t[-1] == pytest.approx(t_end, abs=1e-3)


# -- constant power --------------------------------------------------------------------------


def test_cp_discharge_draws_the_power_at_every_sample():
    # A curved OCV and an RC pair: the current must keep changing to hold the power.
    ocv = Table(np.array([0.0, 0.3, 0.6, 1.0]), np.array([3.0, 3.4, 3.6, 4.0]))
    cell = _cell(ocv, r0=0.03, q_ah=1.0, s0=0.7, rc=((0.02, 60.0),))
    step = parse_step("Discharge at 5 W for 10 minutes", cell=cell)
    assert step.mode is Mode.POWER and step.value == -5.0
    d, end = _run(_channel(cell), step)
    t, v, i = d["step_time_s"], d["voltage_v"], d["current_a"]
    assert end.kind is EndKind.TIME
    assert t[-1] == pytest.approx(600.0, abs=1e-9)
    np.testing.assert_allclose(v * i, -5.0, rtol=1e-3)
    assert np.ptp(i) > 0.01  # the current really did change
    # Energy out of the cell: 5 W for 600 s.
    assert d["discharge_wh"][-1] == pytest.approx(5.0 * 600.0 / 3600.0, rel=1e-3)
    # Charge out: the logged current integrated (1 s samples of a smooth current).
    q_trap = float(np.sum(0.5 * (np.abs(i[1:]) + np.abs(i[:-1])) * np.diff(t))) / 3600
    assert d["discharge_ah"][-1] == pytest.approx(q_trap, rel=1e-3)


# -- current profile -------------------------------------------------------------------------


def test_current_profile_logs_the_value_in_force_and_moves_the_right_charge():
    a, b, q, r0, s0 = 3.2, 0.5, 2.0, 0.05, 0.5
    times = (0.0, 7.5, 20.0, 26.0, 41.25)
    values = (-1.0, 0.5, -2.0, 0.0, 1.5)
    end_time = 50.0
    # The last value holds until the step's duration.
    step = ElectricalStep(Mode.CURRENT_PROFILE, duration_s=end_time,
                          profile=Profile(times, values, "test"))
    ch = _channel(_cell(_linear(a, b), r0=r0, q_ah=q, s0=s0))
    d, end = _run(ch, step)
    t, i = d["step_time_s"], d["current_a"]
    assert end.kind is EndKind.TIME
    assert t[-1] == pytest.approx(end_time, abs=1e-9)

    def in_force(x: float) -> float:
        value = values[0]
        for tk, vk in zip(times, values, strict=True):
            if tk <= x + 1e-9:
                value = vk
        return value

    expected_i = np.array([in_force(x) for x in t])
    np.testing.assert_array_equal(i, expected_i)

    # Charge in / out from the profile itself (piecewise constant).
    bounds = [*times, end_time]
    q_in = sum(max(v, 0.0) * (bounds[k + 1] - bounds[k]) for k, v in enumerate(values)) / 3600
    q_out = sum(max(-v, 0.0) * (bounds[k + 1] - bounds[k]) for k, v in enumerate(values)) / 3600
    assert d["charge_ah"][-1] == pytest.approx(q_in, rel=1e-9)
    assert d["discharge_ah"][-1] == pytest.approx(q_out, rel=1e-9)

    # Voltage: OCV at the SoC reached + I R0, SoC from the integral of the profile.
    def soc_at(x: float) -> float:
        s = s0
        for k, v in enumerate(values):
            lo, hi = bounds[k], bounds[k + 1]
            s += v * max(0.0, min(x, hi) - lo) / (3600 * q)
        return s

    expected_v = np.array([a + b * soc_at(x) for x in t]) + expected_i * r0
    np.testing.assert_allclose(d["voltage_v"], expected_v, rtol=0, atol=1e-9)
