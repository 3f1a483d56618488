"""Step and cycle tables against sums and closed forms computed here from synthetic data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from labctl.records import SAMPLE_COLUMNS, StepResult
from labctl.store.tables import CYCLE_COLUMNS, StepAccumulator, build_cycles, build_steps

CUMULATIVE = ("charge_capacity_ah", "discharge_capacity_ah", "charge_energy_wh",
              "discharge_energy_wh")


def _columns(t, v, i, temp, cum, step_index=1, cycle_index=1):
    n = len(t)
    out = {"test_time_s": np.asarray(t, float), "unix_time_s": 1.7e9 + np.asarray(t, float),
           "step_index": np.full(n, step_index, np.int32),
           "cycle_index": np.full(n, cycle_index, np.int32),
           "voltage_v": np.asarray(v, float), "current_a": np.asarray(i, float),
           "temperature_c": np.asarray(temp, float)}
    for name in CUMULATIVE:
        out[name] = np.asarray(cum[name], float)
    return out


def _ramp_step(rng, n=200):
    t0, t1 = 100.0, 1900.0
    inner = np.sort(rng.uniform(t0, t1, n - 2))
    t = np.concatenate([[t0], inner, [t1]])  # uneven sampling
    v0, dvdt = 3.2, 2.5e-4
    i0, didt = -1.0, -1e-4
    v, i = v0 + dvdt * (t - t0), i0 + didt * (t - t0)
    temp = 25.0 + 0.001 * (t - t0)
    temp[5] = np.nan  # a missing reading
    cum = {"charge_capacity_ah": np.full(n, 0.75),  # carried from earlier in the cycle
           "discharge_capacity_ah": 0.3 + np.cumsum(np.r_[0, np.diff(t)]) / 3600,
           "charge_energy_wh": np.full(n, 2.5),
           "discharge_energy_wh": 1.0 + np.cumsum(np.r_[0, np.diff(t)]) * 3.3 / 3600}
    return t, v, i, temp, cum, (t0, t1, v0, dvdt, i0, didt)


@pytest.mark.parametrize("cuts", [[], [1], [57, 58, 120], [199], [3, 3, 100]])
def test_step_accumulator_on_a_linear_ramp_fed_in_batches(cuts):
    rng = np.random.default_rng(len(cuts))
    t, v, i, temp, cum, (t0, t1, v0, dvdt, i0, didt) = _ramp_step(rng)
    cols = _columns(t, v, i, temp, cum, step_index=4, cycle_index=2)
    acc = StepAccumulator(4, 2, "discharge", "Discharge at 1 A", "steps[3]")
    edges = [0, *cuts, len(t)]
    for lo, hi in zip(edges, edges[1:], strict=False):
        acc.feed({k: c[lo:hi] for k, c in cols.items()})  # includes empty batches
    r = acc.result("condition", "reached 2.5 V")
    assert isinstance(r, StepResult)
    dur = t1 - t0
    # Time-weighted mean of a linear function: its value at the middle of the span.
    assert r.mean_voltage_v == pytest.approx(v0 + dvdt * dur / 2, rel=1e-12)
    assert r.mean_current_a == pytest.approx(i0 + didt * dur / 2, rel=1e-12)
    assert r.duration_s == pytest.approx(dur, rel=1e-15)
    assert (r.start_time_s, r.end_time_s) == (t0, t1)
    assert r.n_samples == len(t)
    for name in CUMULATIVE:
        assert getattr(r, name) == pytest.approx(cum[name][-1] - cum[name][0], abs=1e-12)
    assert r.charge_capacity_ah == 0.0
    assert r.discharge_capacity_ah == pytest.approx(dur / 3600, rel=1e-12)
    assert r.start_voltage_v == v[0] and r.end_voltage_v == v[-1]
    assert r.end_current_a == i[-1]
    assert r.max_temperature_c == np.nanmax(temp)
    assert r.end_temperature_c == temp[-1]
    assert (r.step_index, r.cycle_index, r.kind, r.end_kind) == (4, 2, "discharge", "condition")


def test_step_accumulator_long_step_matches_the_closed_form():
    # 50 000 samples in one batch: the trapezoid sums' length where numpy's dot product
    # would go to a multi-threaded BLAS; the means are still the ramp's midpoint values
    rng = np.random.default_rng(7)
    t, v, i, temp, cum, (t0, t1, v0, dvdt, i0, didt) = _ramp_step(rng, n=50_000)
    acc = StepAccumulator(1, 1, "discharge", "long", "steps[0]")
    acc.feed(_columns(t, v, i, temp, cum, step_index=1, cycle_index=1))
    r = acc.result("condition", "end")
    dur = t1 - t0
    assert r.mean_voltage_v == pytest.approx(v0 + dvdt * dur / 2, rel=1e-12)
    assert r.mean_current_a == pytest.approx(i0 + didt * dur / 2, rel=1e-12)
    assert r.n_samples == 50_000


def test_step_accumulator_single_sample_and_empty():
    acc = StepAccumulator(1, 1, "rest", "Rest", "steps[0]")
    acc.feed(_columns([5.0], [3.3], [0.0], [24.0], {n: [0.1] for n in CUMULATIVE}))
    r = acc.result("time", "time elapsed")
    assert r.n_samples == 1 and r.duration_s == 0.0
    assert r.mean_voltage_v == 3.3 and r.discharge_capacity_ah == 0.0
    empty = StepAccumulator(2, 1, "rest", "Rest", "steps[1]").result("aborted", "stop")
    assert empty.n_samples == 0 and math.isnan(empty.mean_voltage_v)


# -- cycles ----------------------------------------------------------------------------------


def _synthetic_run(rng):
    """Cycles of (charge at +I_c, rest, discharge at -I_d, rest), 1 s samples, the
    cumulative counters integrated here (reset at each cycle), V linear within a step."""
    plan = []  # (cycle, kind, current, duration, v_start, v_end)
    for cycle in (1, 2, 3):
        i_c = rng.uniform(0.8, 1.2)
        i_d = rng.uniform(0.8, 1.2)
        t_c = rng.integers(1500, 2500)
        t_d = rng.integers(1400, 2400)
        plan += [(cycle, "charge", i_c, t_c, 3.0, 3.6), (cycle, "rest", 0.0, 300, 3.5, 3.45),
                 (cycle, "discharge", -i_d, t_d, 3.4, 2.9), (cycle, "rest", 0.0, 300, 3.0, 3.1)]
    parts, events = [], []
    now = 0.0
    counters = dict.fromkeys(CUMULATIVE, 0.0)
    last_cycle = None
    for index, (cycle, kind, current, dur, va, vb) in enumerate(plan, start=1):
        if cycle != last_cycle:
            counters = dict.fromkeys(CUMULATIVE, 0.0)
            last_cycle = cycle
        t = now + np.arange(0, dur + 1, dtype=float)  # first sample at the previous end
        v = va + (vb - va) * (t - now) / dur
        dq = np.r_[0.0, np.diff(t)] * current / 3600  # current held over each interval
        de = dq * np.r_[v[0], 0.5 * (v[1:] + v[:-1])]
        cum = {"charge_capacity_ah": counters["charge_capacity_ah"] + np.cumsum(np.maximum(dq, 0)),
               "discharge_capacity_ah": counters["discharge_capacity_ah"]
               + np.cumsum(np.maximum(-dq, 0)),
               "charge_energy_wh": counters["charge_energy_wh"] + np.cumsum(np.maximum(de, 0)),
               "discharge_energy_wh": counters["discharge_energy_wh"]
               + np.cumsum(np.maximum(-de, 0))}
        counters = {k: float(c[-1]) for k, c in cum.items()}
        temp = 25.0 + index + np.zeros(len(t))
        parts.append(_columns(t, v, np.full(len(t), current), temp, cum, index, cycle))
        events.append({"type": "step_start", "step_index": index, "cycle_index": cycle,
                       "kind": kind, "text": f"{kind} {index}", "path": f"steps[{index}]"})
        now = t[-1]
    samples = {n: np.concatenate([p[n] for p in parts]) for n in SAMPLE_COLUMNS}
    return plan, events, samples


def test_build_cycles_efficiencies_from_directly_computed_sums():
    plan, events, samples = _synthetic_run(np.random.default_rng(7))
    steps = build_steps(events, samples)
    assert list(steps.step_index) == list(range(1, len(plan) + 1))
    cycles = build_cycles(steps, samples)
    assert list(cycles.columns) == CYCLE_COLUMNS
    assert list(cycles.cycle_index) == [1, 2, 3]
    for row in cycles.itertuples():
        mine = [p for p in plan if p[0] == row.cycle_index]
        q_in = sum(p[2] * p[3] for p in mine if p[2] > 0) / 3600
        q_out = sum(-p[2] * p[3] for p in mine if p[2] < 0) / 3600
        # Energy: I x mean V (linear V) x duration.
        e_in = sum(p[2] * 0.5 * (p[4] + p[5]) * p[3] for p in mine if p[2] > 0) / 3600
        e_out = sum(-p[2] * 0.5 * (p[4] + p[5]) * p[3] for p in mine if p[2] < 0) / 3600
        assert row.charge_capacity_ah == pytest.approx(q_in, rel=1e-9)
        assert row.discharge_capacity_ah == pytest.approx(q_out, rel=1e-9)
        assert row.coulombic_efficiency == pytest.approx(q_out / q_in, rel=1e-9)
        assert row.charge_energy_wh == pytest.approx(e_in, rel=1e-9)
        assert row.energy_efficiency == pytest.approx(e_out / e_in, rel=1e-9)
        charge = next(p for p in mine if p[1] == "charge")
        discharge = next(p for p in mine if p[1] == "discharge")
        assert row.mean_charge_voltage_v == pytest.approx(0.5 * (charge[4] + charge[5]), rel=1e-9)
        assert row.mean_discharge_voltage_v == pytest.approx(
            0.5 * (discharge[4] + discharge[5]), rel=1e-9)
        assert row.n_steps == 4
        first = 4 * (row.cycle_index - 1)
        assert row.max_temperature_c == 25.0 + first + 4
        assert row.start_time_s == sum(p[3] for p in plan[:first])
        assert row.end_time_s == sum(p[3] for p in plan[: first + 4])


def test_build_cycles_sums_recorded_step_results():
    """With step_end results recorded (a finished run), cycles sum those results."""
    rng = np.random.default_rng(8)
    events, expected = [], {}
    for k in range(1, 9):
        cycle = 1 + (k - 1) // 3
        ch, dis = float(rng.uniform(0, 2)), float(rng.uniform(0, 2))
        eh, ed = 3.5 * ch, 3.1 * dis
        result = StepResult(k, cycle, "x", "x", "p", "time", "", 10.0 * k, 10.0 * k + 9, 9.0, 10,
                            ch, dis, eh, ed, 3.0, 3.1, 3.05, 0.0, 0.0, 20.0 + k, 20.0)
        events.append({"type": "step_end", "result": result.as_dict()})
        s = expected.setdefault(cycle, [0.0, 0.0, 0.0, 0.0, 0])
        s[0] += ch
        s[1] += dis
        s[2] += eh
        s[3] += ed
        s[4] += 1
    empty = {n: np.empty(0, d) for n, d in SAMPLE_COLUMNS.items()}
    steps = build_steps(events, empty)
    cycles = build_cycles(steps, empty)
    assert list(cycles.cycle_index) == sorted(expected)
    for row in cycles.itertuples():
        ch, dis, eh, ed, n = expected[row.cycle_index]
        assert row.charge_capacity_ah == pytest.approx(ch, rel=1e-12)
        assert row.discharge_capacity_ah == pytest.approx(dis, rel=1e-12)
        assert row.coulombic_efficiency == pytest.approx(dis / ch, rel=1e-12)
        assert row.energy_efficiency == pytest.approx(ed / eh, rel=1e-12)
        assert row.n_steps == n
        assert math.isnan(row.mean_charge_voltage_v)  # no samples to average


def test_build_cycles_without_charge_has_nan_efficiency():
    result = StepResult(1, 1, "discharge", "d", "p", "time", "", 0.0, 10.0, 10.0, 11,
                        0.0, 0.5, 0.0, 1.6, 3.3, 3.0, 3.1, -1.0, -1.0, 25.0, 25.0)
    steps = pd.DataFrame([result.as_dict()])
    empty = {n: np.empty(0, d) for n, d in SAMPLE_COLUMNS.items()}
    cycles = build_cycles(steps, empty)
    assert math.isnan(cycles.coulombic_efficiency.iloc[0])
    assert cycles.discharge_capacity_ah.iloc[0] == 0.5
