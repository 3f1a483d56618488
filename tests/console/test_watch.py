"""The Benches tiles from run.json/status.json: which runs, in which order, with what."""

from __future__ import annotations

import json
import os
import socket
import time

from labctl.console.watch import RunWatcher


def _run(root, name, status, *, started, ended=None, reason="", live=None, pid=None):
    folder = root / name
    folder.mkdir(parents=True)
    meta = {"run_id": name, "status": status, "reason": reason, "host": socket.gethostname(),
            "pid": pid if pid is not None else os.getpid(), "started_unix_s": started,
            "ended_unix_s": ended, "procedure": {"name": name.split("-")[0]},
            "cell": {"name": "LFP 2.2 Ah"},
            "station": {"name": "bench", "instruments": {"cycler": {"serial": "CH-7"}}}}
    (folder / "run.json").write_text(json.dumps(meta))
    if live is not None:
        (folder / "status.json").write_text(json.dumps(live))
    return folder


def test_tiles_show_active_runs_then_faults_then_recent_ends(tmp_path):
    now = time.time()
    live = {"step_index": 3, "step": "Discharge at 1C until 2.5 V", "voltage_v": 3.21,
            "current_a": -2.2, "temperature_c": 25.4, "test_time_s": 600.0,
            "updated_unix_s": now}
    _run(tmp_path, "b-running", "running", started=now - 50, live=live)
    _run(tmp_path, "a-paused", "running", started=now - 100, live={**live, "state": "paused"})
    _run(tmp_path, "c-safety", "aborted", started=now - 300, ended=now - 10,
         reason="safety: voltage 3.701 V > 3.65 V", live=live)
    _run(tmp_path, "d-done", "completed", started=now - 200, ended=now - 5, reason="all steps done")
    _run(tmp_path, "e-old", "completed", started=now - 3 * 86400, ended=now - 2 * 86400)
    _run(tmp_path, "f-dead", "running", started=now - 400, pid=2**22 + 12345)  # no such process
    _run(tmp_path, "g-imported", "imported", started=now - 60, ended=now - 60)
    tiles = RunWatcher(tmp_path).tiles()
    by_id = {t["run_id"]: t for t in tiles}
    assert "e-old" not in by_id  # ended two days ago
    assert "g-imported" not in by_id  # a vendor file, not a bench
    assert [t["run_id"] for t in tiles if t["active"]] == ["a-paused", "b-running"]
    assert [t["run_id"] for t in tiles][2] == "c-safety"  # the stop right after the benches
    paused, running = by_id["a-paused"], by_id["b-running"]
    assert paused["state"] == "paused" and paused["current_a"] == 0.0 and paused["output_off"]
    assert running["state"] == "running" and running["current_a"] == -2.2
    assert running["voltage_v"] == 3.21 and running["step_index"] == 3
    assert running["channel"] == "CH-7"
    stop = by_id["c-safety"]
    assert stop["alarm"] and stop["safety"] and stop["reason"].startswith("safety: voltage")
    assert not by_id["d-done"]["alarm"]
    # a "running" run whose process is gone is shown as interrupted, loudly
    assert by_id["f-dead"]["state"] == "interrupted" and by_id["f-dead"]["alarm"]


def test_tiles_name_the_bench_and_host_of_runs_from_other_pcs(tmp_path):
    """A store shared by several benches (labctl run --batch --scheduler): each tile says
    which bench and which PC; another PC's running run stays running (its pid is not ours)."""
    now = time.time()
    folder = _run(tmp_path, "cap-remote", "running", started=now - 30, pid=2**22 + 999,
                  live={"voltage_v": 3.4, "updated_unix_s": now})
    meta = json.loads((folder / "run.json").read_text())
    meta.update(host="bench-pc-b", fleet={"bench": "B", "worker": "w-b", "channel": 2})
    (folder / "run.json").write_text(json.dumps(meta))
    _run(tmp_path, "cap-local", "running", started=now - 20, live={"voltage_v": 3.3})
    by_id = {t["run_id"]: t for t in RunWatcher(tmp_path).tiles()}
    remote, local = by_id["cap-remote"], by_id["cap-local"]
    assert remote["bench"] == "B" and remote["host"] == "bench-pc-b"
    assert remote["state"] == "running" and remote["active"]
    assert local["bench"] is None and local["host"] == socket.gethostname()


def test_run_json_is_parsed_again_only_when_it_changes(tmp_path):
    now = time.time()
    folder = _run(tmp_path, "r-1", "running", started=now, live={"voltage_v": 3.3})
    watcher = RunWatcher(tmp_path)
    assert watcher.tiles(0)[0]["state"] == "running"
    meta = json.loads((folder / "run.json").read_text())
    meta.update(status="faulted", reason="instrument stopped answering", ended_unix_s=now)
    time.sleep(0.01)
    (folder / "run.json").write_text(json.dumps(meta))
    tile = watcher.tiles(0)[0]
    assert tile["state"] == "faulted" and tile["alarm"] and not tile["safety"]


def test_runs_page_filters_by_bench_or_host(tmp_path):
    """The Runs list of a store several benches write to: a fleet run is listed under its
    bench, a local one under the PC it ran on; the bench filter keeps only that bench."""
    from labctl.console.runs_index import filter_runs

    now = time.time()
    remote = _run(tmp_path, "cap-remote", "completed", started=now - 60, ended=now - 30)
    meta = json.loads((remote / "run.json").read_text())
    meta.update(host="bench-pc-b", fleet={"bench": "B"})
    (remote / "run.json").write_text(json.dumps(meta))
    _run(tmp_path, "cap-local", "completed", started=now - 50, ended=now - 20)
    rows, facets = filter_runs(tmp_path, {})
    assert {r["run_id"]: r["bench"] for r in rows} == {"cap-remote": "B",
                                                        "cap-local": socket.gethostname()}
    assert facets["bench"] == sorted(["B", socket.gethostname()])
    only_b, _ = filter_runs(tmp_path, {"bench": "B"})
    assert [r["run_id"] for r in only_b] == ["cap-remote"]
