"""Simulated instruments' resume snapshots: portable JSON, the noise generator continues
exactly, and a snapshot this labctl cannot read is refused before anything changes."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import orjson
import pytest

from labctl.errors import LabctlError
from labctl.sim.snapshots import check_version, rng_decoded, rng_snapshot


@pytest.mark.parametrize("form", ["new", "old"])
def test_a_restored_generator_draws_what_the_original_would(form):
    rng = np.random.default_rng(20261206)
    rng.standard_normal(17)  # somewhere inside the stream
    saved = rng_snapshot(rng)
    if form == "old":  # journals written before: the integers themselves
        saved["state"] = {k: int(v) for k, v in saved["state"].items()}
    saved = json.loads(json.dumps(saved))  # as read back from the journal
    expected = rng.standard_normal(50)
    other = np.random.default_rng(1)
    other.bit_generator.state = rng_decoded(other, saved)
    assert np.array_equal(other.standard_normal(50), expected)


def test_snapshot_is_json_any_reader_takes():
    rng = np.random.default_rng(7)
    saved = rng_snapshot(rng)
    inner = saved["state"]
    assert all(isinstance(v, str) for v in inner.values())
    assert int(inner["state"]) == rng.bit_generator.state["state"]["state"]
    # orjson (the journal's fast encoder) refuses integers beyond 64 bits
    assert json.loads(orjson.dumps(saved)) == json.loads(json.dumps(saved))


@pytest.mark.parametrize("bad", [{"bit_generator": "PCG64", "state": {"state": "x", "inc": "1"},
                                  "has_uint32": 0, "uinteger": 0},
                                 {"bit_generator": "MT19937"}, "not a dict", None])
def test_a_bad_generator_state_is_refused(bad):
    with pytest.raises(ValueError, match="noise generator"):
        rng_decoded(np.random.default_rng(1), bad)


@pytest.mark.parametrize(("version", "ok"), [(1, True), (2, True), (3, False), ("2", False),
                                             (True, False), (None, False)])
def test_versions_up_to_ours_are_read(version, ok):
    if ok:
        check_version(version, 2, "x")
    else:
        with pytest.raises(ValueError, match="reads up to 2"):
            check_version(version, 2, "x")


def _sim_cycler():
    from labctl.engine.prepare import prepare
    from labctl.stations.build import make_clock, open_station

    root = Path(__file__).resolve().parents[2]
    prep = prepare(root / "procedures" / "quickstart.yaml",
                   station_path=root / "instruments" / "sim.yaml", cell_ref="lfp-2p2ah")
    station = open_station(prep.station, prep.cell, registry=prep.registry,
                           clock=make_clock(prep.station))
    return station.get("cycler"), station.get("chamber")


@pytest.mark.parametrize("damage", ["newer", "bad rng"])
def test_an_unreadable_snapshot_changes_nothing(damage):
    cycler, chamber = _sim_cycler()
    for instrument in (cycler, chamber):
        good = instrument.get_state()
        saved = copy.deepcopy(good)
        saved["soc" if "soc" in saved else "setpoint_c"] = 0.123
        if damage == "newer":
            saved["version"] = 99
        else:
            saved["rng"]["state"]["inc"] = "not a number"
        with pytest.raises(LabctlError, match="unusable saved state"):
            instrument.set_state(saved)
        assert instrument.get_state() == good  # nothing applied
