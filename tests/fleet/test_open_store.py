"""`labctl.open_store`: the store's tables filtered lazily equal pandas over the same files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import labctl
from labctl.errors import LabctlError
from tests.fleet.conftest import CELLS


def _pandas(store: Path, table: str) -> pd.DataFrame:
    """Every run's table read with plain pandas, run_id from the folder's run.json."""
    frames = []
    for run_json in sorted(store.glob("*/run.json")):
        df = pd.read_parquet(run_json.parent / f"{table}.parquet")
        df.insert(0, "run_id", json.loads(run_json.read_text())["run_id"])
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _cells(store: Path) -> dict[str, str]:
    return {json.loads(p.read_text())["run_id"]: json.loads(p.read_text())["cell"]["name"]
            for p in store.glob("*/run.json")}


def _same(a: pd.DataFrame, b: pd.DataFrame, keys: list[str]) -> None:
    a = a.sort_values(keys).reset_index(drop=True)
    b = b.sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(a.astype({"run_id": str}), b.astype({"run_id": str}),
                                  check_dtype=False)


def test_catalog_has_one_row_per_run(base_store):
    store = labctl.open_store(base_store)
    runs = store.runs
    assert len(runs) == len(CELLS)
    # `cell` is the name users give --cell (the cell file's stem), cell_name the display name
    assert sorted(runs["cell"]) == sorted(CELLS)  # as given to --cell
    assert sorted(runs["cell_name"]) == sorted(_cells(base_store).values())
    assert set(runs["status"]) == {"completed"} and set(runs["procedure"]) == {"cycling"}
    assert runs["source"].isna().all()  # recorded, not imported
    for row in runs.itertuples():
        assert row.n_samples == len(pd.read_parquet(Path(row.path) / "timeseries.parquet"))


def test_filters_equal_pandas_over_the_same_files(base_store):
    store = labctl.open_store(base_store)
    everything = _pandas(base_store, "timeseries")
    cells = _cells(base_store)
    one_lfp = sorted(r for r, c in cells.items() if c.startswith("LFP"))[1]

    # A catalog filter ORed with a data filter, and a column projection.
    filters = [[("cell", "==", "nmc-1p95ah"), ("voltage_v", ">", 3.9)],
               [("run_id", "==", one_lfp), ("current_a", "<", -0.5)]]
    lazy = store.timeseries(columns=["test_time_s", "voltage_v", "current_a"], filters=filters)
    got = lazy.compute()
    cell = everything["run_id"].map(cells)
    mask = ((cell == "NMC 1.95 Ah") & (everything["voltage_v"] > 3.9)) | (
        (everything["run_id"] == one_lfp) & (everything["current_a"] < -0.5))
    want = everything.loc[mask, ["run_id", "test_time_s", "voltage_v", "current_a"]]
    assert 0 < len(want) < len(everything) / 4
    _same(got, want, ["run_id", "test_time_s"])
    assert lazy.npartitions == 2  # the other runs were never opened

    cycles = store.cycles(filters=[("discharge_capacity_ah", ">", 2.0)]).compute()
    every_cycle = _pandas(base_store, "cycles")
    _same(cycles, every_cycle[every_cycle["discharge_capacity_ah"] > 2.0],
          ["run_id", "cycle_index"])
    assert set(cycles["run_id"].map(cells)) == {"LFP 2.2 Ah"}  # the 1.95 Ah cell stays below

    steps = store.steps(columns=["kind", "duration_s"], filters=[("kind", "in", ["rest"])])
    all_steps = _pandas(base_store, "steps")
    _same(steps.compute(), all_steps.loc[all_steps["kind"] == "rest",
                                         ["run_id", "kind", "duration_s"]],
          ["run_id", "duration_s"])


def test_a_crashed_run_without_tables_is_read_from_its_journal(store_copy):
    store_before = labctl.open_store(store_copy)
    victim = Path(store_before.runs["path"].iloc[0])
    want = pd.read_parquet(victim / "timeseries.parquet")
    for name in ("timeseries", "steps", "cycles"):
        (victim / f"{name}.parquet").unlink()
    store = labctl.open_store(store_copy)
    got = store.timeseries(filters=[("run_id", "==", victim.name)]).compute()
    pd.testing.assert_frame_equal(got.drop(columns="run_id").reset_index(drop=True), want,
                                  check_dtype=False)


def test_bad_filters_and_paths_are_clear_errors(base_store, tmp_path):
    store = labctl.open_store(base_store)
    with pytest.raises(LabctlError, match="unknown operator"):
        store.timeseries(filters=[("voltage_v", "~", 3)])
    with pytest.raises(LabctlError, match="no column 'volts'"):
        store.timeseries(columns=["volts"])
    with pytest.raises(LabctlError, match="no such results store"):
        labctl.open_store(tmp_path / "nowhere")


def test_imported_runs_carry_their_source(store_copy):
    from click.testing import CliRunner

    from labctl.cli import main
    from tests.support import REPO

    vendor = REPO.parent / "shared" / "vendor-data" / "maccor_001.txt"
    res = CliRunner().invoke(main, ["import", str(vendor), "--results", str(store_copy), "--json"])
    assert res.exit_code == 0, res.output
    run_dir = Path(json.loads(res.stdout)["runs"][0]["path"])
    store = labctl.open_store(store_copy)
    row = store.runs[store.runs["path"] == str(run_dir)].iloc[0]
    assert row["status"] == "imported" and row["source"] == "maccor: maccor_001.txt"
    assert store.runs["source"].notna().sum() == 1
    got = store.timeseries(columns=["test_time_s", "current_a"],
                           filters=[("source", "!=", None)]).compute()
    want = pd.read_parquet(run_dir / "timeseries.parquet", columns=["test_time_s", "current_a"])
    assert set(got["run_id"]) == {row["run_id"]}
    pd.testing.assert_frame_equal(got.drop(columns="run_id").reset_index(drop=True), want,
                                  check_dtype=False)


def test_a_store_behind_an_fsspec_url_reads_the_same(base_store):
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.put(str(base_store), "/fleet-test-store", recursive=True)
    try:
        remote = labctl.open_store("memory://fleet-test-store")
        local = labctl.open_store(base_store)
        assert sorted(remote.runs["run_id"]) == sorted(local.runs["run_id"])
        assert remote.local is False
        flt = [("cell", "==", "nmc-1p95ah")]
        assert len(local.cycles(filters=flt).compute(scheduler="sync")) > 0
        # memory:// lives in this process only: compute here, not on a session's Dask workers.
        _same(remote.cycles(filters=flt).compute(scheduler="sync"),
              local.cycles(filters=flt).compute(scheduler="sync"),
              ["run_id", "cycle_index"])
    finally:
        fs.rm("/fleet-test-store", recursive=True)
