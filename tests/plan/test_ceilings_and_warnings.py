"""What validate and run refuse (issue 13 §3: 'Rest for 1e308 s', 'log every 1e-9 s',
'repeat: 1e24' validated fine and the first wrote 4.6 GB of journal in 20 s), and the
warnings `labctl plan` lists. Through the command line, as a user meets them."""

from __future__ import annotations

import json

import pytest

from tests.plan.conftest import write
from tests.support import labctl_cmd

HOSTILE = {
    "long-rest": "name: long-rest\nsteps:\n  - Rest for 1e308 s\n",
    "fast-log": "name: fast-log\nlog: every 1e-9 s\nsteps:\n  - Rest for 1 s\n",
    "huge-repeat": ("name: huge-repeat\nsteps:\n  - repeat: 1000000000000000000000000\n"
                    "    steps:\n      - Rest for 1 second\n"),
    "centuries": ("name: centuries\nsteps:\n  - repeat: 1000000000000\n"
                  "    steps:\n      - Rest for 1 second\n"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_validate_and_run_refuse_unbounded_procedures(tmp_path, name):
    proc = write(tmp_path, name, HOSTILE[name])
    checked = labctl_cmd("validate", str(proc), timeout=60)
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert "Traceback" not in checked.stderr
    assert f"{name}.yaml" in checked.stderr and "refused" in checked.stderr
    if name == "fast-log":
        assert "1e-09 s" in checked.stderr and "1 ms" in checked.stderr
    else:  # the estimate comes with the refusal
        assert "estimate:" in checked.stderr and "years" in checked.stderr
        assert "max_duration" in checked.stderr
    results = tmp_path / "results"
    ran = labctl_cmd("run", str(proc), "--results", str(results), "--no-progress", timeout=60)
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert "refused" in ran.stderr
    assert not results.exists() or not any(results.iterdir())  # nothing was started


def test_a_max_duration_bounds_a_long_procedure(tmp_path):
    proc = write(tmp_path, "bounded", "name: bounded\nmax_duration: 2 days\nsteps:\n"
                 "  - repeat: 1000000000000\n    steps:\n      - Rest for 1 second\n")
    checked = labctl_cmd("validate", str(proc), "--json", timeout=60)
    assert checked.returncode == 0, checked.stderr
    estimate = json.loads(checked.stdout)["estimate"]
    assert estimate["status"] == "aborted"  # its max_duration stops it
    assert estimate["duration_s"] == pytest.approx(2 * 86400)
    # two samples per one-second rest, for the two days the run lasts
    assert estimate["n_samples"] == pytest.approx(2 * 2 * 86400, rel=1e-6)
    assert any("max_duration" in w for w in estimate["warnings"])


def test_a_plan_cut_by_max_duration_says_what_the_run_will_do(tmp_path):
    """The plan of a procedure its max_duration stops: the real run's status and samples."""
    proc = write(tmp_path, "cut", "name: cut\nmax_duration: 1 hour\nsteps:\n"
                 "  - repeat: 1000000000000\n    steps:\n      - Rest for 1 second\n")
    planned = labctl_cmd("plan", str(proc), "--json", timeout=60)
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    results = tmp_path / "results"
    ran = labctl_cmd("run", str(proc), "--results", str(results), "--no-progress", timeout=120)
    assert ran.returncode == 1, ran.stdout + ran.stderr  # stopped by its max_duration
    (run_json,) = results.glob("*/run.json")
    meta = json.loads(run_json.read_text())
    assert plan["status"] == meta["status"] == "aborted"
    assert "maximum duration" in plan["reason"] and "maximum duration" in meta["reason"]
    assert plan["run_samples"] == pytest.approx(meta["summary"]["n_samples"], rel=0.01)
    assert plan["run_duration_s"] == pytest.approx(meta["summary"]["duration_s"], rel=0.01)
    text = labctl_cmd("plan", str(proc), timeout=60).stdout
    assert "samples: 7,200;" in text and "outcome: aborted" in text


def test_validate_prints_the_one_line_estimate_after_ok():
    checked = labctl_cmd("validate", "procedures/quickstart.yaml", timeout=60)
    assert checked.returncode == 0, checked.stderr
    lines = checked.stdout.splitlines()
    assert lines[0].startswith("ok")
    estimate = " ".join(lines[1:])
    # quickstart: ~3 h of steps logged every 10 s, about 1,100 samples
    assert "estimate: 3 h" in estimate and "samples" in estimate and "on disk" in estimate


def test_plan_lists_the_warnings_and_exits_0(tmp_path):
    proc = write(tmp_path, "troubles", """
name: troubles
log: every 60 s
steps:
  - Charge at 1C until {cell.max_voltage_v} V
  - Discharge at 1C for 3 hours
  - Rest until > 3.6 V
  - Charge at 0.2C for 10 minutes or until 3.6 V
  - Rest for 40 days
""")
    out = labctl_cmd("plan", str(proc), "--json", timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    warnings = "\n".join(report["warnings"])
    # 3 h at 1C from full empties a 2.2 Ah cell in about an hour: its cell limit ends it
    assert "steps[1]" in warnings and "cell's limit" in warnings
    # an empty LFP cell never relaxes up to 3.6 V: only the channel's 30-day cap ends it
    assert "steps[2] 'Rest until > 3.6 V': the model never reaches its until" in warnings
    # 10 minutes at C/5 from empty cannot reach 3.6 V on an LFP cell
    assert "steps[3]" in warnings and "time limit instead of its until" in warnings
    assert "longer than 30 days" in warnings
    steps = {s["path"]: s for s in report["steps"]}
    assert steps["steps[1]"]["duration_s"] < 3 * 3600
    assert steps["steps[2]"]["duration_s"] == pytest.approx(30 * 86400, rel=1e-6)
    text = labctl_cmd("plan", str(proc), timeout=120)
    assert text.returncode == 0 and "warnings (4)" in text.stdout


def test_plan_reports_a_step_that_ends_on_a_safety_limit(tmp_path):
    proc = write(tmp_path, "hot", """
name: hot
safety: {max_temperature_c: 26}
steps:
  - Discharge at 3C until {cell.min_voltage_v} V
""")
    out = labctl_cmd("plan", str(proc), "--json", timeout=60)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["status"] == "aborted"
    assert any("safety limit" in w and "temperature" in w for w in report["warnings"])
    margin = report["margins"]["max_temperature"]
    assert margin["limit"] == 26 and margin["margin"] <= 0.01
    assert margin["path"] == "steps[0]"


def test_several_channels_are_refused_before_any_starts(tmp_path):
    proc = write(tmp_path, "centuries", HOSTILE["centuries"])
    results = tmp_path / "results"
    ran = labctl_cmd("run", str(proc), "--channel", "1", "--channel", "2", "--results",
                     str(results), "--no-progress", timeout=60)
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert "refused" in ran.stderr and "years" in ran.stderr
    assert not results.exists() or not any(results.iterdir())


def test_a_hold_to_a_current_below_self_discharge_is_flagged(tmp_path):
    """The issue's "a hold to a current the cell never falls to": a real cell keeps taking
    its self-discharge current (~1e-5 A per Ah); the simulated one has none."""
    proc = write(tmp_path, "float", "name: float\nlog: every 60 s\nsteps:\n"
                 "  - Charge at 1C until {cell.max_voltage_v} V\n"
                 "  - Hold at {cell.max_voltage_v} V until 0.000001 mA\n"
                 "  - Hold at {cell.max_voltage_v} V until C/1000\n")
    planned = labctl_cmd("plan", str(proc), "--cell", "lfp-2p2ah", "--json", timeout=60)
    assert planned.returncode == 0, planned.stderr
    warnings = json.loads(planned.stdout)["warnings"]
    flagged = [w for w in warnings if "self-discharge" in w]
    assert len(flagged) == 1 and "steps[1]" in flagged[0], warnings  # C/1000 = 2.2 mA is fine
