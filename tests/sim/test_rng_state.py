"""Noise generator snapshots: portable JSON, and the generator continues exactly."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from labctl.sim import rng_state


@pytest.mark.parametrize("form", ["new", "old"])
def test_a_restored_generator_draws_what_the_original_would(form):
    rng = np.random.default_rng(20261206)
    rng.standard_normal(17)  # somewhere inside the stream
    saved = rng_state.snapshot(rng)
    if form == "old":  # journals written before: the integers themselves
        saved["state"] = {k: int(v) for k, v in saved["state"].items()}
    saved = json.loads(json.dumps(saved))  # as read back from the journal
    expected = rng.standard_normal(50)
    other = np.random.default_rng(1)
    rng_state.restore(other, saved)
    assert np.array_equal(other.standard_normal(50), expected)


def test_snapshot_is_json_any_reader_takes():
    rng = np.random.default_rng(7)
    saved = rng_state.snapshot(rng)
    inner = saved["state"]
    assert all(isinstance(v, str) for v in inner.values())
    assert int(inner["state"]) == rng.bit_generator.state["state"]["state"]
    # orjson (the journal's fast encoder) refuses integers beyond 64 bits
    assert json.loads(orjson.dumps(saved)) == json.loads(json.dumps(saved))
