"""Journal events read back exactly as the standard library's json writes them.

`encode_event` takes orjson's fast path where it can and json where orjson would differ
(NaN and infinities, integers beyond 64 bits, numpy values, non-string keys); the truth
here is `json.dumps` with the journal's settings, read back by `json.loads`.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import math
import uuid
from collections import OrderedDict

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from labctl.store import journal_format
from labctl.store.journal_format import encode_event


def _reference(event) -> bytes:
    return json.dumps(event, allow_nan=True, default=journal_format._json_default,
                      separators=(",", ":")).encode()


def _same(a, b) -> bool:
    """Equal trees, NaN equal to NaN (json reads NaN back as a float NaN)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


CASES = [
    {"type": "step_start", "step_index": 3, "path": "steps[0].steps[2]", "test_time_s": 10724.857126114292},
    {"type": "step_end", "result": {"max_temperature_c": math.nan, "end_voltage_v": 4.0999}},
    {"type": "x", "limits": [math.inf, -math.inf, 1e-05, 5e-324, -0.0]},
    {"type": "state", "rng": {"state": 139124414187891512378157257594292401401, "inc": 1}},
    {"type": "x", "big": 2**64, "small": -(2**63) - 1, "edge": 2**64 - 1},
    {"type": "x", "np": np.float64(2.5), "arr": np.array([1.0, np.nan]), "i": np.int32(7)},
    {"type": "x", 1: "int key", None: "none key"},
    {"type": "x", "text": "Rest at 25 °C — µA", "tuple": (1, 2.5, "a"), "set": {3}},
    {"type": "x", "none": None, "flag": True},
]


class _Plain(enum.Enum):
    CC = "cc"


class _Int(enum.IntEnum):
    TWO = 2


class _Str(str, enum.Enum):
    CV = "cv"


@dataclasses.dataclass
class _Point:
    x: float


class _Masked(dict):
    def items(self):  # json's encoder calls items(); orjson reads the dict itself
        return [("shown", 1)]


_moved = OrderedDict(a=1, b=2)
_moved.move_to_end("a")
# What an instrument plugin's get_state() may hold: orjson writes several of these its own
# way (a datetime with a "T", a dataclass as a dict), so they must go through json.
PLUGIN_STATES = [
    {"type": "state", "mode": _Plain.CC, "n": _Int.TWO, "s": _Str.CV},
    {"type": "state", "cal": datetime.datetime(2026, 1, 2, 3, 4), "day": datetime.date(2026, 1, 2)},
    {"type": "state", "p": _Point(1.5), "id": uuid.UUID(int=5)},
    {"type": "state", "masked": _Masked(hidden=2), "order": _moved},
]


def test_plugin_values_read_back_as_json_writes_them():
    for event in PLUGIN_STATES:
        for extra in ({}, {"nan": math.nan}):  # with and without a value orjson cannot write
            e = {**event, **extra}
            assert _same(json.loads(encode_event(e)), json.loads(_reference(e))), e


def test_cases_read_back_as_json_writes_them():
    for event in CASES:
        got = json.loads(encode_event(event))
        want = json.loads(_reference(event))
        assert _same(got, want), (event, got, want)


def test_nan_and_big_integers_survive():
    got = json.loads(encode_event({"type": "x", "v": math.nan, "n": 2**100}))
    assert math.isnan(got["v"]) and got["n"] == 2**100


def test_without_orjson_the_same(monkeypatch):
    monkeypatch.setattr(journal_format, "_orjson_dumps", None)
    for event in CASES:
        assert _same(json.loads(encode_event(event)), json.loads(_reference(event)))


_leaves = (st.none() | st.booleans() | st.integers(min_value=-(2**130), max_value=2**130)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8))
_trees = st.recursive(_leaves, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=6), _trees, max_size=5))
def test_any_json_tree(body):
    event = {**body, "type": "prop"}
    assert _same(json.loads(encode_event(event)), json.loads(_reference(event)))
