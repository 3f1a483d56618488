"""Run directories: ids, atomic run.json, inputs, logs, and telling a dead run from a live one."""

from __future__ import annotations

import json
import os
import re
import socket
from datetime import UTC, datetime

import pandas as pd
import pytest

from labctl.errors import LabctlError
from labctl.store import atomic
from labctl.store.rundir import (
    INDEX_NAME,
    RUN_JSON,
    RUN_SCHEMA_VERSION,
    RunDir,
    effective_status,
    new_run_id,
)
from tests.store.store_synth import dead_pid

NOW = datetime(2026, 11, 25, 10, 15, 0, tzinfo=UTC).timestamp()


def test_run_ids_sort_by_time_and_are_safe_file_names():
    a = new_run_id("HPPC / 25 °C", "LFP 2.2 Ah #7", NOW)
    b = new_run_id("HPPC / 25 °C", "LFP 2.2 Ah #7", NOW + 1)
    assert re.fullmatch(r"20261125-101500-HPPC-25-C-LFP-2\.2-Ah-7-[0-9a-f]{4}", a)
    assert b[:15] == "20261125-101501" and sorted([b, a]) == [a, b]
    assert new_run_id("../../etc", "..", NOW)[16:].startswith("etc-x-")
    ids = {new_run_id("p", "c", NOW) for _ in range(200)}
    assert len(ids) > 150  # the 4 hex digits separate runs started in the same second


def test_create_writes_run_json_inputs_and_an_index_line(tmp_path):
    rd = RunDir.create(tmp_path, "r1", {"status": "running", "procedure": {"name": "ocv"},
                                        "started_unix_s": 5.0})
    meta = json.loads((rd.path / RUN_JSON).read_text())
    assert meta == rd.meta
    assert meta["schema_version"] == RUN_SCHEMA_VERSION and meta["run_id"] == "r1"
    assert meta["pid"] == os.getpid() and meta["host"] == socket.gethostname()
    assert isinstance(meta["labctl_version"], str) and meta["labctl_version"]
    assert (rd.path / "inputs").is_dir()
    (line,) = (tmp_path / INDEX_NAME).read_text().splitlines()
    assert json.loads(line)["run_id"] == "r1" and json.loads(line)["procedure"] == "ocv"
    with pytest.raises(LabctlError, match="already exists"):
        RunDir.create(tmp_path, "r1", {})
    with pytest.raises(LabctlError, match="letters, digits"):
        RunDir.create(tmp_path, "../escape", {})


def test_a_crash_between_write_and_rename_keeps_the_old_run_json(tmp_path, monkeypatch):
    rd = RunDir.create(tmp_path, "r2", {"status": "running", "note": "old"})
    before = (rd.path / RUN_JSON).read_bytes()

    def crash(path):  # the new file is written but not yet renamed into place
        assert path.read_text().count('"note": "new"') == 1
        raise RuntimeError("power cut")

    monkeypatch.setattr(atomic, "_fsync_file", crash)
    with pytest.raises(RuntimeError):
        rd.update_meta(note="new")
    monkeypatch.undo()
    assert (rd.path / RUN_JSON).read_bytes() == before
    assert [p.name for p in rd.path.iterdir() if p.suffix == ".tmp"] == []
    assert RunDir.open(rd.path).meta["note"] == "old"


def test_disk_full_while_rewriting_is_a_clear_error_and_keeps_the_old_file(tmp_path,
                                                                          monkeypatch):
    rd = RunDir.create(tmp_path, "r3", {"status": "running"})
    before = (rd.path / RUN_JSON).read_bytes()

    def full(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(LabctlError, match="run.json: cannot write .the disk is full.; the "
                                          "previous version is unchanged"):
        rd.update_meta(status="completed")
    monkeypatch.undo()
    assert (rd.path / RUN_JSON).read_bytes() == before


def test_update_meta_merges_with_what_is_on_disk(tmp_path):
    a = RunDir.create(tmp_path, "r4", {"status": "running", "sessions": [{"pid": 1}]})
    RunDir.open(a.path).update_meta(summary={"n_samples": 3})
    a.update_meta(status="completed")
    meta = RunDir.open(a.path).meta
    assert meta["summary"] == {"n_samples": 3} and meta["status"] == "completed"
    assert meta["sessions"] == [{"pid": 1}]


def test_inputs_tables_and_log(tmp_path):
    rd = RunDir.create(tmp_path, "r5", {})
    text = "name: ocv\nsteps:\n  - Rest for 1 hour  # ✓\n"
    rd.save_input("/somewhere/else/procedure.yaml", text)
    assert (rd.path / "inputs" / "procedure.yaml").read_text(encoding="utf-8") == text
    df = pd.DataFrame({"soc": [0.0, 0.5, 1.0], "ocv_v": [2.5, 3.3, 3.65]})
    rd.write_table("ocv", df)
    pd.testing.assert_frame_equal(pd.read_parquet(rd.path / "ocv.parquet"), df)
    rd.append_log("first")
    rd.append_log("two\nlines")
    lines = (rd.path / "log.txt").read_text().splitlines()
    assert [ln.split(" ", 1)[1] for ln in lines] == ["first", "two", "lines"]
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", ln) for ln in lines)


def test_open_refuses_what_is_not_a_run_directory(tmp_path):
    with pytest.raises(LabctlError, match=r"nothing-here: not a run directory \(no such folder"):
        RunDir.open(tmp_path / "nothing-here")
    with pytest.raises(LabctlError, match=r"not a run directory \(no run.json"):
        RunDir.open(tmp_path)
    (tmp_path / RUN_JSON).write_text('{"schema_version": 7}')
    with pytest.raises(LabctlError, match="schema 7 is newer"):
        RunDir.open(tmp_path)
    (tmp_path / RUN_JSON).write_text("[1, 2]")
    with pytest.raises(LabctlError, match="not a run description"):
        RunDir.open(tmp_path)


def test_effective_status_tells_dead_from_alive(tmp_path):
    here = socket.gethostname()
    assert effective_status({"status": "running", "host": here, "pid": os.getpid()}) == "running"
    assert effective_status({"status": "running", "host": here, "pid": dead_pid()}) \
        == "interrupted"
    assert effective_status({"status": "running", "host": "elsewhere", "pid": dead_pid()}) \
        == "running"
    assert effective_status({"status": "completed", "host": here, "pid": dead_pid()}) \
        == "completed"
    # A pid reused by another process after a crash: its start time gives it away.
    rd = RunDir.create(tmp_path, "r6", {"status": "running"})
    assert effective_status(rd.meta) == "running"
    forged = dict(rd.meta, process=dict(rd.meta["process"], start_ticks=1))
    assert effective_status(forged) == "interrupted"
    # A resumed run records its new process, so it is not mistaken for the old one.
    rd.update_meta(pid=os.getpid(), status="running")
    assert effective_status(RunDir.open(rd.path).meta) == "running"


def test_a_taken_run_name_is_drawn_again(tmp_path, monkeypatch):
    """Many channels starting the same procedure on the same cell type within one second
    can draw the same 4-hex suffix (1,000 runs in 8 s collide about once a second); the
    second run must then get another name, not fail."""
    from labctl.engine import session

    names = iter(["20261205-190739-p-c-4acd", "20261205-190739-p-c-4acd",
                  "20261205-190739-p-c-4acd", "20261205-190739-p-c-77e1"])
    monkeypatch.setattr(session, "new_run_id", lambda *_: next(names))
    first = session._create_rundir(tmp_path, "p", "c", NOW, {"procedure": {}})
    second = session._create_rundir(tmp_path, "p", "c", NOW, {"procedure": {}})
    assert first.path.name.endswith("4acd") and second.path.name.endswith("77e1")
    assert json.loads((second.path / "run.json").read_text())["run_id"] == second.path.name
