"""store.imported: an imported run from columns, atomically; --format forcing."""

from __future__ import annotations

import numpy as np
import pytest

from labctl import open_run
from labctl.errors import LabctlError
from labctl.importers.api import import_file
from labctl.records import SAMPLE_COLUMNS
from labctl.store import imported
from labctl.store.imported import ImportedStep, create_imported_run
from labctl.store.rundir import RunDirExists


def _samples(n_per_step=5):
    # step 1 charges 1 A for 4 s (records 1 s apart), step 2 discharges -1 A
    t = np.arange(2 * n_per_step, dtype=float)
    cur = np.r_[np.full(n_per_step, 1.0), np.full(n_per_step, -1.0)]
    qc = np.r_[np.arange(1, n_per_step + 1) / 3600.0, np.full(n_per_step, n_per_step / 3600)]
    qd = np.r_[np.zeros(n_per_step), np.arange(1, n_per_step + 1) / 3600.0]
    cols = {"test_time_s": t, "unix_time_s": t + 1e9,
            "step_index": np.r_[np.ones(n_per_step), np.full(n_per_step, 2)],
            "cycle_index": np.ones(2 * n_per_step), "voltage_v": np.full(2 * n_per_step, 3.7),
            "current_a": cur, "temperature_c": np.full(2 * n_per_step, np.nan),
            "charge_capacity_ah": qc, "discharge_capacity_ah": qd,
            "charge_energy_wh": qc * 3.7, "discharge_energy_wh": qd * 3.7}
    steps = [ImportedStep(0, n_per_step, "charge", "c"),
             ImportedStep(n_per_step, 2 * n_per_step, "discharge", "d")]
    return {k: v.astype(SAMPLE_COLUMNS[k]) for k, v in cols.items()}, steps


def test_steps_count_from_the_previous_record(tmp_path):
    samples, steps = _samples()
    path = create_imported_run(tmp_path, "r1", {"source": {"sha256": "x"}}, samples, steps)
    run = open_run(path)
    assert run.meta["status"] == "imported" and run.tables_current
    # step 1 moved 5 records x 1 s x 1 A (its first record already holds 1 s of charge)
    assert run.steps.charge_capacity_ah.tolist() == pytest.approx([5 / 3600, 0.0])
    assert run.steps.discharge_capacity_ah.tolist() == pytest.approx([0.0, 5 / 3600])
    assert run.cycles.charge_capacity_ah.iloc[0] == pytest.approx(5 / 3600)


@pytest.mark.parametrize("target", ["_fsync_path", "_write_table", "_write_durably"])
def test_a_failure_leaves_no_run_directory(tmp_path, monkeypatch, target):
    # a Parquet table, the fsync of the files (on threads), run.json: a failure in any
    # of them leaves nothing in the store
    samples, steps = _samples()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(f"labctl.store.imported.{target}", boom)
    with pytest.raises(LabctlError, match="the disk is full.*nothing was kept"):
        create_imported_run(tmp_path, "r2", {"source": {"sha256": "x"}}, samples, steps)
    assert list(tmp_path.iterdir()) == []
    assert imported.find_by_sha256(tmp_path, "x") is None


@pytest.mark.parametrize("name", ["maccor_001.txt", "neware_uio.csv", "biol.mpr"])
def test_tables_equal_what_finalize_builds_from_the_journal(vendor, tmp_path, monkeypatch,
                                                            name):
    # the tables are written straight from the columns; the recorded runs' path
    # (finalize reading back the journal of the same samples and steps) must give the
    # same tables and summary. Imported runs keep no journal: one is written for this.
    import shutil

    import pyarrow.parquet as pq

    from labctl.store.tables import finalize

    monkeypatch.setattr(imported, "WRITE_JOURNAL", True)
    run_dir = import_file(vendor / name, tmp_path / "a").path
    assert open_run(run_dir).tables_current
    copy = tmp_path / "b" / run_dir.name
    shutil.copytree(run_dir, copy)
    tables = ["timeseries", "steps", "cycles"] + [
        f"records/{p.stem}" for p in sorted((run_dir / "records").glob("*.parquet"))]
    if name == "biol.mpr":
        assert "records/spectra" in tables  # its impedance sweeps
    for table in tables:
        (copy / f"{table}.parquet").unlink()
    out = finalize(copy)
    for table in tables:
        ours, theirs = pq.read_table(run_dir / f"{table}.parquet"), \
            pq.read_table(copy / f"{table}.parquet")
        assert ours.schema.equals(theirs.schema)
        assert ours.to_pandas().equals(theirs.to_pandas()), table
    from labctl.store.run import summarize

    meta = open_run(run_dir).meta
    assert meta["summary"] == summarize(meta, out["steps"], out["cycles"], out["n_samples"])


def test_forced_format_and_a_wrong_one(vendor, tmp_path):
    ok = import_file(vendor / "neware_uio.csv", tmp_path / "a", fmt="neware-csv")
    assert ok.format == "neware-csv"
    with pytest.raises(LabctlError, match=r"maccor_001\.txt.*as neware-csv"):
        import_file(vendor / "maccor_001.txt", tmp_path / "b", fmt="neware-csv")
    with pytest.raises(LabctlError, match="allowed"):
        import_file(vendor / "maccor_001.txt", tmp_path / "b", fmt="csv-ish")


def test_an_import_killed_midway_is_cleaned_up_and_never_listed(tmp_path):
    from labctl.store.catalog import list_runs

    samples, steps = _samples()
    dead = tmp_path / ".importing-old"
    dead.mkdir()
    (dead / "run.json").write_text('{"status": "imported"}')
    (dead / ".builder-pid").write_text("999999999")  # no such process
    assert list_runs(tmp_path) == []
    create_imported_run(tmp_path, "r3", {}, samples, steps)
    assert not dead.exists()
    assert [r["run_id"] for r in list_runs(tmp_path)] == ["r3"]


def test_a_taken_run_name_is_drawn_again(tmp_path, monkeypatch):
    # two imports of the same label in the same second drawing the same 4-hex suffix:
    # the second draws again instead of failing (as recorded runs do)
    samples, steps = _samples()
    draws = iter(["same", "same", "other"])
    first = create_imported_run(tmp_path, lambda: next(draws), {"source": {"sha256": "a"}},
                                samples, steps)
    second = create_imported_run(tmp_path, lambda: next(draws), {"source": {"sha256": "b"}},
                                 samples, steps)
    assert (first.name, second.name) == ("same", "other")
    assert open_run(second).meta["run_id"] == "other"
    # a fixed name that is taken is refused, and nothing is left behind
    with pytest.raises(RunDirExists, match="already exists"):
        create_imported_run(tmp_path, "same", {"source": {"sha256": "c"}}, samples, steps)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["other", "same"]


def test_import_file_redraws_a_colliding_name(vendor, tmp_path, monkeypatch):
    # the real path: `new_run_id` forced to give the same suffix twice, then another
    import itertools

    from labctl.store import rundir

    suffixes = itertools.chain(["beef", "beef", "cafe"], itertools.repeat("f00d"))
    monkeypatch.setattr(rundir, "_random_suffix", lambda: next(suffixes))
    src = vendor / "maccor_001.txt"  # the file's own start time: the same second twice
    a = import_file(src, results=tmp_path / "res", name="same")
    b = import_file(src, results=tmp_path / "res", name="same", force=True)
    assert a.path.name.endswith("-beef") and b.path.name.endswith("-cafe")
    assert rundir.RUN_JSON in {p.name for p in b.path.iterdir()}


def test_an_imported_run_has_no_journal_and_still_reads(vendor, tmp_path):
    # no journal (the tables are the record): open_run, show's summary, events, doctor
    # and export all work; a damaged table says to import the file again
    import shutil

    from labctl.store.doctor import check_run
    from labctl.store.export import export_run

    run_dir = import_file(vendor / "maccor_001.txt", tmp_path / "res").path
    assert not (run_dir / "journal.bin").exists()
    run = open_run(run_dir)
    assert run.tables_current and run.meta["status"] == "imported"
    n_steps = len(run.steps)
    assert n_steps > 1 and run.summary()["n_steps"] == n_steps
    assert [e["type"] for e in run.events].count("step_end") == n_steps
    assert run.timeseries.test_time_s.is_monotonic_increasing
    report = check_run(run_dir)
    assert report.healthy, report.as_dict()
    out = export_run(run, "csv", tmp_path / "out.csv")
    assert len(out.read_text().splitlines()) == len(run.timeseries) + 1  # header + rows
    copy = tmp_path / "copy" / run_dir.name
    shutil.copytree(run_dir, copy)
    (copy / "steps.parquet").write_bytes(b"not parquet")
    assert not check_run(copy).healthy
    with pytest.raises(LabctlError, match="import .*maccor_001.txt again"):
        _ = open_run(copy).steps
