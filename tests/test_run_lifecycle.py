"""A run's life: abort, Ctrl-C, SIGKILL then resume, safety limits, chamber steps.

The CLI is driven as a subprocess where signals are involved, so the process
really dies the way it would on a bench PC.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import labctl
from labctl.engine.control import RunControl
from labctl.engine.observer import RunObserver
from labctl.engine.session import prepare, start_run
from tests.support import REPO, json_out, labctl_cmd

SIM_STATION = REPO / "instruments" / "sim.yaml"


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


SPY_PLUGIN = '''
"""A test driver: the simulated cycler, with every call written to a log file."""
import json
from dataclasses import replace

from labctl.drivers.sim_drivers import make_sim_cycler
from labctl.plugins import DriverInfo, hookimpl


class SpyCycler:
    def __init__(self, inner, log_path):
        self.inner, self.log_path = inner, log_path
        self.ranges = inner.ranges

    def _log(self, *what):
        with open(self.log_path, "a") as f:
            f.write(json.dumps(what) + "\\n")

    def identify(self):
        return self.inner.identify()

    def run_step(self, step, limits, logging):
        self._log("run_step", step.text)
        gen = self.inner.run_step(step, limits, logging)
        try:
            while True:
                yield next(gen)
        except StopIteration as stop:
            return stop.value
        finally:
            gen.close()

    def safe_state(self):
        self._log("safe_state")
        self.inner.safe_state()

    def close(self):
        self._log("close")
        self.inner.close()

    def get_state(self):
        return self.inner.get_state()

    def set_state(self, state):
        self.inner.set_state(state)


def make(binding, context):
    settings = dict(binding.settings)
    log_path = settings.pop("spy_log")
    inner = make_sim_cycler(replace(binding, settings=settings), context)
    return SpyCycler(inner, log_path)


@hookimpl
def labctl_drivers():
    return [DriverInfo("spy-cycler", ("cycler",), make, "simulated cycler that logs its calls")]
'''


def _spy_station(tmp_path: Path) -> tuple[Path, Path]:
    log = tmp_path / "spy.log"
    _write(tmp_path, "spy_plugin.py", SPY_PLUGIN)
    station = _write(tmp_path, "spy-station.yaml", f"""
name: spy bench
plugins: [spy_plugin.py]
instruments:
  cycler:
    driver: spy-cycler
    ranges: {{max_current_a: 20, max_voltage_v: 5}}
    spy_log: {log}
""")
    return station, log


class AbortAtStep(RunObserver):
    def __init__(self, control: RunControl, step_index: int, after_samples: int):
        self.control, self.step_index, self.after = control, step_index, after_samples
        self.seen = 0
        self.current = 0

    def step_started(self, step_index, cycle_index, planned):
        self.current = step_index

    def samples(self, columns):
        if self.current == self.step_index:
            self.seen += len(columns["test_time_s"])
            if self.seen >= self.after:
                self.control.request_abort("stopped by test")


def test_abort_turns_output_off_and_keeps_data(tmp_path):
    station, log = _spy_station(tmp_path)
    prep = prepare(REPO / "procedures" / "cycling.yaml", station_path=station, cell_ref="lfp-2p2ah")
    control = RunControl()
    outcome = start_run(prep, results_root=tmp_path / "results", control=control,
                        observer=AbortAtStep(control, step_index=2, after_samples=5))
    assert outcome.status == "aborted"
    assert "stopped by test" in outcome.reason
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    names = [c[0] for c in calls]
    # The output was made safe after the last step started, before the instrument was closed.
    last_run = max(i for i, n in enumerate(names) if n == "run_step")
    assert "safe_state" in names[last_run:]
    assert names.index("safe_state", last_run) < names.index("close", last_run)
    run = labctl.open_run(outcome.path)
    assert run.meta["status"] == "aborted"
    assert (run.timeseries.step_index == 2).sum() >= 5  # what was measured is on disk
    assert run.steps.iloc[-1].end_kind == "aborted"
    assert "safe state" in (outcome.path / "log.txt").read_text()


def _wait_for_status(run_root: Path, predicate, timeout: float = 60.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for status_file in run_root.glob("*/status.json"):
            try:
                status = json.loads(status_file.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if predicate(status):
                return status_file.parent
        time.sleep(0.05)
    raise AssertionError("the run never reached the expected state")


def _start(args: list[str], speed: float) -> subprocess.Popen:
    env = dict(os.environ, LABCTL_SIM_SPEED=str(speed))
    return subprocess.Popen([sys.executable, "-m", "labctl.cli", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_ctrl_c_aborts_safely_with_exit_130(tmp_path):
    results = tmp_path / "results"
    proc = _start(["run", "procedures/cycling.yaml", "--results", str(results), "--no-progress"],
                  speed=2000)
    try:
        run_dir = _wait_for_status(results, lambda s: s.get("step_index", 0) >= 2)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "aborted" and "Ctrl-C" in meta["reason"]
    assert "safe state" in (run_dir / "log.txt").read_text()
    assert len(labctl.open_run(run_dir).timeseries) > 0


def test_sigkill_then_open_then_resume_matches_uninterrupted_run(tmp_path):
    results = tmp_path / "results"
    args = ["run", "procedures/cycling.yaml", "--param", "n_cycles=2", "--results", str(results),
            "--no-progress"]
    proc = _start(args, speed=3000)
    try:
        run_dir = _wait_for_status(results, lambda s: s.get("step_index", 0) >= 3)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    crashed = labctl.open_run(run_dir)
    assert crashed.meta["status"] == "interrupted"
    n_before = len(crashed.timeseries)
    assert n_before > 0
    before = crashed.timeseries.copy()

    resumed = labctl_cmd("resume", str(run_dir), "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json_out(resumed)["status"] == "completed"

    run = labctl.open_run(run_dir)
    ts = run.timeseries
    # Nothing flushed before the crash is lost or duplicated.
    assert np.array_equal(ts.test_time_s.to_numpy()[:n_before], before.test_time_s.to_numpy())
    # Time never runs backwards; an instant appears twice only where one step hands over
    # to the next (the same moment seen before and after the set-point changes).
    assert np.all(np.diff(ts.test_time_s.to_numpy()) >= 0)
    assert not ts.duplicated(["step_index", "test_time_s"]).any()
    steps = run.steps
    assert list(steps.step_index) == list(range(1, len(steps) + 1))
    assert (steps.end_kind != "interrupted").all()

    reference = labctl_cmd("run", "procedures/cycling.yaml", "--param", "n_cycles=2", "--results",
                           str(tmp_path / "ref"), "--json")
    ref = labctl.open_run(json_out(reference)["run_dir"])
    assert len(ref.steps) == len(steps)
    assert list(ref.steps.kind) == list(steps.kind)
    # Same physics either way: discharge capacities agree to 0.5 %.
    ref_dis = ref.cycles.discharge_capacity_ah.to_numpy()
    got_dis = run.cycles.discharge_capacity_ah.to_numpy()
    assert np.allclose(got_dis, ref_dis, rtol=5e-3)


def test_safety_limit_aborts_the_run(tmp_path):
    proc_file = _write(tmp_path, "hot.yaml", """
name: hot
safety:
  max_temperature_c: 26.0
steps:
  - Discharge at 2C until 2.5 V
  - Rest for 1 hour
""")
    proc = labctl_cmd("run", str(proc_file), "--cell", "lfp-2p2ah", "--results",
                      str(tmp_path / "results"), "--json")
    assert proc.returncode == 1, proc.stderr
    out = json_out(proc)
    assert out["status"] == "aborted"
    assert out["reason"].startswith("safety: temperature")
    run = labctl.open_run(out["run_dir"])
    assert run.timeseries.temperature_c.iloc[-1] > 26.0  # the crossing sample is kept
    assert run.timeseries.temperature_c.iloc[:-1].max() <= 26.0
    assert len(run.steps) == 1  # the rest never started


def test_chamber_step_waits_for_the_cell(tmp_path):
    proc_file = _write(tmp_path, "warm.yaml", """
name: warm
requires: [cycler, chamber]
log: every 30 s
steps:
  - chamber: {setpoint_c: 40, ramp_c_per_min: 2, tolerance_c: 0.5, stable_for: 10 minutes}
  - Rest for 10 minutes
""")
    out = json_out(labctl_cmd("run", str(proc_file), "--results", str(tmp_path / "r"), "--json",
                              check=True))
    run = labctl.open_run(out["run_dir"])
    first = run.steps.iloc[0]
    assert first.kind == "chamber" and "stable" in first.end_reason
    # A ramp of 2 °C/min from 25 °C cannot reach 40 °C in under 7.5 minutes.
    assert first.duration_s >= 7.5 * 60
    chamber_rows = run.timeseries[run.timeseries.step_index == first.step_index]
    assert abs(chamber_rows.temperature_c.iloc[-1] - 40.0) < 0.5 + 0.3
    assert chamber_rows.temperature_c.iloc[0] < 30.0


def test_missing_role_is_rejected(tmp_path):
    station = _write(tmp_path, "only-cycler.yaml", """
name: one channel
instruments:
  cycler: {driver: sim-cycler}
""")
    proc_file = _write(tmp_path, "warm.yaml", """
name: warm
requires: [cycler, chamber]
steps:
  - chamber: {setpoint_c: 40}
""")
    proc = labctl_cmd("validate", str(proc_file), "--station", str(station))
    assert proc.returncode == 2
    assert "chamber" in proc.stderr


def test_python_procedure_branches_on_results(tmp_path):
    out = json_out(labctl_cmd("run", "procedures/examples/ramp.py", "--results", str(tmp_path),
                              "--json", check=True))
    run = labctl.open_run(out["run_dir"])
    assert run.meta["status"] == "completed"
    assert len(run.steps) >= 2


def test_status_pause_continue_stop_from_another_process(tmp_path):
    results = tmp_path / "results"
    proc = _start(["run", "procedures/cycling.yaml", "--results", str(results), "--no-progress"],
                  speed=600)
    try:
        run_dir = _wait_for_status(results, lambda s: s.get("step_index", 0) >= 1
                                   and s.get("test_time_s", 0) > 60)
        listed = json_out(labctl_cmd("status", "--results", str(results), "--json", check=True))
        assert [r["run_id"] for r in listed["runs"]] == [run_dir.name]
        assert listed["runs"][0]["voltage_v"] > 2.0

        labctl_cmd("pause", run_dir.name, "--results", str(results), check=True)
        _wait_for_status(results, lambda s: s.get("state") == "paused")
        frozen = json.loads((run_dir / "status.json").read_text())["test_time_s"]
        time.sleep(1.0)  # at 600x, a running clock would move ~600 s
        assert json.loads((run_dir / "status.json").read_text())["test_time_s"] == frozen

        labctl_cmd("continue", run_dir.name, "--results", str(results), check=True)
        _wait_for_status(results, lambda s: s.get("state") == "running"
                         and s.get("test_time_s", 0) > frozen + 30)

        labctl_cmd("stop", "--all", "--results", str(results), check=True)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1
    run = labctl.open_run(run_dir)
    assert run.meta["status"] == "aborted" and "labctl stop" in run.meta["reason"]
    log = (run_dir / "log.txt").read_text()
    assert "command received: pause" in log and "command received: continue" in log
    assert "safe state" in log
    # Test time has no gap where the run was paused: the clock stopped with the outputs.
    ts = run.timeseries
    assert np.diff(ts.test_time_s.to_numpy()).max() <= 10.0 + 1e-6


FLAKY_PLUGIN = '''
from labctl.drivers.sim_drivers import make_sim_cycler
from labctl.errors import InstrumentTimeout
from labctl.plugins import DriverInfo, hookimpl
from tests.support import WrappedSimCycler


class FlakyCycler(WrappedSimCycler):
    """Stops answering after a few batches."""

    def __init__(self, inner, answers):
        super().__init__(inner)
        self.left = answers

    def before_batch(self):
        if self.left <= 0:
            raise InstrumentTimeout("no answer from cycler within 2 s (MEAS?)")
        self.left -= 1


@hookimpl
def labctl_drivers():
    return [DriverInfo("flaky-cycler", ("cycler",),
                       lambda b, c: FlakyCycler(make_sim_cycler(b, c), 6), "times out")]
'''


def test_instrument_timeout_faults_the_run_and_keeps_the_data(tmp_path):
    _write(tmp_path, "flaky_plugin.py", FLAKY_PLUGIN)
    station = _write(tmp_path, "flaky.yaml",
                     "name: flaky\nplugins: [flaky_plugin.py]\ninstruments:\n  cycler: {driver: flaky-cycler}\n")
    proc = labctl_cmd("run", "procedures/cycling.yaml", "--station", str(station), "--results",
                      str(tmp_path / "r"), "--json")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    out = json_out(proc)
    assert out["status"] == "faulted" and "no answer from cycler" in out["reason"]
    run = labctl.open_run(out["run_dir"])
    assert len(run.timeseries) > 0  # the samples before the fault are kept
    assert run.steps.iloc[-1].end_kind == "fault"
    assert "safe state" in (tmp_path / "r" / run.path.name / "log.txt").read_text()
