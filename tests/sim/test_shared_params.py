"""Params shared by the simulated cells of one process (sim/params.py): a run on a warm
cache gives the very samples of a run that built every Params itself, and only equal
models share."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from labctl.capabilities import LoggingPolicy
from labctl.engine.prepare import prepare
from labctl.procedures.grammar import parse_step
from labctl.sim import params as sim_params
from labctl.stations.build import make_clock, open_station
from tests.sim.helpers import joined, run

REPO = Path(__file__).resolve().parents[2]
STEPS = ("Charge at 1C until 4.1 V", "Hold at 4.1 V until C/20", "Rest for 10 minutes",
         "Discharge at 2C until 3.2 V", "Rest for 10 minutes")


def _prepared(tmp_path: Path):
    proc = tmp_path / "p.yaml"
    proc.write_text("name: p\nsteps:\n  - Rest for 1 minute\n")
    return prepare(proc, station_path=REPO / "instruments" / "sim.yaml", cell_ref="nmc-1p95ah")


def _cycle(prep, cell=None):
    """Two cycles of STEPS on a fresh simulated channel: its samples, and the channel."""
    cell = cell or prep.cell
    station = open_station(prep.station, cell, registry=prep.registry,
                           clock=make_clock(prep.station))
    cycler = station.get("cycler")
    steps = [parse_step(t, cell=cell, default_logging=LoggingPolicy(period_s=1.0))
             for t in STEPS]
    out = []
    for _ in range(2):
        for step in steps:
            batches, _ = run(cycler, step, prep.procedure.safety, step.logging)
            out.append(joined(batches))
    return out, cycler


def test_a_warm_cache_gives_the_samples_a_cold_one_does(tmp_path):
    prep = _prepared(tmp_path)
    sim_params._SHARED.clear()
    cold, first = _cycle(prep)
    assert sim_params._SHARED  # the first channel filled it
    warm, second = _cycle(prep)
    assert first._model_key == second._model_key
    assert second._params(31.0) is first._params(31.0)  # the very object, not a copy
    assert len(cold) == len(warm)
    for a, b in zip(cold, warm, strict=True):
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_only_equal_models_share(tmp_path):
    prep = _prepared(tmp_path)
    model = prep.cell.model
    other_model = dataclasses.replace(model, activation_energy_ev=model.activation_energy_ev * 1.5)
    other_cell = dataclasses.replace(prep.cell, model=other_model)
    assert sim_params.model_key(model, prep.cell.capacity_ah) == \
        sim_params.model_key(_prepared(tmp_path).cell.model, prep.cell.capacity_ah)
    assert sim_params.model_key(other_model, prep.cell.capacity_ah) != \
        sim_params.model_key(model, prep.cell.capacity_ah)
    assert sim_params.model_key(model, 2.5) != sim_params.model_key(model, prep.cell.capacity_ah)
    _, a = _cycle(prep)
    _, b = _cycle(prep, other_cell)
    pa, pb = a._params(35.0), b._params(35.0)
    assert pa is not pb
    assert pa.r0_y[0] != pb.r0_y[0]  # another activation energy: another R0 at 35 degC
