"""Simulated cycler channel behaviour: safety limits, noise and quantisation, state
snapshots, and the logging policy — against expectations computed in the test."""

from __future__ import annotations

import json
import math
import re

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
from labctl.procedures import parse_logging
from labctl.sim import SimCyclerChannel, SimWorld
from tests.sim.helpers import joined
from tests.sim.helpers import run as run_to_end

RANGES = CyclerRanges(max_current_a=50.0, max_voltage_v=10.0, min_voltage_v=0.0)
LIMITS = CellLimits(max_voltage_v=9.0, min_voltage_v=0.5, max_charge_current_a=40.0,
                    max_discharge_current_a=40.0, max_temperature_c=500.0, min_temperature_c=-200.0)
INERT = ThermalModel(heat_capacity_j_per_k=1e15, heat_transfer_w_per_k=1.0)
A, B, Q, R0 = 3.0, 1.0, 2.0, 0.05  # OCV = A + B s


def _cell(*, s0: float = 0.5, ocv: Table | None = None, rc=(), thermal: ThermalModel = INERT,
          ea: float = 0.0, q_ah: float = Q, r0: float = R0) -> CellSpec:
    ocv = ocv if ocv is not None else Table(np.array([0.0, 1.0]), np.array([A, A + B]))
    pairs = tuple(RCPair(Table.constant(r), Table.constant(tau)) for r, tau in rc)
    model = CellModel(ocv, Table.constant(r0), pairs, thermal, activation_energy_ev=ea,
                      initial_soc=s0, initial_temperature_c=25.0)
    return CellSpec("chan", "other", q_ah, 3.3, LIMITS, model)


def _channel(cell, clock=None, **kw) -> SimCyclerChannel:
    return SimCyclerChannel(SimWorld(clock or VirtualClock()), cell, ranges=RANGES, **kw)


def _run(ch, step, logging=None, limits=None):
    # The shared runner of tests/sim/helpers.py, with this file's return shape.
    batches, end = run_to_end(ch, step, limits=limits, logging=logging or LoggingPolicy(period_s=1.0))
    cols = joined(batches)
    return cols, end, batches


def _linear_v(s0: float, current: float, t: np.ndarray) -> np.ndarray:
    return A + B * (s0 + current * t / (3600 * Q)) + current * R0


# -- safety ----------------------------------------------------------------------------------


def test_voltage_safety_limit_ends_the_step_at_the_crossing():
    s0, current, v_max = 0.3, 2.0, 3.5
    ch = _channel(_cell(s0=s0))
    # No `until`: only the safety limit can end this charge.
    d, end, _ = _run(ch, ElectricalStep(Mode.CURRENT, current, duration_s=3600.0),
                     limits=SafetyLimits(max_voltage_v=v_max))
    t_cross = ((v_max - A - current * R0) / B - s0) * 3600 * Q / current
    assert 0 < t_cross < 3600
    assert end.kind is EndKind.SAFETY
    assert "voltage" in end.reason
    assert d["step_time_s"][-1] == pytest.approx(t_cross, abs=1e-3)
    assert d["voltage_v"][-1] == pytest.approx(v_max, abs=1e-6)
    assert np.all(d["voltage_v"][:-1] <= v_max)
    assert ch.output_on is False and ch.current_a == 0.0


def test_discharge_current_safety_limit_on_a_profile_jump():
    limit = 3.0
    profile = Profile((0.0, 12.0), (-1.0, -4.0))
    step = ElectricalStep(Mode.CURRENT_PROFILE, duration_s=60.0, profile=profile)
    d, end, _ = _run(_channel(_cell()), step, limits=SafetyLimits(max_discharge_current_a=limit))
    assert end.kind is EndKind.SAFETY
    assert "discharge current" in end.reason
    # The value the reason quotes is beyond the limit it names.
    quoted = float(re.search(r"discharge current ([-0-9.eE+]+) A", end.reason).group(1))
    assert quoted > limit, end.reason
    assert d["step_time_s"][-1] == pytest.approx(12.0, abs=1e-6)
    # The last sample is the crossing: the current in force from t = 12 s on.
    assert d["current_a"][-1] == -4.0
    assert np.all(d["current_a"][:-1] == -1.0)


@pytest.mark.parametrize("how", ["safety", "condition"])
def test_voltage_limit_crossed_by_a_current_jump(how):
    """A profile jump from -1 A to -4 A at t = 12 s drops the voltage by 3 A x R0 at once,
    through 3.40 V (a safety limit, or the step's own cut-off): the step ends at 12 s and
    its last sample shows the voltage under the new current (the crossing)."""
    v_min = 3.40
    profile = Profile((0.0, 12.0), (-1.0, -4.0))
    until = (EndCondition(Quantity.VOLTAGE, "<=", v_min, "3.4 V"),) if how == "condition" else ()
    step = ElectricalStep(Mode.CURRENT_PROFILE, duration_s=60.0, profile=profile, until=until)
    limits = SafetyLimits(min_voltage_v=v_min) if how == "safety" else None
    d, end, _ = _run(_channel(_cell(s0=0.5)), step, limits=limits)
    s12 = 0.5 - 1.0 * 12.0 / (3600 * Q)
    assert A + B * s12 - 1.0 * R0 > v_min > A + B * s12 - 4.0 * R0
    assert end.kind is (EndKind.SAFETY if how == "safety" else EndKind.CONDITION)
    assert d["step_time_s"][-1] == pytest.approx(12.0, abs=1e-6)
    assert d["current_a"][-1] == -4.0
    assert d["voltage_v"][-1] == pytest.approx(A + B * s12 - 4.0 * R0, abs=1e-9)
    assert d["voltage_v"][-1] <= v_min


def test_temperature_safety_limit_at_the_analytic_crossing():
    r0, c, h, current, t_amb, t_max = 0.05, 50.0, 0.5, -10.0, 25.0, 31.0
    tau, rise = c / h, current**2 * r0 / h  # 100 s, 10 K
    cell = _cell(q_ah=1000.0, r0=r0, thermal=ThermalModel(c, h),
                 ocv=Table(np.array([0.0, 1.0]), np.array([3.3, 3.3])))
    d, end, _ = _run(_channel(cell), ElectricalStep(Mode.CURRENT, current, duration_s=3000.0),
                     limits=SafetyLimits(max_temperature_c=t_max))
    t_cross = -tau * math.log(1.0 - (t_max - t_amb) / rise)
    assert end.kind is EndKind.SAFETY
    assert "temperature" in end.reason
    assert d["step_time_s"][-1] == pytest.approx(t_cross, abs=1e-3)
    assert d["temperature_c"][-1] == pytest.approx(t_max, abs=1e-6)


def test_condition_and_safety_together_the_earlier_one_wins():
    s0, current = 0.3, 2.0
    v_cond, v_safe = 3.45, 3.5
    step = ElectricalStep(Mode.CURRENT, current,
                          until=(EndCondition(Quantity.VOLTAGE, ">=", v_cond, "3.45 V"),))
    _, end, _ = _run(_channel(_cell(s0=s0)), step, limits=SafetyLimits(max_voltage_v=v_safe))
    assert end.kind is EndKind.CONDITION
    step2 = ElectricalStep(Mode.CURRENT, current,
                           until=(EndCondition(Quantity.VOLTAGE, ">=", 3.6, "3.6 V"),))
    _, end2, _ = _run(_channel(_cell(s0=s0)), step2, limits=SafetyLimits(max_voltage_v=v_safe))
    assert end2.kind is EndKind.SAFETY


# -- noise and resolution --------------------------------------------------------------------

NOISE = {"voltage_v": 0.002, "current_a": 0.001, "temperature_c": 0.1}


def _noisy_run(seed: int, noise=NOISE, resolution=None):
    ch = _channel(_cell(s0=0.5), noise=noise, resolution=resolution, seed=seed)
    d, _, _ = _run(ch, ElectricalStep(Mode.CURRENT, -1.0, duration_s=2000.0))
    return d


def test_same_seed_gives_identical_samples_other_seed_differs():
    one, two, other = _noisy_run(7), _noisy_run(7), _noisy_run(8)
    for key in ("step_time_s", "voltage_v", "current_a", "temperature_c"):
        np.testing.assert_array_equal(one[key], two[key])
    assert not np.array_equal(one["voltage_v"], other["voltage_v"])


def test_noise_statistics_match_sigma_and_true_values_drive_the_integrals():
    d = _noisy_run(3)
    t = d["step_time_s"]
    err_v = d["voltage_v"] - _linear_v(0.5, -1.0, t)
    err_i = d["current_a"] - (-1.0)
    n = len(t)
    assert n == 2001
    for err, sigma in ((err_v, NOISE["voltage_v"]), (err_i, NOISE["current_a"])):
        assert abs(err.mean()) < 4 * sigma / math.sqrt(n)
        assert err.std() == pytest.approx(sigma, rel=0.1)
    # Cumulative charge is the instrument's own integral of the true current.
    np.testing.assert_allclose(d["discharge_ah"], t / 3600.0, rtol=1e-9, atol=1e-12)


def test_zero_sigma_gives_exact_values():
    d = _noisy_run(5, noise={"voltage_v": 0.0, "current_a": 0.0, "temperature_c": 0.0})
    t = d["step_time_s"]
    np.testing.assert_allclose(d["voltage_v"], _linear_v(0.5, -1.0, t), rtol=0, atol=1e-9)
    assert np.all(d["current_a"] == -1.0)
    # The thermal mass is huge, not infinite: the cell warms by ~1e-13 K.
    np.testing.assert_allclose(d["temperature_c"], 25.0, rtol=0, atol=1e-9)
    clean = _noisy_run(6, noise=None)
    for key in d:
        np.testing.assert_array_equal(d[key], clean[key], err_msg=key)


@pytest.mark.parametrize("noise", [None, NOISE])
def test_resolution_quantises_to_multiples(noise):
    res = {"voltage_v": 0.001, "current_a": 0.0005, "temperature_c": 0.05}
    d = _noisy_run(11, noise=noise, resolution=res)
    t = d["step_time_s"]
    true = {"voltage_v": _linear_v(0.5, -1.0, t), "current_a": np.full(len(t), -1.0),
            "temperature_c": np.full(len(t), 25.0)}
    for key, step in res.items():
        k = d[key] / step
        np.testing.assert_allclose(k, np.round(k), rtol=0, atol=1e-6)
        if noise is None:  # rounding to the nearest multiple of the true value
            assert np.max(np.abs(d[key] - true[key])) <= 0.5 * step + 1e-12
    if noise is None:
        # Quantising a slowly falling voltage visits every level in between.
        levels = np.unique(np.round(d["voltage_v"] / res["voltage_v"]))
        span = (true["voltage_v"][0] - true["voltage_v"][-1]) / res["voltage_v"]
        assert len(levels) >= math.floor(span)


# -- state snapshot --------------------------------------------------------------------------


def _realistic_cell() -> CellSpec:
    ocv = Table(np.array([0.0, 0.1, 0.5, 0.9, 1.0]), np.array([2.9, 3.2, 3.35, 3.5, 3.9]))
    return _cell(s0=0.8, ocv=ocv, rc=((0.01, 20.0), (0.02, 500.0)),
                 thermal=ThermalModel(40.0, 0.1), ea=0.3)


def test_snapshot_restored_into_a_fresh_channel_continues_identically():
    noise = {"voltage_v": 0.001, "current_a": 0.0005, "temperature_c": 0.02}
    first = ElectricalStep(Mode.CURRENT, -3.0, duration_s=900.0)
    second = [ElectricalStep(Mode.CURRENT, 1.5, duration_s=400.0),
              ElectricalStep(Mode.REST, 0.0, duration_s=300.0)]
    a = _channel(_realistic_cell(), noise=noise, seed=42)
    _, _, batches = _run(a, first)
    snap = a.get_state()
    assert batches[-1].state == snap  # the last batch carries the same snapshot
    snap = json.loads(json.dumps(snap))  # it is plain JSON
    assert snap["temperature_c"] > 25.5  # the cell warmed: the snapshot must carry it
    assert any(abs(v) > 1e-3 for v in snap["v_rc"])

    b = _channel(_realistic_cell(), noise=noise, seed=999)  # another seed: the state wins
    b.set_state(snap)
    assert b.true_state == a.true_state
    for step in second:
        da, ea, _ = _run(a, step)
        db, eb, _ = _run(b, step)
        assert ea == eb
        for key in da:
            np.testing.assert_array_equal(da[key], db[key], err_msg=key)


def test_set_state_rejects_wrong_rc_count():
    from labctl.errors import LabctlError

    ch = _channel(_realistic_cell())
    state = ch.get_state()
    state["v_rc"] = [0.0]
    with pytest.raises(LabctlError):
        ch.set_state(state)


# -- logging ---------------------------------------------------------------------------------


def test_logging_every_10_s_plus_the_last_sample():
    s0, current, v_cut = 0.9, -2.0, 3.43
    step = ElectricalStep(Mode.CURRENT, current,
                          until=(EndCondition(Quantity.VOLTAGE, "<=", v_cut, "3.43 V"),))
    policy = parse_logging("every 10 s")
    assert policy == LoggingPolicy(period_s=10.0)
    d, end, _ = _run(_channel(_cell(s0=s0)), step, policy)
    t = d["step_time_s"]
    t_cut = ((v_cut - A - current * R0) / B - s0) * 3600 * Q / current
    assert t_cut % 10 > 0.5  # the cut-off does not fall on the grid
    assert end.kind is EndKind.CONDITION
    assert len(t) == math.floor(t_cut / 10) + 2
    np.testing.assert_allclose(t[:-1], 10.0 * np.arange(len(t) - 1), rtol=0, atol=1e-9)
    assert t[-1] == pytest.approx(t_cut, abs=1e-3)
    np.testing.assert_allclose(d["voltage_v"], _linear_v(s0, current, t), rtol=0, atol=1e-9)


def test_delta_v_rule_adds_samples_only_where_the_voltage_moves():
    """Rest (voltage still) then a discharge (voltage falling 1 mV every 3.6 s) logged every
    60 s or 5 mV: the rest gets only the 60 s grid, the discharge a sample whenever the
    voltage has moved 5 mV, so consecutive samples are never more than ~5 mV apart."""
    dv, period = 0.005, 60.0
    policy = parse_logging("every 60 s or 5 mV")
    assert (policy.period_s, policy.delta_v) == (period, dv)
    ch = _channel(_cell(s0=0.8))
    rest, _, _ = _run(ch, ElectricalStep(Mode.REST, 0.0, duration_s=600.0), policy)
    np.testing.assert_allclose(rest["step_time_s"], np.arange(0.0, 601.0, period), atol=1e-9)

    current, duration = -1.0, 900.0  # 1 mV per 7.2 s
    d, _, _ = _run(ch, ElectricalStep(Mode.CURRENT, current, duration_s=duration), policy)
    t, v = d["step_time_s"], d["voltage_v"]
    np.testing.assert_allclose(v, _linear_v(0.8, current, t), rtol=0, atol=1e-9)
    total_dv = abs(v[-1] - v[0])
    assert len(t) >= math.floor(total_dv / dv) + 1
    assert len(t) > duration / period + 2
    assert np.max(np.abs(np.diff(v))) <= dv * 1.05
    assert np.all(np.diff(t) <= period + 1e-9)
    # Every 60 s grid instant is still logged.
    for x in np.arange(0.0, duration + 1, period):
        assert np.min(np.abs(t - x)) < 1e-9
