"""`labctl run` + `labctl analyze abuse` as a user runs them; results stored with the run."""

from __future__ import annotations

import json

import pytest

from labctl.store.run import open_run
from tests.abuse.abuse_helpers import NMC, REPO
from tests.support import labctl_cmd


def test_run_and_analyze_arc_from_the_command_line(tmp_path):
    results = tmp_path / "results"
    res = labctl_cmd("run", str(REPO / "procedures" / "arc-hws.yaml"), "--station",
                     str(REPO / "instruments" / "sim-abuse.yaml"), "--cell", NMC,
                     "--param", "start_c=75", "--results", str(results), "--json")
    assert res.returncode == 0, res.stderr
    run_dir = json.loads(res.stdout)["run_dir"]
    res = labctl_cmd("analyze", "abuse", run_dir, "--json")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)["summary"]
    assert summary["onset_c"] == pytest.approx(90, abs=5)
    assert summary["heat_capacity_j_per_k"] == 45.0
    stored = open_run(run_dir)
    assert stored.analysis_summary("abuse")["onset_c"] == summary["onset_c"]
    folder = stored.path / "analysis" / "abuse"
    assert (folder / "rate_vs_temperature.png").stat().st_size > 1000
    assert (folder / "temperature_vs_time.png").is_file()


def test_analyze_a_run_without_thermal_records_exits_2(tmp_path):
    results = tmp_path / "results"
    res = labctl_cmd("run", str(REPO / "procedures" / "quickstart.yaml"), "--results",
                     str(results), "--json")
    assert res.returncode == 0, res.stderr
    run_dir = json.loads(res.stdout)["run_dir"]
    res = labctl_cmd("analyze", "abuse", run_dir)
    assert res.returncode == 2
    assert "no thermal records" in res.stderr + res.stdout
    assert "Traceback" not in res.stderr
