"""RUN/control/: hostile entries never block the engine; stale commands never stop a resume.

Issue 13 §3: a FIFO dropped into RUN/control/ blocked the engine mid-step with the
current on, and `labctl stop` was never read (High); a `stop` queued before a crash
aborted the resumed run at once (Low).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pandas as pd

from labctl.engine.control import CommandInbox, RunControl, send_command
from labctl.engine.observer import RunObserver
from labctl.engine.session import prepare, resume_run, start_run
from tests.hostile.helpers import as_interrupted, record_boundaries
from tests.support import REPO


def _hostile_entries(inbox: Path) -> None:
    inbox.mkdir(exist_ok=True)
    os.mkfifo(inbox / "00000000000000000000-fifo-stop.json")  # sorts before real commands
    os.symlink("/dev/zero", inbox / "00000000000000000001-zero.json")
    (inbox / "00000000000000000002-huge.json").write_bytes(b" " * (2 << 20))


def test_inbox_skips_fifo_device_and_huge_files_and_still_reads_stop(tmp_path):
    _hostile_entries(tmp_path / "control")
    send_command(tmp_path, "stop", "by test")
    control = RunControl()
    done = threading.Event()
    thread = threading.Thread(target=lambda: (CommandInbox(tmp_path, control).poll(force=True),
                                              done.set()), daemon=True)
    thread.start()
    assert done.wait(10), "the inbox blocked on a non-regular file"
    assert control.abort_reason == "by test"


class FifoThenStop(RunObserver):
    """After the first samples: a FIFO, /dev/zero and a stop land in the run's inbox."""

    def __init__(self, results: Path):
        self.results = results
        self.done = False

    def samples(self, columns):
        if self.done:
            return
        self.done = True
        run = next(p for p in self.results.iterdir() if p.is_dir())
        _hostile_entries(run / "control")
        send_command(run, "stop", "stop after the fifo")
        time.sleep(0.3)  # past the inbox's poll interval: the next batch polls it


def test_fifo_in_control_does_not_block_a_running_step(tmp_path):
    prep = prepare(REPO / "procedures" / "cycling.yaml")
    results = tmp_path / "results"
    outcome = {}
    thread = threading.Thread(
        target=lambda: outcome.update(out=start_run(prep, results_root=results,
                                                    observer=FifoThenStop(results))),
        daemon=True)
    thread.start()
    thread.join(120)
    assert not thread.is_alive(), "the engine blocked on a FIFO in RUN/control/"
    assert outcome["out"].status == "aborted"
    assert "stop after the fifo" in outcome["out"].reason


def test_stop_queued_before_a_crash_does_not_abort_the_resumed_run(tmp_path):
    proc = tmp_path / "short.yaml"
    proc.write_text("name: short\nsteps:\n  - Rest for 10 min\n  - Rest for 10 min\n")
    out = start_run(prepare(proc), results_root=tmp_path / "results")
    run = out.path
    # Make it look crashed after its first step: journal cut, process gone.
    first_end = next(end for end, what in record_boundaries(run / "journal.bin")
                     if what == "step_end")
    as_interrupted(run, first_end)
    send_command(run, "stop", "sent while the run was down")
    resumed = resume_run(run)
    assert resumed.status == "completed", resumed.reason
    steps = pd.read_parquet(run / "steps.parquet")
    assert len(steps) == 2 and steps["end_kind"].iloc[-1] != "aborted"
    log = (run / "log.txt").read_text()
    assert "ignored command(s) queued before this session: stop" in log
    assert not list((run / "control").glob("*.json"))
