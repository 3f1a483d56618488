"""The simulators' PCG64 in Python against numpy's own generator, the independent truth."""

from __future__ import annotations

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
