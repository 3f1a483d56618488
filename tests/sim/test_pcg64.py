"""The simulators' PCG64 in Python against numpy's own generator, the independent truth."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

from labctl.sim.pcg64 import PCG64, default_rng
from labctl.sim.snapshots import rng_decoded, rng_snapshot

# Seeds of one 32-bit word, of several (a pool word mixed in after the first four), zero.
SEEDS = [0, 1, 3, 7, 12345, 2**32 - 1, 2**32, 2**64 + 3, 2**100 + 17, 2**160 + 9, 0x1ABC71]


@pytest.mark.parametrize("seed", SEEDS)
def test_seeding_and_the_raw_stream_are_numpys(seed):
    ours, theirs = default_rng(seed), np.random.default_rng(seed)
    assert ours.bit_generator.state == theirs.bit_generator.state
    assert ours.bit_generator.random_raw(2000) == theirs.bit_generator.random_raw(2000).tolist()
    assert ours.bit_generator.state == theirs.bit_generator.state


@pytest.mark.parametrize("seed", [1, 2**70 + 5])
def test_normal_draws_come_from_the_same_stream_and_leave_it_in_step(seed):
    ours, theirs = default_rng(seed), np.random.default_rng(seed)
    for _ in range(3):
        assert np.array_equal(ours.normal(0.0, 2.0, 7), theirs.normal(0.0, 2.0, 7))
        assert float(ours.normal(0.1, 0.5)) == float(theirs.normal(0.1, 0.5))
        a = ours.standard_normal((3, 5), dtype=np.float32)
        b = theirs.standard_normal((3, 5), dtype=np.float32)
        assert a.dtype == np.float32 and np.array_equal(a, b)
        assert ours.bit_generator.random_raw(3) == theirs.bit_generator.random_raw(3).tolist()
    assert ours.bit_generator.state == theirs.bit_generator.state


def test_snapshots_move_between_this_generator_and_numpys():
    ours, theirs = default_rng(5), np.random.default_rng(99)
    ours.bit_generator.random_raw(17)
    theirs.bit_generator.state = rng_decoded(theirs, rng_snapshot(ours))  # ours -> numpy
    assert theirs.bit_generator.random_raw(5).tolist() == ours.bit_generator.random_raw(5)
    other = np.random.default_rng(31)
    other.normal(size=3)
    ours.bit_generator.state = rng_decoded(ours, rng_snapshot(other))  # numpy -> ours
    assert ours.bit_generator.random_raw(5) == other.bit_generator.random_raw(5).tolist()


_BAD = [
    "not a dict", None, {"bit_generator": "MT19937"},
    {"bit_generator": "PCG64", "state": {"state": 1}, "has_uint32": 0, "uinteger": 0},
    {"bit_generator": "PCG64", "state": {"state": 1, "inc": 1}, "has_uint32": 0},
]
# numpy raises OverflowError for these (which rng_decoded once let through) or truncates a
# float: refused here as a damaged snapshot.
_OUT_OF_RANGE = [
    {"bit_generator": "PCG64", "state": {"state": -1, "inc": 1}, "has_uint32": 0, "uinteger": 0},
    {"bit_generator": "PCG64", "state": {"state": 2**128, "inc": 1}, "has_uint32": 0,
     "uinteger": 0},
    {"bit_generator": "PCG64", "state": {"state": 1.5, "inc": 1}, "has_uint32": 0, "uinteger": 0},
    {"bit_generator": "PCG64", "state": {"state": 1, "inc": 1}, "has_uint32": 2**31,
     "uinteger": 0},  # numpy keeps has_uint32 in a C int
]


@pytest.mark.parametrize("bad", _BAD + _OUT_OF_RANGE)
def test_a_damaged_state_is_refused_and_changes_nothing(bad):
    rng = PCG64(4)
    before = rng.state
    with pytest.raises((TypeError, ValueError, KeyError)):
        rng.state = bad
    assert rng.state == before
    with pytest.raises(ValueError):
        rng_decoded(default_rng(4), bad)
    if bad in _BAD:  # numpy refuses it too
        with pytest.raises((TypeError, ValueError, KeyError)):
            np.random.PCG64(4).state = bad


def test_a_state_numpy_takes_is_taken_and_draws_as_numpys_does():
    saved = {"bit_generator": "PCG64", "state": {"state": 12345, "inc": 678 * 2 + 1},
             "has_uint32": -1, "uinteger": 7}
    ours, theirs = default_rng(0), np.random.default_rng(0)
    ours.bit_generator.state = saved
    theirs.bit_generator.state = saved
    assert ours.bit_generator.state == theirs.bit_generator.state
    assert float(ours.normal()) == float(theirs.normal())
    assert ours.bit_generator.random_raw(4) == theirs.bit_generator.random_raw(4).tolist()


def test_threads_sharing_a_generator_never_get_the_same_draw():
    """A chamber shared by several channels' threads draws from one generator."""
    rng = default_rng(11)
    draws: list[int] = []

    def worker() -> None:
        for _ in range(300):
            draws.extend(rng.bit_generator.random_raw(2))
            rng.normal(size=2)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch mid-draw, not only between draws
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert len(set(draws)) == len(draws) == 4 * 300 * 2
    # Every draw of the stream up to where it now stands was handed out exactly once:
    # 2,400 raw draws and 2,400 normal draws (each of these takes at least one raw draw).
    replay = default_rng(11).bit_generator.random_raw(20_000)
    assert set(draws) <= set(replay)


def test_a_meter_reads_the_same_with_numpys_generator_as_with_this_one():
    """Meter takes either: numpy's raw draws are np.uint64, whose products would wrap."""
    from labctl.sim.measure import Meter

    noise = {"voltage_v": 0.001, "current_a": 0.002, "temperature_c": 0.1}
    ours = Meter(noise, None, default_rng(3))
    theirs = Meter(noise, None, np.random.default_rng(3))
    v, i, t = np.full(50, 3.7), np.full(50, -1.0), np.full(50, 25.0)
    first = ours.read_all(v, i, t)
    for a, b in zip(first, theirs.read_all(v, i, t), strict=True):
        assert np.array_equal(a, b)
    second = ours.read_all(v, i, t)
    for a, b in zip(second, theirs.read_all(v, i, t), strict=True):
        assert np.array_equal(a, b)
    assert not np.array_equal(first[0], second[0])  # each batch its own stretch of noise
