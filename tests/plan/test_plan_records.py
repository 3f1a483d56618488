"""Steps that measure outside the timeseries (an abuse calorimeter's thermal records, a BMS
step's CAN frame log): the plan against a real run of the same procedure on the same
simulated station. A review found the overcharge plan at 73.7 °C for a run that reached
450 °C, ARC and DSC plans with no temperature at all, step rows of 0 s in a 25 h plan, and
disk estimates a fifth of the run folder's size."""

from __future__ import annotations

import pytest

import labctl
from labctl.engine.session import prepare, start_run
from labctl.plan import plan_prepared
from tests.support import REPO


def _plan_and_run(file: str, station: str, cell: str, tmp_path):
    prep = prepare(REPO / "procedures" / file, station_path=REPO / "instruments" / station,
                   cell_ref=cell)
    report = plan_prepared(prep)
    outcome = start_run(prep, results_root=tmp_path / "results")
    assert outcome.status == "completed", outcome.reason
    return report, labctl.open_run(outcome.path)


@pytest.mark.parametrize("file", ["overcharge.yaml", "dsc-ramp.yaml", "arc-hws.yaml"])
def test_an_abuse_plan_follows_the_cell_temperature_in_its_records(file, tmp_path):
    report, run = _plan_and_run(file, "sim-abuse.yaml", "nmc-1p95ah", tmp_path)
    thermal = run.records("thermal")
    hottest = float(thermal["cell_temperature_c"].max())
    assert report.max_temperature_c == pytest.approx(hottest, rel=0.01)
    margin = report.margins["max_temperature"]
    assert margin["value"] == pytest.approx(hottest, rel=0.01)
    assert margin["margin"] == pytest.approx(margin["limit"] - hottest, abs=0.01 * hottest)
    # the run's duration, and the steps' rows add up to it (in the plan and in the run)
    steps = run.steps
    assert report.duration_s == pytest.approx(float(steps["end_time_s"].max()), rel=0.01)
    assert float(thermal["test_time_s"].max()) <= float(steps["end_time_s"].max()) + 1e-6
    planned_sum = sum(s["total_duration_s"] for s in report.steps)
    assert planned_sum == pytest.approx(report.duration_s, rel=0.01)
    assert float(steps["duration_s"].sum()) == pytest.approx(report.duration_s, rel=0.01)
    size = sum(p.stat().st_size for p in run.path.rglob("*") if p.is_file())
    assert 0.7 * size <= report.disk_bytes <= 1.3 * size, (report.disk_bytes, size)


def test_a_bms_plan_counts_its_frame_logs_on_disk(tmp_path):
    report, run = _plan_and_run("bms/protection.yaml", "sim-bms.yaml", "lfp-2p2ah", tmp_path)
    can = sum(p.stat().st_size for p in (run.path / "can").iterdir())
    size = sum(p.stat().st_size for p in run.path.rglob("*") if p.is_file())
    assert can > 0.5 * size  # the frame logs are most of this run folder
    assert 0.7 * size <= report.disk_bytes <= 1.3 * size, (report.disk_bytes, size)
