"""Several channels at once: each its own run, validated together, failing alone."""

from __future__ import annotations

import labctl
from tests.support import json_out, labctl_cmd


def test_same_procedure_on_three_channels(tmp_path):
    proc = labctl_cmd("run", "procedures/quickstart.yaml", "--channel", "1", "--channel", "2",
                      "--channel", "3", "--results", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout  # stdout: each channel's reason
    rows = json_out(proc)["runs"]
    assert [r["channel"] for r in rows] == ["1", "2", "3"]
    assert all(r["status"] == "completed" for r in rows)
    dirs = {r["run_dir"] for r in rows}
    assert len(dirs) == 3
    serials = {labctl.open_run(d).meta["station"]["instruments"]["cycler"]["serial"] for d in dirs}
    assert len(serials) == 3  # each run records its own channel's instrument


def test_one_channel_tripping_does_not_stop_the_others(tmp_path):
    (tmp_path / "hot.yaml").write_text(
        "name: hot\nsafety: {max_temperature_c: 26}\nsteps:\n  - Discharge at 2C until 2.5 V\n"
        "  - Rest for 1 hour\n")
    (tmp_path / "batch.yaml").write_text(f"""
channels:
  - {{channel: 1, procedure: {tmp_path / 'hot.yaml'}, cell: lfp-2p2ah}}
  - {{channel: 2, procedure: procedures/quickstart.yaml, cell: nmc-1p95ah}}
""")
    proc = labctl_cmd("run", "--batch", str(tmp_path / "batch.yaml"), "--results",
                      str(tmp_path / "r"), "--json")
    assert proc.returncode == 1
    rows = {r["channel"]: r for r in json_out(proc)["runs"]}
    assert rows["1"]["status"] == "aborted" and rows["1"]["reason"].startswith("safety:")
    assert rows["2"]["status"] == "completed"
    assert labctl.open_run(rows["2"]["run_dir"]).meta["cell"]["chemistry"] == "NMC"


def test_a_bad_channel_stops_the_whole_batch_before_it_starts(tmp_path):
    (tmp_path / "over.yaml").write_text("name: over\nsteps:\n  - Charge at 1C until 4.2 V\n")
    (tmp_path / "batch.yaml").write_text(f"""
channels:
  - {{channel: 1, procedure: procedures/quickstart.yaml}}
  - {{channel: 2, procedure: {tmp_path / 'over.yaml'}, cell: lfp-2p2ah}}
  - {{channel: 2, procedure: procedures/quickstart.yaml}}
""")
    results = tmp_path / "r"
    proc = labctl_cmd("run", "--batch", str(tmp_path / "batch.yaml"), "--results", str(results))
    assert proc.returncode == 2
    assert "listed twice" in proc.stderr and "batch.yaml:5" in proc.stderr
    (tmp_path / "batch.yaml").write_text(f"""
channels:
  - {{channel: 1, procedure: procedures/quickstart.yaml}}
  - {{channel: 2, procedure: {tmp_path / 'over.yaml'}, cell: lfp-2p2ah}}
""")
    proc = labctl_cmd("run", "--batch", str(tmp_path / "batch.yaml"), "--results", str(results))
    assert proc.returncode == 2 and "3.65" in proc.stderr
    assert not results.exists() or not any(results.iterdir())  # no channel was started


def test_channels_driving_one_chamber_share_a_worker_and_say_so(tmp_path):
    warm = tmp_path / "warm.yaml"
    warm.write_text("log: every 60 s\nsteps:\n  - chamber: {setpoint_c: 35, wait: false}\n"
                    "  - Rest for 10 min\n")
    proc = labctl_cmd("run", str(warm), "--channel", "1", "--channel", "2", "--processes", "2",
                      "--results", str(tmp_path / "r"), "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "1 worker process instead of 2" in proc.stderr
    rows = json_out(proc)["runs"]
    # One process: both runs record the same pid (run.json), the chamber's claims met there.
    pids = {labctl.open_run(r["run_dir"]).meta["pid"] for r in rows}
    assert len(pids) == 1
    plain = labctl_cmd("run", "procedures/quickstart.yaml", "--channel", "1", "--channel", "2",
                       "--processes", "2", "--results", str(tmp_path / "q"), "--json")
    assert plain.returncode == 0 and "instead of" not in plain.stderr
    assert len({labctl.open_run(r["run_dir"]).meta["pid"] for r in json_out(plain)["runs"]}) == 2
