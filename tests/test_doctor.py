"""`labctl doctor` finds what is wrong with a run directory and repairs what it can."""

from __future__ import annotations

import numpy as np

import labctl
from labctl.store.journal import read_journal
from tests.support import json_out, labctl_cmd


def _finished_run(tmp_path):
    out = json_out(labctl_cmd("run", "procedures/quickstart.yaml", "--results", str(tmp_path),
                              "--json", check=True))
    return out["run_dir"]


def test_healthy_run_passes(tmp_path):
    run_dir = _finished_run(tmp_path)
    proc = labctl_cmd("doctor", run_dir, "--json")
    assert proc.returncode == 0
    report = json_out(proc)["runs"][0]
    assert report["healthy"] and {f["check"] for f in report["findings"]} >= {
        "schema", "journal", "time order", "time gaps", "tables"}


def test_missing_tables_are_rebuilt_from_the_journal(tmp_path):
    run_dir = _finished_run(tmp_path)
    before = labctl.open_run(run_dir).timeseries
    for name in ("timeseries", "steps", "cycles"):
        (tmp_path / run_dir / f"{name}.parquet").unlink()
    proc = labctl_cmd("doctor", run_dir, "--json")
    assert proc.returncode == 1
    findings = {f["check"]: f for f in json_out(proc)["runs"][0]["findings"]}
    assert not findings["tables"]["ok"]
    repaired = json_out(labctl_cmd("doctor", run_dir, "--repair", "--json", check=True))
    assert repaired["runs"][0]["healthy"]
    after = labctl.open_run(run_dir).timeseries
    assert np.array_equal(after.to_numpy(), before.to_numpy())


def test_torn_journal_tail_is_cut_without_losing_whole_records(tmp_path):
    run_dir = _finished_run(tmp_path)
    journal = tmp_path / run_dir / "journal.bin"
    intact = read_journal(run_dir)
    with open(journal, "ab") as f:
        f.write(b"\x31\x4a\x42\x4c\x02\xff\xff")  # the start of a record that never finished
    torn = json_out(labctl_cmd("doctor", run_dir, "--json"))
    assert not {f["check"]: f for f in torn["runs"][0]["findings"]}["journal"]["ok"]
    labctl_cmd("doctor", run_dir, "--repair", check=True)
    fixed = read_journal(run_dir)
    assert not fixed.torn_tail
    assert fixed.valid_bytes == intact.valid_bytes == journal.stat().st_size
    assert np.array_equal(fixed.samples["voltage_v"], intact.samples["voltage_v"])
