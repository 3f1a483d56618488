"""The simulated cycler as an instrument: batches, logging, noise, state, closing early."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from labctl.capabilities import (
    CyclerChannel,
    ElectricalStep,
    EndCondition,
    EndKind,
    LoggingPolicy,
    Mode,
    Quantity,
    SafetyLimits,
)
from labctl.cells import load_cell
from labctl.clock import VirtualClock
from labctl.errors import InstrumentError, LabctlError
from labctl.sim.cycler import MAX_BATCH_INTERVALS
from tests.sim.helpers import channel, joined, linear_cell, run

NOISE = {"voltage_v": 0.002, "current_a": 0.01, "temperature_c": 0.1}


def nmc_channel(**kw):
    return channel(load_cell("nmc-1p95ah"), **kw)


CYCLE = (
    ElectricalStep(Mode.CURRENT, -1.95, until=(EndCondition(Quantity.VOLTAGE, "<=", 3.2),)),
    ElectricalStep(Mode.REST, duration_s=600.0),
    ElectricalStep(Mode.CURRENT, 1.95, until=(EndCondition(Quantity.VOLTAGE, ">=", 4.1),)),
    ElectricalStep(Mode.VOLTAGE, 4.1, current_limit_a=1.95,
                   until=(EndCondition(Quantity.CURRENT, "<=", 0.0975),)),
)


def test_it_is_a_cycler_channel_and_identifies_itself():
    ch = nmc_channel(name="ch3", seed=7)
    assert isinstance(ch, CyclerChannel)
    ident = ch.identify()
    assert ident["make"] == "labctl" and ident["model"] == "sim-cycler"
    assert "ch3" in ident["serial"] and ident["firmware"]


def test_batches_are_bounded_start_at_zero_and_carry_state():
    ch = channel(linear_cell(capacity_ah=100.0))
    batches, end = run(ch, ElectricalStep(Mode.CURRENT, 1.0, duration_s=20_000.0),
                       logging=LoggingPolicy(period_s=1.0))
    assert end.kind is EndKind.TIME
    assert len(batches) >= 5
    assert all(0 < len(b) <= MAX_BATCH_INTERVALS + 1 for b in batches)
    d = joined(batches)
    np.testing.assert_array_equal(d["step_time_s"], np.arange(20_001.0))
    assert all(b.state is not None and "soc" in b.state for b in batches)
    assert batches[-1].state["soc"] == pytest.approx(0.5 + 20_000 / 3600 / 100)
    assert ch.world.clock.now() == 20_000.0


def test_noise_is_seeded_absent_at_zero_and_of_the_asked_size():
    def data(seed, noise):
        ch = nmc_channel(seed=seed, noise=noise)
        return joined(run(ch, CYCLE[0], logging=LoggingPolicy(period_s=1.0))[0])

    a, b, c = data(1, NOISE), data(1, NOISE), data(2, NOISE)
    true = data(1, None)
    for key in ("voltage_v", "current_a", "temperature_c"):
        np.testing.assert_array_equal(a[key], b[key])
        assert not np.array_equal(a[key], c[key])
        residual = a[key] - true[key]
        assert np.std(residual) == pytest.approx(NOISE[key], rel=0.1)
    silent = data(5, {"voltage_v": 0.0})
    np.testing.assert_array_equal(silent["voltage_v"], true["voltage_v"])
    # End conditions are judged on the true values: same end time with or without noise.
    assert a["step_time_s"][-1] == true["step_time_s"][-1]


def test_noise_is_white_and_unbiased_within_and_across_batches():
    # Noise comes from stretches of a table picked per batch (labctl.sim.measure): it must
    # still look like independent draws, with no pattern repeated from batch to batch.
    ch = nmc_channel(seed=7, noise=NOISE)
    true_ch = nmc_channel(seed=7, noise=None)
    batches = [joined(run(c, s, logging=LoggingPolicy(period_s=1.0))[0]) for c in (ch, true_ch)
               for s in CYCLE]
    noisy, true = batches[:len(CYCLE)], batches[len(CYCLE):]
    for key in ("voltage_v", "current_a", "temperature_c"):
        parts = [a[key] - b[key] for a, b in zip(noisy, true, strict=True)]
        r = np.concatenate(parts) / NOISE[key]
        assert len(r) > 5000
        assert abs(np.mean(r)) < 4 / math.sqrt(len(r))  # unbiased (4 standard errors)
        assert np.std(r) == pytest.approx(1.0, rel=0.05)
        lag1 = np.corrcoef(r[:-1], r[1:])[0, 1]
        assert abs(lag1) < 4 / math.sqrt(len(r))  # white: no sample-to-sample correlation
        # Steps' noise sequences are not copies of one another (nor sign-flipped copies).
        n = min(len(p) for p in parts)
        for x in range(len(parts)):
            for y in range(x + 1, len(parts)):
                c = np.corrcoef(parts[x][:n], parts[y][:n])[0, 1]
                assert abs(c) < 0.2


def test_resolution_quantises_readings():
    ch = nmc_channel(resolution={"voltage_v": 0.001, "current_a": 0.01})
    d = joined(run(ch, CYCLE[0])[0])
    np.testing.assert_allclose(d["voltage_v"] / 0.001, np.round(d["voltage_v"] / 0.001), atol=1e-6)
    np.testing.assert_allclose(d["current_a"], -1.95)


def test_bad_noise_settings_are_refused():
    with pytest.raises(LabctlError, match="allowed"):
        nmc_channel(noise={"volts": 0.1})
    with pytest.raises(LabctlError, match=">= 0"):
        nmc_channel(noise={"voltage_v": -1})


def test_state_round_trip_continues_identically():
    first = nmc_channel(seed=3, noise=NOISE)
    run(first, CYCLE[0])
    state = json.loads(json.dumps(first.get_state()))  # what the journal keeps
    rest_of_cycle = [joined(run(first, s)[0]) for s in CYCLE[1:]]

    second = nmc_channel(seed=99, noise=NOISE)
    second.set_state(state)
    again = [joined(run(second, s)[0]) for s in CYCLE[1:]]
    for x, y in zip(rest_of_cycle, again, strict=True):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


def test_set_state_refuses_a_state_of_another_model():
    ch = nmc_channel()
    with pytest.raises(LabctlError, match="RC"):
        ch.set_state({"soc": 0.5, "v_rc": [0.0], "temperature_c": 25.0})


def test_closing_early_leaves_the_output_off_and_the_state_at_the_last_sample():
    ch = channel(linear_cell(capacity_ah=100.0), clock=VirtualClock(speed=1e6))
    gen = ch.run_step(ElectricalStep(Mode.CURRENT, 2.0, duration_s=36_000.0), SafetyLimits(),
                      LoggingPolicy(period_s=1.0))
    batch = next(gen)
    assert ch.output_on
    gen.close()
    assert not ch.output_on and ch.current_a == 0.0
    t_last = batch.step_time_s[-1]
    assert t_last < 36_000.0
    assert ch.true_state.soc == pytest.approx(0.5 + 2.0 * t_last / 3600 / 100)
    assert batch.state["soc"] == ch.true_state.soc


def test_paced_clock_keeps_batches_short():
    speed = 200.0
    ch = channel(linear_cell(capacity_ah=100.0), clock=VirtualClock(speed=speed))
    gen = ch.run_step(ElectricalStep(Mode.REST, duration_s=1e6), SafetyLimits(),
                      LoggingPolicy(period_s=1.0))
    spans = []
    for _ in range(3):
        b = next(gen)
        spans.append(b.step_time_s[-1] - b.step_time_s[0])
    gen.close()
    assert max(spans) <= 0.5 * speed


def test_delta_logging_adds_samples_where_the_voltage_moves():
    ch = channel(linear_cell(3.0, 1.0, r0=0.05, capacity_ah=1.0, initial_soc=0.1))
    dv = 0.01
    log = LoggingPolicy(period_s=600.0, delta_v=dv)
    batches, end = run(ch, ElectricalStep(Mode.CURRENT, 1.0, duration_s=1800.0), logging=log)
    d = joined(batches)
    v = d["voltage_v"]
    # 1C moves 0.5 V in 1800 s: about 50 level crossings on top of the 600 s samples.
    assert 50 <= len(v) <= 60
    assert np.max(np.diff(v)) <= dv + 1e-3
    assert {0.0, 600.0, 1200.0, 1800.0} <= set(d["step_time_s"].tolist())


def test_periodic_logging_and_a_partial_last_period():
    ch = channel(linear_cell(capacity_ah=10.0))
    batches, _ = run(ch, ElectricalStep(Mode.REST, duration_s=95.0),
                     logging=LoggingPolicy(period_s=10.0))
    np.testing.assert_array_equal(joined(batches)["step_time_s"],
                                  [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95])


def test_the_cell_relaxes_while_the_output_is_off_between_steps():
    tau = 50.0
    ch = channel(linear_cell(3.0, 1.0, r0=0.05, rc=((0.04, tau),), capacity_ah=2.0))
    run(ch, ElectricalStep(Mode.CURRENT, 2.0, duration_s=400.0))
    v_rc = ch.true_state.v_rc[0]
    ch.world.clock.sleep_until(ch.world.clock.now() + 100.0)  # the engine does something else
    first = run(ch, ElectricalStep(Mode.REST, duration_s=1.0))[0][0]
    soc = 0.5 + 2.0 * 400 / 3600 / 2.0
    assert first.voltage_v[0] == pytest.approx(3.0 + soc + v_rc * math.exp(-100 / tau), abs=1e-9)


def test_steps_the_channel_cannot_do_are_refused():
    ch = nmc_channel()
    with pytest.raises(InstrumentError, match="beyond"):
        run(ch, ElectricalStep(Mode.CURRENT, 500.0, duration_s=1.0))
    with pytest.raises(InstrumentError, match="outside"):
        run(ch, ElectricalStep(Mode.VOLTAGE, 50.0, duration_s=1.0))


def test_every_preset_charges_to_its_voltage_cut_off():
    for name in ("lfp-2p2ah", "nmc-1p95ah", "lto-1p8ah", "ssb-bulk"):
        cell = load_cell(name)
        ch = channel(cell, initial_soc=0.1)
        v_max = cell.limits.max_voltage_v
        step = ElectricalStep(Mode.CURRENT, cell.limits.max_charge_current_a,
                              until=(EndCondition(Quantity.VOLTAGE, ">=", v_max),))
        batches, end = run(ch, step, logging=LoggingPolicy(period_s=10.0))
        assert end.kind is EndKind.CONDITION, name
        assert batches[-1].voltage_v[-1] == pytest.approx(v_max, abs=1e-6), name
        assert 0.6 < ch.true_state.soc < 1.02, name
