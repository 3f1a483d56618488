"""The cycles table's mean charge/discharge voltages (`summaries._CycleMeans`) against a
plain per-interval loop over the definition, fed in uneven pieces as the live tables
and finalize feed it (row groups), with rests, cycle changes, noise and NaN times."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labctl.store.summaries import _CycleMeans


def _truth(t, v, qc, qd, cyc) -> dict[int, list[float]]:
    """The definition, interval by interval: an interval counts as charging (discharging)
    when the cycle's charge (discharge) counter grows over it and both ends share a cycle."""
    sums: dict[int, list[float]] = {}
    for j in range(len(t) - 1):
        if cyc[j] != cyc[j + 1]:
            continue
        dt = t[j + 1] - t[j]
        vdt = 0.5 * (v[j] + v[j + 1]) * dt
        s = sums.setdefault(int(cyc[j]), [0.0, 0.0, 0.0, 0.0])
        if qc[j + 1] > qc[j]:
            s[0] += dt
            s[1] += vdt
        if qd[j + 1] > qd[j]:
            s[2] += dt
            s[3] += vdt
    return sums


def _cycling(rng: np.random.Generator, n_cycles: int):
    """Charge, rest, discharge, rest per cycle, 1 s apart, counters cumulative in a cycle."""
    t, v, qc, qd, cyc = [], [], [], [], []
    now = 0.0
    for c in range(1, n_cycles + 1):
        c_ah = d_ah = 0.0
        for kind, n in (("charge", rng.integers(50, 400)), ("rest", 30),
                        ("discharge", rng.integers(50, 400)), ("rest", 30)):
            for _ in range(n):
                now += 1.0
                if kind == "charge":
                    c_ah += 0.5 / 3600
                elif kind == "discharge":
                    d_ah += 0.5 / 3600
                t.append(now)
                v.append(3.7 + 0.3 * rng.standard_normal())
                qc.append(c_ah)
                qd.append(d_ah)
                cyc.append(c)
    return (np.array(t), np.array(v), np.array(qc), np.array(qd),
            np.array(cyc, dtype=np.int32))


def _feed_in_pieces(cols, cuts) -> _CycleMeans:
    means = _CycleMeans()
    names = ("test_time_s", "voltage_v", "charge_capacity_ah", "discharge_capacity_ah",
             "cycle_index")
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        means.feed({name: col[lo:hi] for name, col in zip(names, cols, strict=True)})
    return means


@pytest.mark.parametrize("piece", [1, 2, 37, 1000, 10**6])
def test_cycle_sums_equal_the_interval_by_interval_definition(piece):
    rng = np.random.default_rng(5)
    cols = _cycling(rng, 12)
    n = len(cols[0])
    cuts = list(range(0, n, piece)) + [n]
    means = _feed_in_pieces(cols, cuts)
    truth = _truth(*cols)
    assert sorted(means.sums) == sorted(truth) == list(range(1, 13))
    for cycle, expected in truth.items():
        assert means.sums[cycle] == pytest.approx(expected, rel=1e-12)
        charge, discharge = means.means(cycle)
        assert 3.5 < charge < 3.9 and 3.5 < discharge < 3.9


def test_uneven_pieces_give_the_same_sums_as_one_piece():
    rng = np.random.default_rng(8)
    cols = _cycling(rng, 5)
    n = len(cols[0])
    whole = _feed_in_pieces(cols, [0, n])
    cuts = sorted({0, n, *rng.integers(1, n, size=40).tolist()})
    pieces = _feed_in_pieces(cols, cuts)
    for cycle in whole.sums:
        assert pieces.sums[cycle] == pytest.approx(whole.sums[cycle], rel=1e-12)


def test_a_nan_time_or_voltage_counts_as_the_definition_says():
    """A NaN time makes its two intervals NaN: where they count, the sum is NaN (as
    the definition's sum is); where the counters do not grow they add nothing."""
    rng = np.random.default_rng(3)
    t, v, qc, qd, cyc = _cycling(rng, 3)
    rest = int(np.flatnonzero((np.diff(qc) == 0) & (np.diff(qd) == 0) & (cyc[1:] == 1))[5]) + 1
    t = t.copy()
    t[rest] = math.nan  # inside a rest of cycle 1: no counter grows around it
    v = v.copy()
    last_charge = int(np.flatnonzero((np.diff(qc) > 0) & (cyc[1:] == 2))[10])
    v[last_charge] = math.nan  # inside cycle 2's charge
    means = _feed_in_pieces((t, v, qc, qd, cyc), [0, len(t)])
    truth = _truth(t, v, qc, qd, cyc)
    assert means.sums[1] == pytest.approx(truth[1], rel=1e-12)
    assert all(math.isfinite(x) for x in means.sums[1])
    assert math.isnan(means.sums[2][1]) and math.isnan(truth[2][1])
    assert means.sums[2][0] == pytest.approx(truth[2][0], rel=1e-12)
    assert means.sums[3] == pytest.approx(truth[3], rel=1e-12)


def test_an_interval_across_a_cycle_change_counts_for_neither_cycle():
    """Cycle 1 only discharges, cycle 2 starts charging: the interval between them has a
    growing charge counter (0 -> first charge) but spans two cycles."""
    t = np.arange(8.0)
    v = np.array([3.9, 3.8, 3.7, 3.6, 3.5, 3.6, 3.7, 3.8])
    qc = np.array([0.0, 0.0, 0.0, 0.0, 0.1, 0.2, 0.3, 0.4])
    qd = np.array([0.0, 0.1, 0.2, 0.3, 0.0, 0.0, 0.0, 0.0])
    cyc = np.array([1, 1, 1, 1, 2, 2, 2, 2], dtype=np.int32)
    for cuts in ([0, 8], [0, 4, 8], [0, 3, 5, 8]):
        means = _feed_in_pieces((t, v, qc, qd, cyc), cuts)
        assert means.sums == _truth(t, v, qc, qd, cyc)
        assert means.sums[1][:2] == [0.0, 0.0]  # no charging in cycle 1
        assert means.sums[2][0] == 3.0  # cycle 2 charges over its own 3 intervals
