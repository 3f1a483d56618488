"""Instruments that drop out, and a results disk that fills up: safe stop, nothing lost.

A cycler that stops answering mid-step is reconnected with backoff when the
station file allows it, and the step goes on for what is left of it; without a
policy (or when reconnecting keeps failing) the run is faulted with the reason.
A journal that cannot be written (disk full) stops the run safely and keeps
every sample written before.
"""

from __future__ import annotations

import errno
import os
import textwrap

import numpy as np
import pytest

import labctl
from labctl.engine.control import RunControl
from labctl.engine.multi import ChannelJob, prepare_all, run_channels
from labctl.engine.session import prepare, start_run
from labctl.errors import ValidationError

DROPOUT_PLUGIN = '''
from dataclasses import replace

from labctl.drivers.sim_drivers import make_sim_cycler
from labctl.errors import InstrumentError
from labctl.plugins import DriverInfo, hookimpl
from tests.support import WrappedSimCycler

FAILURES = {"builds": 0}


class DropoutCycler(WrappedSimCycler):
    """Drops out after `drop_after` batches (None: never)."""

    def __init__(self, inner, drop_after):
        super().__init__(inner)
        self.drop_after = drop_after

    def before_batch(self):
        if self.drop_after is not None and self.drop_after <= 0:
            raise InstrumentError("USB device disconnected (read failed)")
        if self.drop_after is not None:
            self.drop_after -= 1


def build(binding, context):
    # The first `failing_builds` instances drop out; rebuilt ones (reconnects) behave.
    FAILURES["builds"] += 1
    bad = binding.settings.get("failing_builds", 1)
    drop = 1 if FAILURES["builds"] <= bad else None
    settings = {k: v for k, v in binding.settings.items() if k != "failing_builds"}
    return DropoutCycler(make_sim_cycler(replace(binding, settings=settings), context), drop)


@hookimpl
def labctl_drivers():
    return [DriverInfo("dropout-cycler", ("cycler",), build, "drops out")]
'''

# Logged every second, the discharge comes in several batches (the simulator computes
# at most a few thousand samples at a time), so the dropout falls inside the step.
PROCEDURE = """\
log: every 1 s
steps:
  - Discharge at C/4 for 100 min
  - Rest for 10 min
"""


def _setup(tmp_path, reconnect: str, failing_builds: int = 1):
    (tmp_path / "dropout_plugin.py").write_text(DROPOUT_PLUGIN)
    station = tmp_path / "station.yaml"
    station.write_text(textwrap.dedent(f"""\
        name: dropout bench
        plugins: [dropout_plugin.py]
        instruments:
          cycler:
            driver: dropout-cycler
            failing_builds: {failing_builds}
            {reconnect}
        """))
    proc = tmp_path / "proc.yaml"
    proc.write_text(PROCEDURE)
    return station, proc


def test_reconnect_with_backoff_continues_the_step(tmp_path):
    station, proc = _setup(tmp_path, "reconnect: {attempts: 2, backoff: 0.01 s}")
    out = start_run(prepare(proc, station_path=station), results_root=tmp_path / "r")
    assert out.status == "completed", out.reason
    run = labctl.open_run(out.path)
    log = (out.path / "log.txt").read_text()
    assert "reconnecting in 0.01 s (attempt 1 of 2)" in log and "reconnected (attempt 1)" in log
    first = run.steps.iloc[0]
    # The step still lasted its 100 min and moved C/4 x 100 min of charge: it went on where it
    # stopped, with the cell's state kept across the reconnection.
    fault_t = next(e["test_time_s"] for e in run.events if "reconnecting" in e.get("message", ""))
    assert 100 < fault_t < 5900
    assert first.duration_s == pytest.approx(6000, abs=1.0)
    assert first.discharge_capacity_ah == pytest.approx(0.55 * 6000 / 3600, rel=0.01)
    ts = run.timeseries
    t = ts[ts.step_index == 1].test_time_s.to_numpy()
    assert np.all(np.diff(t) > 0)  # no sample twice
    assert np.diff(t).max() <= 1.0 + 1e-6  # and no hole in the record


def test_without_a_policy_the_run_faults_and_keeps_the_data(tmp_path):
    station, proc = _setup(tmp_path, "")
    out = start_run(prepare(proc, station_path=station), results_root=tmp_path / "r")
    assert out.status == "faulted"
    assert "USB device disconnected" in out.reason
    run = labctl.open_run(out.path)
    assert len(run.timeseries) > 0
    assert "safe state" in (out.path / "log.txt").read_text()


def test_reconnect_gives_up_after_its_attempts(tmp_path):
    station, proc = _setup(tmp_path, "reconnect: {attempts: 2, backoff: 0.01 s}", failing_builds=5)
    out = start_run(prepare(proc, station_path=station), results_root=tmp_path / "r")
    assert out.status == "faulted"
    assert "after 2 reconnection attempts" in out.reason


def test_bad_reconnect_settings_are_located(tmp_path):
    station, proc = _setup(tmp_path, "reconnect: {attempts: -1, backoff: 3 parsecs, wait: 1}")
    with pytest.raises(ValidationError) as info:
        prepare(proc, station_path=station)
    problems = info.value.problems
    fields = sorted(p.field for p in problems)
    assert fields == ["instruments.cycler.reconnect.attempts",
                      "instruments.cycler.reconnect.backoff",
                      "instruments.cycler.reconnect.wait"]
    assert all(p.line == 7 for p in problems)


def test_one_faulting_channel_does_not_stop_the_others(tmp_path):
    station, proc = _setup(tmp_path, "", failing_builds=1)
    good = tmp_path / "good.yaml"
    good.write_text((tmp_path / "station.yaml").read_text().replace("failing_builds: 1",
                                                                    "failing_builds: 0"))
    jobs = [ChannelJob("1", str(proc), station=str(station)),
            ChannelJob("2", str(proc), station=str(good))]
    prepared = prepare_all(jobs)
    outcomes = run_channels(prepared, results_root=tmp_path / "r",
                            controls=[RunControl(), RunControl()])
    statuses = sorted(o.status for o in outcomes)
    assert statuses == ["completed", "faulted"]


def test_disk_full_mid_run_stops_safely_and_keeps_what_was_written(tmp_path, monkeypatch):
    proc = tmp_path / "proc.yaml"
    proc.write_text(PROCEDURE)
    prep = prepare(proc)
    real_writev = os.writev
    calls = {"n": 0}

    def filling_disk(fd, buffers):
        calls["n"] += 1
        if calls["n"] > 6:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_writev(fd, buffers)

    monkeypatch.setattr(os, "writev", filling_disk)
    out = start_run(prep, results_root=tmp_path / "r")
    monkeypatch.setattr(os, "writev", real_writev)
    assert out.status == "faulted"
    assert "disk is full" in out.reason
    log = (out.path / "log.txt").read_text()
    assert "all outputs set to a safe state" in log
    run = labctl.open_run(out.path)
    t = run.timeseries.test_time_s.to_numpy()
    assert len(t) > 10 and np.all(np.diff(t) > 0)
    assert run.meta["status"] == "faulted"


def test_read_only_results_folder_is_a_clear_error_before_anything_starts(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from labctl.cli import main

    real_open, real_mkdir = os.open, os.mkdir
    root = str(tmp_path / "results")

    def read_only_open(path, flags, *args, **kwargs):
        if str(path).startswith(root) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(path, flags, *args, **kwargs)

    def read_only_mkdir(path, *args, **kwargs):
        if str(path).startswith(root):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only_open)
    monkeypatch.setattr(os, "mkdir", read_only_mkdir)
    result = CliRunner().invoke(main, ["run", "procedures/quickstart.yaml", "--results", root,
                                       "--no-progress"])
    assert result.exit_code == 2, result.output
    assert "read-only" in result.output
    assert "Traceback" not in result.output


GARBAGE_PLUGIN = '''
import numpy as np

from labctl.drivers.sim_drivers import make_sim_cycler
from labctl.plugins import DriverInfo, hookimpl
from tests.support import WrappedSimCycler


class GarbageCycler(WrappedSimCycler):
    """Its second batch has a sample it could not parse (NaN)."""

    batches = 0

    def on_batch(self, batch):
        self.batches += 1
        if self.batches == 2 and len(batch.voltage_v) > 10:
            batch.voltage_v = batch.voltage_v.copy()
            batch.voltage_v[10] = np.nan
        return batch


@hookimpl
def labctl_drivers():
    return [DriverInfo("garbage-cycler", ("cycler",),
                       lambda b, c: GarbageCycler(make_sim_cycler(b, c)), "answers garbage")]
'''


def test_garbage_from_the_instrument_faults_and_keeps_the_good_samples(tmp_path):
    (tmp_path / "garbage_plugin.py").write_text(GARBAGE_PLUGIN)
    station = tmp_path / "station.yaml"
    station.write_text("name: garbage\nplugins: [garbage_plugin.py]\ninstruments:\n  cycler: {driver: garbage-cycler}\n")
    proc = tmp_path / "proc.yaml"
    proc.write_text(PROCEDURE)
    out = start_run(prepare(proc, station_path=station), results_root=tmp_path / "r")
    assert out.status == "faulted"
    assert "unusable sample" in out.reason and "nan" in out.reason
    ts = labctl.open_run(out.path).timeseries
    assert np.isfinite(ts.voltage_v).all()
    # Everything of the first batch plus the 10 good samples of the second is kept.
    assert len(ts) > 10
    assert "safe state" in (out.path / "log.txt").read_text()
