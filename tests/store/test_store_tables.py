"""Step and cycle tables against closed forms, and finalize() against the same truth."""

from __future__ import annotations

import json
import math
import zlib

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from labctl.records import SAMPLE_COLUMNS
from labctl.store import tables as tmod
from labctl.store.journal import JournalWriter, read_journal
from labctl.store.rundir import RunDir
from labctl.store.tables import (
    CYCLE_COLUMNS,
    STEP_COLUMNS,
    StepAccumulator,
    build_cycles,
    build_steps,
    build_timeseries,
    finalize,
    tables_current,
)
from tests.store.store_synth import CUMULATIVE, write_run


def ramp(t: np.ndarray, a: float, b: float) -> np.ndarray:
    return a + b * (t - t[0])


def columns(t, v, i, temp, step=1, cycle=1, cum=None) -> dict[str, np.ndarray]:
    n = len(t)
    cum = cum or {name: np.zeros(n) for name in CUMULATIVE}
    return {"test_time_s": t, "unix_time_s": t + 1e9, "step_index": np.full(n, step, np.int32),
            "cycle_index": np.full(n, cycle, np.int32), "voltage_v": v, "current_a": i,
            "temperature_c": temp, **cum}


@pytest.mark.parametrize("splits", [[], [1], [2, 2, 2], [10, 11, 250], [299]])
def test_step_means_are_the_closed_form_integrals_whatever_the_batches(splits):
    rng = np.random.default_rng(len(splits))
    # Uneven times; V a quadratic: the trapezoid rule has a known error we can bound,
    # so use a linear V and an exponential I whose exact mean we know.
    t = np.concatenate([[0.0], np.sort(rng.uniform(0, 600, 298)), [600.0]])
    v = ramp(t, 3.3, 5e-4)
    i = np.full_like(t, -2.0)
    temp = 20 + 10 * np.sin(t / 100)
    temp[[0, 17, 299]] = np.nan  # missing readings, the last one included
    cum = {"charge_capacity_ah": np.full(300, 0.4),
           "discharge_capacity_ah": 0.1 + 2.0 * t / 3600,
           "charge_energy_wh": np.full(300, 1.3),
           "discharge_energy_wh": 0.2 + 2.0 * v.mean() * t / 3600}
    cols = columns(t, v, i, temp, cum=cum)
    acc = StepAccumulator(3, 2, "discharge", "Discharge at 2 A for 10 minutes", "steps[2]")
    edges = [0, *splits, 300]
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        acc.feed({k: c[lo:hi] for k, c in cols.items()})
    r = acc.result("time", "time elapsed")
    assert r.mean_voltage_v == pytest.approx(3.3 + 5e-4 * 300, rel=1e-12)  # value at mid-time
    assert r.mean_current_a == pytest.approx(-2.0, rel=1e-14)
    assert (r.start_time_s, r.end_time_s, r.duration_s) == (0.0, 600.0, 600.0)
    assert r.n_samples == 300
    assert r.discharge_capacity_ah == pytest.approx(2.0 * 600 / 3600, rel=1e-12)
    assert r.charge_capacity_ah == 0.0 and r.charge_energy_wh == 0.0
    assert r.max_temperature_c == np.nanmax(temp)
    assert math.isnan(r.end_temperature_c)  # the last reading is missing: say so
    assert (r.start_voltage_v, r.end_voltage_v, r.end_current_a) == (v[0], v[-1], -2.0)
    assert (r.step_index, r.cycle_index, r.path) == (3, 2, "steps[2]")


def test_step_mean_of_a_piecewise_current_is_charge_over_time():
    # 100 s at 1 A then 300 s at 3 A (the jump shared by two samples at t=100).
    t = np.array([0.0, 50.0, 100.0, 100.0, 250.0, 400.0])
    i = np.array([1.0, 1.0, 1.0, 3.0, 3.0, 3.0])
    acc = StepAccumulator(1, 1, "profile", "p", "steps[0]")
    acc.feed(columns(t[:4], np.full(4, 3.0), i[:4], np.full(4, np.nan)))
    acc.feed(columns(t[4:], np.full(2, 3.0), i[4:], np.full(2, np.nan)))
    r = acc.result("condition", "done")
    assert r.mean_current_a == pytest.approx((100 * 1 + 300 * 3) / 400, rel=1e-14)
    assert math.isnan(r.max_temperature_c)  # never measured


def test_steps_and_cycles_from_a_synthetic_run_match_closed_forms(tmp_path):
    run = write_run(tmp_path, "synthetic-1", np.random.default_rng(11))
    data = read_journal(run.path)
    steps = build_steps(data.events, data.samples)
    assert list(steps.columns) == STEP_COLUMNS
    assert list(steps.step_index) == [s.index for s in run.plan]
    for s, row in zip(run.plan, steps.itertuples(), strict=True):
        assert row.charge_capacity_ah == pytest.approx(s.charge_ah, rel=1e-12, abs=1e-15)
        assert row.discharge_energy_wh == pytest.approx(s.discharge_wh, rel=1e-12, abs=1e-15)
    cycles = build_cycles(steps, data.samples)
    assert list(cycles.columns) == CYCLE_COLUMNS
    ts = build_timeseries(data.samples)
    for row in cycles.itertuples():
        # Independent truth 1: the timeseries' counters restart each cycle, so a
        # cycle's totals are their last values in the cycle.
        mine = ts[ts.cycle_index == row.cycle_index]
        q_in, q_out = mine.charge_capacity_ah.iloc[-1], mine.discharge_capacity_ah.iloc[-1]
        assert row.coulombic_efficiency == pytest.approx(q_out / q_in, rel=1e-12)
        assert row.energy_efficiency == pytest.approx(
            mine.discharge_energy_wh.iloc[-1] / mine.charge_energy_wh.iloc[-1], rel=1e-12)
        # Independent truth 2: the plan's closed forms.
        plan = [s for s in run.plan if s.cycle == row.cycle_index]
        charge = next(s for s in plan if s.kind == "charge")
        discharge = next(s for s in plan if s.kind == "discharge")
        assert row.charge_capacity_ah == pytest.approx(charge.charge_ah, rel=1e-12)
        assert row.discharge_capacity_ah == pytest.approx(discharge.discharge_ah, rel=1e-12)
        assert row.mean_charge_voltage_v == pytest.approx(charge.mean_voltage_v, rel=1e-12)
        assert row.mean_discharge_voltage_v == pytest.approx(discharge.mean_voltage_v, rel=1e-12)
        assert row.max_temperature_c == 25.0 + plan[-1].index + 0.5
        assert row.start_time_s == mine.test_time_s.iloc[0]
        assert row.end_time_s == mine.test_time_s.iloc[-1]
        assert row.n_steps == 4


def test_a_crashed_step_gets_an_interrupted_row_from_its_samples(tmp_path):
    run = write_run(tmp_path, "crashed", np.random.default_rng(12), crash_in_step=6)
    data = read_journal(run.path)
    steps = build_steps(data.events, data.samples)
    assert list(steps.step_index) == [1, 2, 3, 4, 5, 6]
    last = steps.iloc[-1]
    assert last.end_kind == "interrupted" and last.kind == "rest"
    part = run.samples["step_index"] == 6
    assert last.n_samples == part.sum() == run.step_samples[6]
    assert last.end_time_s == run.samples["test_time_s"][part][-1]
    assert (steps.end_kind.iloc[:-1] == "time").all()


def test_a_resumed_step_in_two_parts_is_one_row(tmp_path):
    # Session 1 crashes in step 2; session 2 continues step 2 (same index) and ends it.
    rd = RunDir.create(tmp_path, "resumed", {"status": "running"})
    t = np.arange(0.0, 101.0)
    q = 1.5 * t / 3600
    whole = columns(t, ramp(t, 3.0, 0.004), np.full(101, 1.5), np.full(101, 25.0), step=2,
                    cum={"charge_capacity_ah": q, "discharge_capacity_ah": np.zeros(101),
                         "charge_energy_wh": 3.2 * q, "discharge_energy_wh": np.zeros(101)})
    with JournalWriter.create(rd.path) as w:
        w.append_event({"type": "step_start", "step_index": 2, "cycle_index": 1, "kind": "charge",
                        "text": "Charge at 1.5 A for 100 s", "path": "steps[1]",
                        "test_time_s": 0.0})
        w.append_samples({k: c[:40] for k, c in whole.items()})
    raw = (rd.path / "journal.bin").read_bytes()
    (rd.path / "journal.bin").write_bytes(raw + raw[-50:-10])  # a torn record from the crash
    with JournalWriter.open_for_append(rd.path) as w:
        w.append_event({"type": "resume", "test_time_s": 39.0, "session": 2})
        acc = StepAccumulator(2, 1, "charge", "Charge at 1.5 A for 100 s", "steps[1]")
        acc.feed({k: c[:40] for k, c in whole.items()})  # as the engine does on resume
        acc.feed({k: c[40:] for k, c in whole.items()})
        w.append_samples({k: c[40:] for k, c in whole.items()})
        w.append_event({"type": "step_end", "result": acc.result("time", "done").as_dict()})
    out = finalize(rd.path)
    steps = pd.DataFrame(out["steps"])  # finalize returns columns (no pandas on the run path)
    assert len(steps) == 1 and steps.n_samples.iloc[0] == 101
    assert steps.charge_capacity_ah.iloc[0] == pytest.approx(1.5 * 100 / 3600, rel=1e-12)
    assert steps.mean_voltage_v.iloc[0] == pytest.approx(3.0 + 0.004 * 50, rel=1e-12)
    ts = pd.read_parquet(rd.path / "timeseries.parquet")
    np.testing.assert_array_equal(ts.test_time_s.to_numpy(), t)  # no duplicate, no gap


@pytest.mark.parametrize("row_group", [37, 1000, 1_000_000])
def test_finalize_streams_row_groups_and_matches_the_journal(tmp_path, monkeypatch, row_group):
    monkeypatch.setattr(tmod, "ROW_GROUP_ROWS", row_group)
    run = write_run(tmp_path, "fin", np.random.default_rng(13), crash_in_step=10)
    out = finalize(run.path)
    ts = pd.read_parquet(run.path / "timeseries.parquet")
    assert list(ts.columns) == list(SAMPLE_COLUMNS)
    for name, dt in SAMPLE_COLUMNS.items():
        assert ts[name].dtype == dt
        assert ts[name].to_numpy().tobytes() == run.samples[name].tobytes(), name
    meta = pq.ParquetFile(run.path / "timeseries.parquet").metadata
    assert meta.num_rows == len(ts) == out["n_samples"]
    assert meta.num_row_groups == -(-len(ts) // row_group)  # bounded memory while writing
    steps = pd.read_parquet(run.path / "steps.parquet")
    # finalize returns numpy columns (strings as objects); the file holds the same values
    pd.testing.assert_frame_equal(steps, pd.DataFrame(out["steps"]), check_dtype=False)
    assert steps.dtypes.to_dict() == tmod.steps_frame([]).dtypes.to_dict()
    assert steps.end_kind.tolist() == ["time"] * 9 + ["interrupted"]
    cycles = pd.read_parquet(run.path / "cycles.parquet")
    pd.testing.assert_frame_equal(cycles, build_cycles(steps, run.samples))
    first = run.plan[0]
    assert cycles.charge_capacity_ah.iloc[0] == pytest.approx(first.charge_ah, rel=1e-12)
    meta_json = json.loads((run.path / "run.json").read_text())
    assert meta_json["tables_journal_bytes"] == (run.path / "journal.bin").stat().st_size
    assert tables_current(run.path, meta_json)


def test_tables_are_stale_once_the_journal_changes(tmp_path):
    run = write_run(tmp_path, "stale", np.random.default_rng(14), n_cycles=1)
    finalize(run.path)
    meta = RunDir.open(run.path).meta
    assert tables_current(run.path, meta)
    journal = run.path / "journal.bin"
    raw = journal.read_bytes()
    # A resumed run can cut a torn tail and append as many bytes again: same size,
    # different last record (a valid one, with its own CRC).
    (offset, _), = [read_journal(run.path).last_record]
    body = raw[offset + 13:].replace(b"completed", b"COMPLETED")
    assert len(body) == len(raw) - offset - 13
    journal.write_bytes(raw[:offset + 9] + zlib.crc32(body).to_bytes(4, "little") + body)
    assert read_journal(run.path).valid_bytes == len(raw)
    assert not tables_current(run.path, meta)
    journal.write_bytes(raw + b"\x00")
    assert not tables_current(run.path, meta)
    journal.write_bytes(raw)
    assert tables_current(run.path, meta)
    (run.path / "cycles.parquet").unlink()
    assert not tables_current(run.path, meta)


def test_empty_run_gives_empty_tables_with_the_right_columns(tmp_path):
    rd = RunDir.create(tmp_path, "empty", {"status": "running"})
    JournalWriter.create(rd.path).close()
    out = finalize(rd.path)
    assert out["n_samples"] == 0
    for name, cols in (("timeseries", list(SAMPLE_COLUMNS)), ("steps", STEP_COLUMNS),
                       ("cycles", CYCLE_COLUMNS)):
        df = pd.read_parquet(rd.path / f"{name}.parquet")
        assert list(df.columns) == cols and len(df) == 0
