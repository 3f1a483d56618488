"""Run directories: atomic run.json, open_run with and without Parquet tables, export,
and the catalog's view of runs (including crashed ones)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labctl.errors import LabctlError
from labctl.records import SAMPLE_COLUMNS
from labctl.store.catalog import list_runs
from labctl.store.export import export_run
from labctl.store.journal import read_journal
from labctl.store.run import open_run
from labctl.store.rundir import RUN_JSON, RunDir, effective_status

REPO = Path(__file__).resolve().parents[2]

BDF_NAMES = {
    "test_time_s": "Test Time / s",
    "unix_time_s": "Unix Time / s",
    "step_index": "Step Count / 1",
    "cycle_index": "Cycle Count / 1",
    "voltage_v": "Voltage / V",
    "current_a": "Current / A",
    "temperature_c": "Surface Temperature / degC",
    # labctl's counters restart every cycle: BDF's Cycle ... names.
    "charge_capacity_ah": "Cycle Charging Capacity / Ah",
    "discharge_capacity_ah": "Cycle Discharging Capacity / Ah",
    "charge_energy_wh": "Cycle Charging Energy / Wh",
    "discharge_energy_wh": "Cycle Discharging Energy / Wh",
}
# BDF's plain names count from the start of the test and never reset.
BDF_TOTALS = {
    "charge_capacity_ah": "Charging Capacity / Ah",
    "discharge_capacity_ah": "Discharging Capacity / Ah",
    "charge_energy_wh": "Charging Energy / Wh",
    "discharge_energy_wh": "Discharging Energy / Wh",
}


def _running_total(ts, column):
    """Cycle counters turned into test totals: add every earlier cycle's final value."""
    finals = ts.groupby("cycle_index")[column].max()
    offsets = finals.cumsum().shift(fill_value=0.0)
    return ts[column].to_numpy() + ts.cycle_index.map(offsets).to_numpy()


# -- atomic run.json -------------------------------------------------------------------------


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("where", ["replace", "fsync", "interrupt"])
def test_update_meta_failing_midway_leaves_the_old_run_json(tmp_path, monkeypatch, where):
    rd = RunDir.create(tmp_path, "run-1", {"status": "running", "note": "before"})
    before = (rd.path / RUN_JSON).read_bytes()

    def boom(*a, **k):
        if where == "interrupt":
            raise KeyboardInterrupt
        raise OSError(28, "No space left on device")

    if where == "fsync":
        monkeypatch.setattr(os, "fsync", boom)
    else:
        monkeypatch.setattr(os, "replace", boom)
        monkeypatch.setattr(os, "rename", boom)
    expected = KeyboardInterrupt if where == "interrupt" else LabctlError
    with pytest.raises(expected):
        rd.update_meta(status="completed", note="after")
    monkeypatch.undo()

    assert (rd.path / RUN_JSON).read_bytes() == before
    meta = RunDir.open(rd.path).meta
    assert meta["status"] == "running" and meta["note"] == "before"
    assert _leftovers(rd.path) == []
    # And the next update works and keeps the other fields.
    rd.update_meta(status="completed")
    meta = json.loads((rd.path / RUN_JSON).read_text())
    assert meta["status"] == "completed" and meta["note"] == "before"
    assert meta["run_id"] == "run-1" and meta["schema_version"] >= 1


def test_update_meta_keeps_fields_written_by_another_rundir_object(tmp_path):
    a = RunDir.create(tmp_path, "run-2", {"status": "running"})
    b = RunDir.open(a.path)
    b.update_meta(tables_journal_bytes=123)
    a.update_meta(status="completed")
    meta = RunDir.open(a.path).meta
    assert meta["tables_journal_bytes"] == 123 and meta["status"] == "completed"


# -- open_run and export on a real (simulated) run --------------------------------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    from labctl.engine.control import RunControl
    from labctl.engine.session import prepare, start_run

    prep = prepare(REPO / "procedures" / "quickstart.yaml",
                   station_path=REPO / "instruments" / "sim.yaml", cell_ref="lfp-2p2ah")
    outcome = start_run(prep, results_root=tmp_path_factory.mktemp("results"),
                        control=RunControl())
    assert outcome.status == "completed"
    return outcome.path


def test_open_run_from_parquet_equals_open_run_from_journal(finished_run, tmp_path):
    for name in ("timeseries", "steps", "cycles"):
        assert (finished_run / f"{name}.parquet").exists()
    journal_only = tmp_path / finished_run.name
    shutil.copytree(finished_run, journal_only)
    for name in ("timeseries", "steps", "cycles"):
        (journal_only / f"{name}.parquet").unlink()

    with_tables, from_journal = open_run(finished_run), open_run(journal_only)
    ts = with_tables.timeseries
    assert len(ts) > 100
    pd.testing.assert_frame_equal(ts, from_journal.timeseries)
    pd.testing.assert_frame_equal(with_tables.steps, from_journal.steps)
    pd.testing.assert_frame_equal(with_tables.cycles, from_journal.cycles)
    assert with_tables.summary() == from_journal.summary()

    # And both are the journal's samples, exactly.
    samples = read_journal(finished_run).samples
    assert list(ts.columns) == list(SAMPLE_COLUMNS)
    for name in SAMPLE_COLUMNS:
        np.testing.assert_array_equal(ts[name].to_numpy(), samples[name], err_msg=name)


def test_steps_table_agrees_with_the_timeseries(finished_run):
    run = open_run(finished_run)
    ts, steps = run.timeseries, run.steps
    assert list(steps.step_index) == sorted(set(ts.step_index))
    for row in steps.itertuples():
        part = ts[ts.step_index == row.step_index]
        assert row.n_samples == len(part)
        assert row.start_time_s == part.test_time_s.iloc[0]
        assert row.end_time_s == part.test_time_s.iloc[-1]
        assert row.end_voltage_v == part.voltage_v.iloc[-1]
        moved = part.discharge_capacity_ah.iloc[-1] - part.discharge_capacity_ah.iloc[0]
        assert row.discharge_capacity_ah == pytest.approx(max(moved, 0.0), abs=1e-12)
    cycles = run.cycles
    for row in cycles.itertuples():
        mine = steps[steps.cycle_index == row.cycle_index]
        assert row.charge_capacity_ah == pytest.approx(mine.charge_capacity_ah.sum(), rel=1e-12)
        if row.charge_capacity_ah > 0:
            assert row.coulombic_efficiency == pytest.approx(
                mine.discharge_capacity_ah.sum() / mine.charge_capacity_ah.sum(), rel=1e-12)


def test_export_bdf_names_and_values(finished_run, tmp_path):
    run = open_run(finished_run)
    out = export_run(run, "bdf", tmp_path / "out" / "run.bdf.csv")
    df = pd.read_csv(out)
    assert set(df.columns) == set(BDF_NAMES.values()) | set(BDF_TOTALS.values())
    assert list(df.columns[:3]) == ["Test Time / s", "Voltage / V", "Current / A"]
    ts = run.timeseries
    assert len(df) == len(ts)
    for ours, bdf in BDF_NAMES.items():
        np.testing.assert_allclose(df[bdf].to_numpy(dtype=float), ts[ours].to_numpy(dtype=float),
                                   rtol=1e-15, atol=0, err_msg=bdf)
    for ours, bdf in BDF_TOTALS.items():
        np.testing.assert_allclose(df[bdf].to_numpy(dtype=float), _running_total(ts, ours),
                                   rtol=1e-12, atol=1e-12, err_msg=bdf)
    sidecar = json.loads(out.with_name(out.name + ".json").read_text())
    assert "positive current = charge" in sidecar["current_sign"]


def test_export_csv_and_parquet_round_trip(finished_run, tmp_path):
    run = open_run(finished_run)
    csv = pd.read_csv(export_run(run, "csv", tmp_path / "run.csv"))
    assert list(csv.columns) == list(SAMPLE_COLUMNS)
    np.testing.assert_allclose(csv.voltage_v, run.timeseries.voltage_v, rtol=1e-15)
    folder = export_run(run, "parquet", tmp_path / "pq")
    pd.testing.assert_frame_equal(pd.read_parquet(folder / "timeseries.parquet"), run.timeseries)
    pd.testing.assert_frame_equal(pd.read_parquet(folder / "steps.parquet"), run.steps)
    assert json.loads((folder / "run.json").read_text())["run_id"] == run.meta["run_id"]


def test_export_unknown_format_lists_the_allowed_ones(finished_run, tmp_path):
    run = open_run(finished_run)
    with pytest.raises(LabctlError) as info:
        export_run(run, "xlsx", tmp_path / "nope" / "run.xlsx")
    message = str(info.value)
    for fmt in ("csv", "parquet", "bdf"):
        assert fmt in message
    assert "xlsx" in message
    assert not (tmp_path / "nope" / "run.xlsx").exists()


# -- catalog ---------------------------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_list_runs_reports_dead_running_runs_as_interrupted(tmp_path):
    root = tmp_path / "results"
    RunDir.create(root, "a-done", {"status": "completed", "started_unix_s": 100.0,
                                   "ended_unix_s": 160.0,
                                   "procedure": {"name": "p"}, "cell": {"name": "c"}})
    crashed = RunDir.create(root, "b-crashed", {"status": "running", "started_unix_s": 200.0})
    crashed.update_meta(pid=_dead_pid())
    alive = RunDir.create(root, "c-alive", {"status": "running", "started_unix_s": 300.0})
    assert alive.meta["pid"] == os.getpid()
    elsewhere = RunDir.create(root, "d-other-host", {"status": "running", "started_unix_s": 400.0})
    elsewhere.update_meta(host=socket.gethostname() + "-not-this-one", pid=_dead_pid())
    (root / "junk").mkdir()
    (root / "junk" / RUN_JSON).write_text("{not json")

    runs = list_runs(root)
    by_id = {r["run_id"]: r for r in runs}
    assert [r["run_id"] for r in runs] == ["a-done", "b-crashed", "c-alive", "d-other-host"]
    assert by_id["a-done"]["status"] == "completed"
    assert by_id["a-done"]["wall_duration_s"] == 60.0
    assert by_id["a-done"]["procedure"] == "p" and by_id["a-done"]["cell"] == "c"
    assert by_id["b-crashed"]["status"] == "interrupted"
    assert by_id["c-alive"]["status"] == "running"
    # A run on another host cannot be checked from here: it stays "running".
    assert by_id["d-other-host"]["status"] == "running"
    assert effective_status(RunDir.open(crashed.path).meta) == "interrupted"
    assert open_run(crashed.path).meta["status"] == "interrupted"
    assert Path(by_id["b-crashed"]["path"]) == crashed.path


def test_list_runs_of_a_missing_folder_is_empty(tmp_path):
    assert list_runs(tmp_path / "nothing-here") == []
