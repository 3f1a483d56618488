"""`labctl run --batch FILE --scheduler ...`: channels only on their bench's worker; a dead
bench worker leaves a resumable run that is not restarted anywhere else."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

from click.testing import CliRunner

from labctl.cli import main
from tests.fleet.conftest import worker_pids
from tests.support import REPO

QUICK = REPO / "procedures" / "quickstart.yaml"


def _metas(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(results.glob("*/run.json"))]


def test_batch_jobs_run_only_on_workers_with_their_bench(client, tmp_path):
    batch = tmp_path / "batch.yaml"
    batch.write_text(f"""
station: {REPO / 'instruments' / 'sim.yaml'}
bench: A
channels:
  - {{channel: 1, procedure: {QUICK}, cell: lfp-2p2ah}}
  - {{channel: 2, procedure: {QUICK}, cell: nmc-1p95ah, parameters: {{}}}}
  - {{channel: 1, procedure: {QUICK}, cell: lfp-2p2ah, bench: B}}
  - {{channel: 2, procedure: {QUICK}, cell: lto-1p8ah, bench: bench-B, params: {{}}}}
""")
    results = tmp_path / "results"
    pids = worker_pids(client)
    res = CliRunner().invoke(main, ["run", "--batch", str(batch), "--scheduler",
                                    client.scheduler.address, "--results", str(results), "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["runs"]
    assert [(r["bench"], r["channel"], r["status"]) for r in rows] == [
        ("A", "1", "completed"), ("A", "2", "completed"), ("B", "1", "completed"),
        ("bench-B", "2", "completed")]
    metas = _metas(results)
    assert len(metas) == 4
    for meta in metas:
        bench = "bench-" + meta["fleet"]["bench"].removeprefix("bench-")
        # The process that wrote run.json is the one worker holding that bench's resource.
        assert meta["pid"] == pids[bench], (meta["fleet"], pids)
        assert meta["fleet"]["worker"] == bench
        assert meta["station"]["instruments"]["cycler"]  # it really ran on an instrument
    cells = {(m["fleet"]["bench"], m["fleet"]["channel"]): m["cell"]["name"] for m in metas}
    assert cells[("bench-B", "2")].startswith("LTO")


def test_a_bench_without_a_worker_starts_nothing(client, tmp_path):
    batch = tmp_path / "batch.yaml"
    batch.write_text(f"""
channels:
  - {{channel: 1, procedure: {QUICK}, bench: A}}
  - {{channel: 1, procedure: {QUICK}, bench: C}}
""")
    results = tmp_path / "results"
    res = CliRunner().invoke(main, ["run", "--batch", str(batch), "--scheduler",
                                    client.scheduler.address, "--results", str(results)])
    assert res.exit_code == 2
    assert "bench-C" in res.output and "--resources" in res.output
    assert not _metas(results)


def test_a_killed_bench_worker_leaves_a_resumable_run(client, tmp_path):
    from labctl.engine.multi import load_batch
    from labctl.engine.session import resume_run
    from labctl.fleet.benches import run_batch_on_scheduler
    from labctl.store.run import open_run

    long_rest = tmp_path / "long-rest.yaml"
    long_rest.write_text("name: long-rest\nrequires: [cycler]\nlog: every 10 s\n"
                         "steps:\n  - Rest for 3 hours\n")
    batch = tmp_path / "batch.yaml"
    batch.write_text(f"channels:\n  - {{channel: 3, procedure: {long_rest}, bench: B}}\n")
    results = tmp_path / "results"
    pid_b = worker_pids(client)["bench-B"]
    rows: list = []
    # 3 h of virtual time at 1000x: ~11 s unless the worker dies first.
    runner = threading.Thread(target=lambda: rows.extend(run_batch_on_scheduler(
        load_batch(batch), results_root=results, client=client, speed=1000.0)))
    runner.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        journals = list(results.glob("*/journal.bin"))
        if journals and journals[0].stat().st_size > 4000:
            break
        time.sleep(0.1)
    assert journals, "the run never started"
    os.kill(pid_b, signal.SIGKILL)
    runner.join(timeout=60)
    assert not runner.is_alive()

    (row,) = rows
    assert row["status"] == "interrupted"
    assert "bench-B" in row["reason"] and "labctl resume" in row["reason"]
    metas = _metas(results)
    assert len(metas) == 1  # not restarted, on this bench or another
    assert metas[0]["status"] == "interrupted" and metas[0]["pid"] == pid_b
    time.sleep(1.0)  # a re-sent attempt (restarted worker) may still be looking at its claim
    assert len(_metas(results)) == 1

    outcome = resume_run(row["run_dir"])
    assert outcome.status == "completed"
    ts = open_run(row["run_dir"]).timeseries
    assert abs(float(ts["test_time_s"].max()) - 3 * 3600) <= 10.0  # the whole rest, once
    assert (ts["test_time_s"].diff().dropna() > 0).all()


def test_status_shows_running_runs_of_every_bench(store_copy):
    # Two runs in progress on two other PCs (benches A and B) writing to this store.
    for k, run_json in enumerate(sorted(store_copy.glob("*/run.json"))[:2]):
        meta = json.loads(run_json.read_text())
        meta.update(status="running", host=f"bench-pc-{k}", pid=12345,
                    fleet={"bench": "AB"[k], "worker": f"bench-{'AB'[k]}", "channel": "1"})
        run_json.write_text(json.dumps(meta))
    res = CliRunner().invoke(main, ["status", "--results", str(store_copy), "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["runs"]
    assert sorted((r["bench"], r["host"]) for r in rows) == [("A", "bench-pc-0"),
                                                            ("B", "bench-pc-1")]
    table = CliRunner().invoke(main, ["status", "--results", str(store_copy)], terminal_width=200)
    assert "bench" in table.output and " A " in table.output and " B " in table.output


def test_ctrl_c_on_the_client_stops_every_run_of_the_batch_safely(client, tmp_path):
    import _thread

    from labctl.engine.multi import load_batch
    from labctl.fleet.benches import run_batch_on_scheduler

    long_rest = tmp_path / "long-rest.yaml"
    long_rest.write_text("name: long-rest\nrequires: [cycler]\nlog: every 10 s\n"
                         "steps:\n  - Rest for 3 hours\n")
    batch = tmp_path / "batch.yaml"
    batch.write_text(f"channels:\n  - {{channel: 1, procedure: {long_rest}, bench: A}}\n"
                     f"  - {{channel: 2, procedure: {long_rest}, bench: B}}\n")
    results = tmp_path / "results"

    def interrupt_once_both_run() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(list(results.glob("*/journal.bin"))) < 2:
            time.sleep(0.1)
        _thread.interrupt_main()  # what Ctrl-C does to the client

    threading.Thread(target=interrupt_once_both_run, daemon=True).start()
    rows = run_batch_on_scheduler(load_batch(batch), results_root=results, client=client,
                                  speed=1000.0)
    assert [r["status"] for r in rows] == ["aborted", "aborted"]  # not the 3 h completed
    for r in rows:
        log = (Path(r["run_dir"]) / "log.txt").read_text()
        assert "Ctrl-C on the batch's client" in r["reason"] + log
