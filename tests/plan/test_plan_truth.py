"""The plan against what really happens: a real run of the same procedure on the same
simulated station (the issue's truth: duration, capacity and max temperature within 1 %),
and closed forms for what the plan counts instead of simulating."""

from __future__ import annotations

import math

import numpy as np
import pytest

import labctl
from labctl.engine.session import prepare, start_run
from labctl.plan import plan_prepared
from tests.plan.conftest import write
from tests.support import REPO

STATION = REPO / "instruments" / "sim.yaml"


def _plan_and_run(proc, cell, tmp_path, **params: str):
    prep = prepare(proc, station_path=STATION, cell_ref=str(cell), params=params)
    report = plan_prepared(prep)
    outcome = start_run(prep, results_root=tmp_path / "results")
    assert outcome.status == "completed", outcome.reason
    return report, labctl.open_run(outcome.path)


def _close(a: float, b: float, rel: float = 0.01) -> bool:
    return abs(a - b) <= rel * abs(b)


def test_quickstart_plan_matches_its_run(tmp_path):
    report, run = _plan_and_run(REPO / "procedures" / "quickstart.yaml", "lfp-2p2ah", tmp_path)
    steps, ts = run.steps, run.timeseries
    assert report.status == "completed" and not report.approximate
    assert _close(report.duration_s, float(steps["end_time_s"].max()))
    assert _close(report.max_temperature_c, float(ts["temperature_c"].max()))
    # per step: duration and the capacity moved, step by step in order
    planned = report.steps
    assert [s["text"] for s in planned] == list(steps["text"])
    for s, (_, row) in zip(planned, steps.iterrows(), strict=True):
        assert _close(s["duration_s"], row["duration_s"]), (s["text"], s["duration_s"])
        for key in ("charge_capacity_ah", "discharge_capacity_ah"):
            assert abs(s[key] - row[key]) <= 0.01 * max(row[key], 0.01), (s["text"], key)
    # per cycle
    cycles = run.cycles
    assert len(report.cycles) == len(cycles)
    for c, (_, row) in zip(report.cycles, cycles.iterrows(), strict=True):
        assert _close(c["discharge_capacity_ah"], row["discharge_capacity_ah"])
    # samples and the disk-space estimate (the model is within ~20 % of a run folder)
    assert abs(report.n_samples - len(ts)) <= 0.01 * len(ts)
    size = sum(p.stat().st_size for p in run.path.rglob("*") if p.is_file())
    assert 0.7 * size <= report.disk_bytes <= 1.3 * size, (report.disk_bytes, size)


def test_ageing_cycle_life_plan_matches_its_run(tmp_path):
    """An ageing cell: no two iterations exactly alike. The plan simulates two cycles in a
    row, then takes the next ones like the last (the cell ageing as much each time), and
    says so; the fade it predicts is the one the run measures, cycle by cycle."""
    report, run = _plan_and_run(REPO / "procedures" / "cycle-life.yaml", "nmc-1p95ah", tmp_path,
                                max_blocks="2", cycles_per_rpt="30", rest_min="5",
                                rpt_rest_min="10")
    steps, cycles, ts = run.steps, run.cycles, run.timeseries
    assert report.approximate
    assert any("change only slowly" in n for n in report.notes), report.notes
    assert _close(report.duration_s, float(steps["end_time_s"].max()))
    assert _close(report.max_temperature_c, float(ts["temperature_c"].max()))
    planned = np.repeat([c["discharge_capacity_ah"] for c in report.cycles],
                        [c["repeats"] for c in report.cycles])
    measured = cycles["discharge_capacity_ah"].to_numpy()
    assert len(planned) == len(measured) == 63
    assert np.abs(planned / measured - 1).max() < 0.01
    # the fade over the run: what the plan predicts for the last ageing cycle against the
    # first one, as measured (the fade itself is ~1 %, so compare it, not just levels)
    fade_planned = planned[-2] / planned[2]
    fade_measured = measured[-2] / measured[2]
    assert abs(fade_planned - fade_measured) < 0.1 * abs(1 - fade_measured)
    # the rough plan `labctl run` checks the ceilings with: a few % is all it needs
    rough = plan_prepared(prepare(REPO / "procedures" / "cycle-life.yaml", station_path=STATION,
                                  cell_ref="nmc-1p95ah",
                                  params={"max_blocks": "2", "cycles_per_rpt": "30",
                                          "rest_min": "5", "rpt_rest_min": "10"}), rough=True)
    assert _close(rough.duration_s, float(steps["end_time_s"].max()), 0.05)
    assert abs(rough.n_samples / len(ts) - 1) < 0.05
    # the margins point at real extremes of the run
    vmax = report.margins["max_voltage"]
    assert _close(vmax["value"], float(ts["voltage_v"].max()), 0.001)


def test_identical_cycles_are_counted_and_agree_with_a_full_run(tmp_path, steady_cell):
    """A cell that does not age repeats its cycles exactly: the plan simulates a few and
    counts the rest, and still agrees with a run that simulates all 60."""
    proc = write(tmp_path, "cycles", """
name: steady-cycles
log: every 30 s
steps:
  - Discharge at 1C until {cell.min_voltage_v} V
  - repeat: 60
    cycle: true
    steps:
      - Charge at 1C until {cell.max_voltage_v} V
      - Hold at {cell.max_voltage_v} V until C/20
      - Rest for 10 minutes
      - Discharge at 1C until {cell.min_voltage_v} V
      - Rest for 10 minutes
""")
    report, run = _plan_and_run(proc, steady_cell, tmp_path)
    assert any("repeat identically" in n for n in report.notes), report.notes
    assert not report.approximate
    steps, cycles, ts = run.steps, run.cycles, run.timeseries
    assert _close(report.duration_s, float(steps["end_time_s"].max()))
    assert abs(report.n_samples - len(ts)) <= 0.01 * len(ts)
    assert _close(report.max_temperature_c, float(ts["temperature_c"].max()))
    fold = {s["path"]: s for s in report.steps}
    assert fold["steps[1].steps[3]"]["count"] == 60
    total_planned = sum(c["discharge_capacity_ah"] * c["repeats"] for c in report.cycles)
    assert _close(total_planned, float(cycles["discharge_capacity_ah"].sum()))
    assert sum(c["repeats"] for c in report.cycles) == len(cycles) == 61


def test_a_python_procedure_is_followed_step_by_step(tmp_path):
    """A Python procedure branches on what it measured: the plan feeds it the twin's
    results, as the engine feeds it the bench's."""
    report, run = _plan_and_run(REPO / "procedures" / "examples" / "ramp.py", "lfp-2p2ah",
                                tmp_path)
    steps = run.steps
    assert sum(s["count"] for s in report.steps) == len(steps)
    assert _close(report.duration_s, float(steps["end_time_s"].max()))
    assert _close(sum(s["discharge_capacity_ah"] * s["count"] for s in report.steps),
                  float(steps["discharge_capacity_ah"].sum()))


def test_a_trillion_one_second_rests_are_counted_exactly(tmp_path):
    proc = write(tmp_path, "many", """
name: many-rests
steps:
  - repeat: 1000000000000
    steps:
      - Rest for 1 second
""")
    prep = prepare(proc, station_path=STATION)
    report = plan_prepared(prep)
    assert report.planning_wall_s < 30  # not 10^12 simulated steps (a hang would time out)
    assert report.duration_s == pytest.approx(1e12, rel=1e-9)
    # each 1-s rest logs its first and last sample (logging every 10 s by default)
    assert report.n_samples == pytest.approx(2e12, rel=1e-9)
    assert report.steps[0]["count"] == 10**12
    assert report.refusal is not None and "max_duration" in report.refusal


def test_a_timed_step_too_long_to_simulate_is_counted_from_its_time(tmp_path):
    proc = write(tmp_path, "long", "name: long\nlog: every 10 s\nsteps:\n  - Rest for 1e308 s\n")
    report = plan_prepared(prepare(proc, station_path=STATION))
    assert report.duration_s == 1e308
    assert report.n_samples == pytest.approx(1e307, rel=1e-6)
    assert report.approximate and report.refusal is not None
    assert math.isfinite(report.disk_bytes)


@pytest.mark.parametrize(("file", "station", "cell"), [
    ("hppc-temperatures.yaml", None, "nmc-1p95ah"),  # chamber steps between HPPCs
    ("eis-vs-pressure.yaml", None, "ssb-bulk"),  # potentiostat and pressure rig
    ("dsc-ramp.yaml", "instruments/sim-abuse.yaml", "nmc-1p95ah"),  # the calorimeter stays
    ("bms/can-timing.yaml", "instruments/sim-bms.yaml", None),  # a report step is left out
])
def test_ready_procedures_of_every_area_plan_to_completion(file, station, cell):
    prep = prepare(REPO / "procedures" / file, station_path=REPO / station if station else None,
                   cell_ref=cell)
    report = plan_prepared(prep)
    assert report.status == "completed", report.reason
    assert report.duration_s > 0


def test_the_estimate_the_console_shows_next_to_start():
    from labctl.plan import estimate

    est = estimate(REPO / "procedures" / "quickstart.yaml", station=STATION, cell="lfp-2p2ah")
    # quickstart: 1 min + discharge + 10 min + charge/hold + 10 + discharge + 10 min, ~3 h
    assert 2.5 * 3600 < est.duration_s == est["duration_s"] < 3.5 * 3600
    assert est.text.startswith("estimate: 3 h") and est.refused is None
    hook = pytest.importorskip("labctl.console.estimate")

    class Choice:
        procedure, station, cell, params = (str(REPO / "procedures" / "quickstart.yaml"),
                                             str(STATION), "lfp-2p2ah", {})

    shown = hook.estimate(Choice())
    assert shown["duration_s"] == pytest.approx(est.duration_s)
    assert shown["text"] == est.text
