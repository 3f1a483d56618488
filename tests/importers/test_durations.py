"""Test-time texts ("[Nd ]h:mm:ss[.ff]") to seconds: the fast CSV-based path and the
regular-expression path agree with hand-computed values, and odd values still get a
message naming the record."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from labctl.errors import LabctlError
from labctl.importers.textio import _durations_by_csv, parse_duration_s

CASES = [  # texts, seconds
    (["  0d 00:00:0", "0d 00:00:10.00", "1d 02:03:04.5 "], [0.0, 10.0, 93784.5]),
    (["00:00:01", "123:04:05"], [1.0, 123 * 3600 + 4 * 60 + 5.0]),
    (["1:05", "59:59.25"], [65.0, 3599.25]),
    (["12.5", "3"], [12.5, 3.0]),
]


@pytest.mark.parametrize("texts,seconds", CASES)
def test_fast_path_gives_the_seconds(texts, seconds):
    col = pa.chunked_array([pa.array(texts[:1]), pa.array(texts[1:])])  # two chunks
    fast = _durations_by_csv(col)
    assert fast is not None
    np.testing.assert_allclose(fast, seconds, rtol=0, atol=1e-9)
    np.testing.assert_allclose(parse_duration_s(col, "f.txt", "maccor", "TestTime"), seconds,
                               rtol=0, atol=1e-9)


@pytest.mark.parametrize("texts,seconds", [
    (["1.02:03:04", "0.00:00:01"], [93784.0, 1.0]),  # days then '.': regex path
    (["0d 00:00:01", "00:00:02"], [1.0, 2.0]),  # fields differ between records
])
def test_mixed_layouts_fall_back_to_the_regex(texts, seconds):
    col = pa.chunked_array([pa.array(texts)])
    assert _durations_by_csv(col) is None
    np.testing.assert_allclose(parse_duration_s(col, "f.txt", "maccor", "TestTime"), seconds)


def test_a_bad_value_is_named():
    col = pa.chunked_array([pa.array(["00:00:01", "00:0x:02"])])
    assert _durations_by_csv(col) is None
    with pytest.raises(LabctlError, match=r"f\.txt: data record 2, column TestTime.*0x"):
        parse_duration_s(col, "f.txt", "maccor", "TestTime")
