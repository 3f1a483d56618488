"""open_run: the same DataFrames from Parquet tables or from the journal; summaries; analyses;
the catalog of runs."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from labctl.errors import LabctlError
from labctl.records import SAMPLE_COLUMNS
from labctl.store.catalog import list_runs
from labctl.store.journal import JournalWriter
from labctl.store.run import open_run
from labctl.store.rundir import INDEX_NAME, RunDir
from labctl.store.tables import finalize
from tests.store.store_synth import UNIX0, dead_pid, write_run


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    run = write_run(root, "20261125-101500-synthetic-cell-a-0001", np.random.default_rng(21))
    finalize(run.path)
    return run


def test_tables_and_journal_give_identical_frames(finished, tmp_path):
    copy = tmp_path / finished.path.name
    shutil.copytree(finished.path, copy)
    for name in ("timeseries", "steps", "cycles"):
        (copy / f"{name}.parquet").unlink()
    a, b = open_run(finished.path), open_run(copy)
    assert a.tables_current and not b.tables_current
    for name in ("timeseries", "steps", "cycles"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True)
    assert a.events == b.events and a.summary() == b.summary()
    ts = a.timeseries
    assert list(ts.columns) == list(SAMPLE_COLUMNS)
    for name in SAMPLE_COLUMNS:
        assert ts[name].to_numpy().tobytes() == finished.samples[name].tobytes()


def test_summary_is_the_last_complete_cycle(finished):
    s = open_run(finished.path).summary()
    last = [p for p in finished.plan if p.cycle == 3]
    q_in = sum(p.charge_ah for p in last)
    q_out = sum(p.discharge_ah for p in last)
    assert s["cycle_index"] == 3 and s["status"] == "completed"
    assert s["charge_capacity_ah"] == pytest.approx(q_in, rel=1e-12)
    assert s["discharge_capacity_ah"] == pytest.approx(q_out, rel=1e-12)
    assert s["coulombic_efficiency"] == pytest.approx(q_out / q_in, rel=1e-12)
    assert s["discharge_energy_wh"] == pytest.approx(sum(p.discharge_wh for p in last), rel=1e-12)
    assert s["duration_s"] == sum(p.duration_s for p in finished.plan)
    assert s["n_samples"] == len(finished.samples["test_time_s"])
    assert (s["n_steps"], s["n_cycles"]) == (12, 3)
    json.dumps(s)  # JSON-ready (no NaN, no numpy types)


def test_a_crashed_run_opens_as_interrupted_with_its_data(tmp_path):
    run = write_run(tmp_path, "crashed", np.random.default_rng(22), crash_in_step=7)
    raw = (run.path / "journal.bin").read_bytes()
    (run.path / "journal.bin").write_bytes(raw + raw[100:140])  # torn last write
    r = open_run(run.path)
    assert r.meta["status"] == "interrupted" and not r.tables_current
    assert len(r.timeseries) == len(run.samples["test_time_s"])
    assert r.steps.end_kind.tolist()[-1] == "interrupted"
    assert r.summary()["status"] == "interrupted"
    assert r.events[-1]["type"] == "state"


def test_a_run_still_going_is_read_from_its_journal(tmp_path):
    rd = RunDir.create(tmp_path, "live", {"status": "running"})  # this process: alive
    w = JournalWriter.create(rd.path)
    w.append_event({"type": "step_start", "step_index": 1, "cycle_index": 1, "kind": "rest",
                    "text": "Rest", "path": "steps[0]", "test_time_s": 0.0})
    cols = {n: np.arange(5).astype(d) for n, d in SAMPLE_COLUMNS.items()}
    w.append_samples(cols)
    r = open_run(rd.path)
    assert r.meta["status"] == "running" and len(r.timeseries) == 5
    w.append_samples(cols)
    assert len(open_run(rd.path).timeseries) == 10  # a new look sees the new samples
    w.close()


def test_analysis_tables_and_a_clear_error_for_missing_ones(finished):
    folder = finished.path / "analysis" / "hppc"
    folder.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame({"soc": [0.9, 0.5], "r0_ohm": [0.021, 0.024]})
    df.to_parquet(folder / "pulses.parquet")
    r = open_run(finished.path)
    got = r.analysis("hppc")
    assert list(got) == ["pulses"]
    pd.testing.assert_frame_equal(got["pulses"], df)
    with pytest.raises(LabctlError, match="no analysis 'eis'; stored: hppc"):
        r.analysis("eis")
    with pytest.raises(LabctlError, match="no analysis"):
        r.analysis("../hppc")


def test_open_run_on_something_else_names_the_path(tmp_path):
    with pytest.raises(LabctlError, match=f"{tmp_path}: not a run directory"):
        open_run(tmp_path)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(LabctlError, match="file.txt: not a run directory"):
        open_run(tmp_path / "file.txt")


# -- the catalog -----------------------------------------------------------------------------

def test_list_runs_sorted_flags_dead_runs_and_repairs_its_index(tmp_path):
    meta = {"procedure": {"name": "cyc"}, "cell": {"name": "c1"}}
    RunDir.create(tmp_path, "b", {**meta, "status": "completed", "started_unix_s": UNIX0 + 10,
                                  "ended_unix_s": UNIX0 + 70, "summary": {"duration_s": 55.0}})
    RunDir.create(tmp_path, "a", {**meta, "status": "running", "started_unix_s": UNIX0})
    RunDir.open(tmp_path / "a").update_meta(pid=dead_pid())
    RunDir.create(tmp_path, "c", {**meta, "status": "running", "started_unix_s": UNIX0 + 20})
    (tmp_path / "not-a-run").mkdir()
    runs = list_runs(tmp_path)
    assert [r["run_id"] for r in runs] == ["a", "b", "c"]
    assert [r["status"] for r in runs] == ["interrupted", "completed", "running"]
    b = runs[1]
    assert (b["procedure"], b["cell"], b["wall_duration_s"], b["duration_s"]) == \
        ("cyc", "c1", 60.0, 55.0)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert datetime.fromisoformat(b["started"]) == epoch + timedelta(seconds=UNIX0 + 10)

    # The index: lost, or stale after a folder was moved in by hand -> rebuilt.
    (tmp_path / INDEX_NAME).unlink()
    shutil.copytree(tmp_path / "b", tmp_path / "d")
    assert [r["run_id"] for r in list_runs(tmp_path)] == ["a", "b", "b", "c"]
    paths = [json.loads(line)["path"] for line in (tmp_path / INDEX_NAME).read_text().splitlines()]
    assert sorted(paths) == ["a", "b", "c", "d"]
