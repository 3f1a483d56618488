"""Tables built while the journal is written (store/live_tables.py) against the truth the
synthetic runs are built from, and the fall-back to the journal whenever the live tables
may not hold exactly what the journal does."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from labctl.errors import StorageError
from labctl.records import SAMPLE_COLUMNS
from labctl.store import journal as jmod
from labctl.store import tables as tmod
from labctl.store.journal import JournalWriter, read_journal
from labctl.store.live_tables import LiveTables
from labctl.store.rundir import RunDir
from labctl.store.tables import build_cycles, finalize, tables_current
from tests.store.store_synth import write_run

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def taps(monkeypatch):
    """Every JournalWriter.create gets a LiveTables tap; the list of taps made."""
    made: list[LiveTables] = []
    real = JournalWriter.create.__func__

    def create(cls, run_dir, *args, **kwargs):
        writer = real(cls, run_dir, *args, **kwargs)
        writer.tap = LiveTables(run_dir)
        made.append(writer.tap)
        return writer

    monkeypatch.setattr(JournalWriter, "create", classmethod(create))
    return made


def _no_journal_pass(monkeypatch):
    def refuse(run_dir):
        raise AssertionError("finalize read the journal although the live tables were complete")

    monkeypatch.setattr(tmod, "_timeseries_from_journal", refuse)


def _temp_files(folder: Path) -> list[str]:
    return [p.name for p in folder.glob(".*.tmp")]


@pytest.mark.parametrize("row_group", [37, 1_000_000])
def test_live_tables_hold_the_synthetic_truth(tmp_path, monkeypatch, taps, row_group):
    monkeypatch.setattr(tmod, "ROW_GROUP_ROWS", row_group)
    run = write_run(tmp_path, "live", np.random.default_rng(21), n_cycles=3)
    with monkeypatch.context() as m:
        _no_journal_pass(m)
        out = finalize(run.path, live=taps[0])
    ts = pd.read_parquet(run.path / "timeseries.parquet")
    assert list(ts.columns) == list(SAMPLE_COLUMNS)
    for name, dt in SAMPLE_COLUMNS.items():  # the samples the synthetic run was built from
        assert ts[name].dtype == dt
        assert ts[name].to_numpy().tobytes() == run.samples[name].tobytes(), name
    assert out["n_samples"] == len(ts)
    meta = pq.ParquetFile(run.path / "timeseries.parquet").metadata
    sizes = [meta.row_group(k).num_rows for k in range(meta.num_row_groups)]
    assert sum(sizes) == len(ts)
    # Groups close once they reach the size (whole blocks of < 90 rows): memory stays bounded.
    assert all(row_group <= s < row_group + 90 for s in sizes[:-1])
    steps = pd.read_parquet(run.path / "steps.parquet")
    assert steps.n_samples.tolist() == [run.step_samples[s.index] for s in run.plan]
    assert steps.duration_s.tolist() == pytest.approx([s.duration_s for s in run.plan])
    cycles = pd.read_parquet(run.path / "cycles.parquet")
    pd.testing.assert_frame_equal(cycles, build_cycles(steps, run.samples))
    first = run.plan[0]
    assert cycles.charge_capacity_ah.iloc[0] == pytest.approx(first.charge_ah, rel=1e-12)
    assert tables_current(run.path, RunDir.open(run.path).meta)
    assert _temp_files(run.path) == []
    # The same tables as the journal gives when they are rebuilt from it.
    live_steps = steps
    for name in ("timeseries", "steps", "cycles"):
        (run.path / f"{name}.parquet").unlink()
    finalize(run.path)
    pd.testing.assert_frame_equal(pd.read_parquet(run.path / "timeseries.parquet"), ts)
    pd.testing.assert_frame_equal(pd.read_parquet(run.path / "steps.parquet"), live_steps)
    pd.testing.assert_frame_equal(pd.read_parquet(run.path / "cycles.parquet"), cycles)


def test_a_step_that_never_ended_falls_back_to_the_journal(tmp_path, taps):
    run = write_run(tmp_path, "crash", np.random.default_rng(22), crash_in_step=4)
    out = finalize(run.path, live=taps[0])
    steps = pd.DataFrame(out["steps"])
    assert steps.end_kind.tolist()[-1] == "interrupted"  # summarised from its samples
    assert steps.n_samples.iloc[-1] == run.step_samples[4]
    ts = pd.read_parquet(run.path / "timeseries.parquet")
    assert ts.test_time_s.to_numpy().tobytes() == run.samples["test_time_s"].tobytes()
    assert _temp_files(run.path) == []


def _block(k0: int, n: int) -> dict[str, np.ndarray]:
    t = np.arange(k0, k0 + n, dtype=float)
    cols = {name: np.zeros(n, dtype=dt) for name, dt in SAMPLE_COLUMNS.items()}
    cols.update(test_time_s=t, unix_time_s=t + 1e9, voltage_v=3.0 + t * 1e-3,
                step_index=np.ones(n, np.int32), cycle_index=np.ones(n, np.int32))
    return cols


def _bare_run(tmp_path: Path) -> RunDir:
    return RunDir.create(tmp_path, "bare", {"status": "running", "reason": "",
                                            "started_unix_s": 1e9})


def _start(w: JournalWriter) -> None:
    w.append_event({"type": "step_start", "step_index": 1, "cycle_index": 1, "path": "steps[0]",
                    "kind": "rest", "text": "Rest", "test_time_s": 0.0})


def _end(w: JournalWriter, n: int) -> None:
    result = dict.fromkeys(tmod.STEP_COLUMNS, 0.0)
    result.update(step_index=1, cycle_index=1, kind="rest", text="Rest", path="steps[0]",
                  end_kind="time", end_reason="done", n_samples=n)
    w.append_event({"type": "step_end", "result": result})


def test_records_the_tap_did_not_see_send_finalize_to_the_journal(tmp_path):
    rd = _bare_run(tmp_path)
    w = JournalWriter.create(rd.path)
    tap = w.tap = LiveTables(rd.path)
    _start(w)
    w.append_samples(_block(0, 50))
    w.tap = None  # appended behind the tap's back
    w.append_samples(_block(50, 30))
    _end(w, 80)
    w.close()
    out = finalize(rd.path, live=tap)
    assert out["n_samples"] == 80
    ts = pd.read_parquet(rd.path / "timeseries.parquet")
    np.testing.assert_array_equal(ts.test_time_s.to_numpy(), np.arange(80.0))
    assert _temp_files(rd.path) == []


def test_a_failed_append_sends_finalize_to_the_journal(tmp_path, monkeypatch):
    rd = _bare_run(tmp_path)
    w = JournalWriter.create(rd.path, fsync_interval_s=0)
    tap = w.tap = LiveTables(rd.path)
    _start(w)
    w.append_samples(_block(0, 40))
    real = jmod._writev_all
    calls = {"n": 0}

    def full_once(fd, buffers, total):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, buffers, total)

    monkeypatch.setattr(jmod, "_writev_all", full_once)
    with pytest.raises(StorageError, match="disk is full"):
        w.append_samples(_block(40, 10))
    w.append_samples(_block(40, 25))  # room again
    _end(w, 65)
    w.close()
    assert tap.error is not None
    out = finalize(rd.path, live=tap)
    truth = read_journal(rd.path).samples
    assert out["n_samples"] == len(truth["test_time_s"]) == 65
    ts = pd.read_parquet(rd.path / "timeseries.parquet")
    assert ts.test_time_s.to_numpy().tobytes() == truth["test_time_s"].tobytes()
    assert _temp_files(rd.path) == []


def test_a_simulated_run_writes_its_tables_live(tmp_path, monkeypatch):
    """`labctl run`'s path: the tables come from the live tap and equal the journal's."""
    from labctl.engine.session import prepare, start_run

    monkeypatch.setattr(tmod, "ROW_GROUP_ROWS", 500)
    proc = tmp_path / "p.yaml"
    proc.write_text("name: live\nlog: every 2 s\nsteps:\n  - repeat: 2\n    steps:\n"
                    "      - Discharge at 1C until 3.3 V\n      - Rest for 5 minutes\n"
                    "      - Charge at 1C until 4.0 V\n")
    prep = prepare(proc, station_path=REPO / "instruments" / "sim.yaml", cell_ref="nmc-1p95ah")
    with monkeypatch.context() as m:
        _no_journal_pass(m)
        outcome = start_run(prep, results_root=tmp_path / "results")
    assert outcome.status == "completed"
    path = outcome.path
    assert _temp_files(path) == []
    truth = read_journal(path)
    ts = pd.read_parquet(path / "timeseries.parquet")
    for name in SAMPLE_COLUMNS:
        assert ts[name].to_numpy().tobytes() == truth.samples[name].tobytes(), name
    meta = json.loads((path / "run.json").read_text())
    assert meta["status"] == "completed" and tables_current(path, meta)
    assert meta["summary"]["n_samples"] == len(ts) == outcome.summary["n_samples"]
    steps = pd.read_parquet(path / "steps.parquet")
    assert steps.end_kind.tolist() == ["condition", "time", "condition"] * 2
    assert steps.end_reason.tolist()[:3] == ["reached 3.3 V", "time elapsed", "reached 4 V"]
    # The logged end voltages: the cut-offs, give or take the station's noise (0.2 mV).
    assert steps.end_voltage_v.iloc[[0, 3]].tolist() == pytest.approx([3.3] * 2, abs=2e-3)
    assert steps.end_voltage_v.iloc[[2, 5]].tolist() == pytest.approx([4.0] * 2, abs=2e-3)
    rebuilt = {}
    for name in ("steps", "cycles"):
        rebuilt[name] = pd.read_parquet(path / f"{name}.parquet")
        (path / f"{name}.parquet").unlink()
    (path / "timeseries.parquet").unlink()
    finalize(path)
    pd.testing.assert_frame_equal(pd.read_parquet(path / "timeseries.parquet"), ts)
    for name, frame in rebuilt.items():
        pd.testing.assert_frame_equal(pd.read_parquet(path / f"{name}.parquet"), frame)


def test_row_group_size_while_another_thread_imports_tables(monkeypatch):
    # Channels run in threads of one process: one may still be importing store/tables.py
    # (in sys.modules, without its names yet) when another's live tables start. Found as
    # "partially initialized module 'labctl.store.tables' has no attribute 'ROW_GROUP_ROWS'"
    # failing one channel of three in CI.
    import sys
    import types

    from labctl.store import live_tables, summaries

    monkeypatch.setitem(sys.modules, "labctl.store.tables", types.ModuleType("labctl.store.tables"))
    assert live_tables._row_group_rows() == summaries.ROW_GROUP_ROWS
    monkeypatch.setitem(sys.modules, "labctl.store.tables", tmod)
    monkeypatch.setattr(tmod, "ROW_GROUP_ROWS", 7)
    assert live_tables._row_group_rows() == 7
