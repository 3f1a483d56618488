"""Estimates from `labctl plan` (labctl.plan): how its child process is run, and the
remaining time on each running tile (the Start form's plan: console/plans.py).

The remaining time of a run is its plan's duration (the procedure run on the
station's simulated twin, as `labctl plan` does) minus the test time reached.
Plans are made by `labctl plan --json` in a child process (low priority), one at a
time from a background thread, once per distinct procedure, cell, station and
parameters (64 channels of the same test share one plan); a tile
shows "-" until its plan is ready, and the watcher never waits for one.
"""

from __future__ import annotations

import json
import math
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any


def finite(value: Any) -> Any:
    """JSON for the browser: NaN and infinities (a step never run) become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


class RemainingEstimator:
    """(run folder, run.json, status.json) -> (seconds left, planned steps), None while unknown."""

    def __init__(self) -> None:
        # plan key -> (duration s, number of steps); None while planning or when it failed
        self._durations: dict[str, tuple[float, int] | None] = {}
        self._keys: dict[str, str] = {}  # run folder -> plan key
        self._queue: queue.Queue[tuple[str, Path, dict]] = queue.Queue()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None

    def __call__(self, folder: Path, meta: dict, live: dict) -> tuple[float, int] | None:
        key = self._key(folder, meta)
        with self._lock:
            if key not in self._durations:
                self._durations[key] = None
                self._queue.put((key, folder, meta))
                self._start()
            planned = self._durations.get(key)
        elapsed = live.get("test_time_s")
        if planned is None or not isinstance(elapsed, (int, float)):
            return None
        return max(0.0, planned[0] - float(elapsed)), planned[1]

    def _key(self, folder: Path, meta: dict) -> str:
        key = self._keys.get(str(folder))
        if key is None:
            proc = meta.get("procedure") if isinstance(meta.get("procedure"), dict) else {}
            cell = meta.get("cell") if isinstance(meta.get("cell"), dict) else {}
            station = meta.get("station") if isinstance(meta.get("station"), dict) else {}
            key = json.dumps([proc.get("sha256") or str(folder), cell.get("name"),
                              station.get("file"), meta.get("param_overrides")],
                             sort_keys=True, default=str)
            self._keys[str(folder)] = key
        return key

    def _start(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._work, name="console-plans", daemon=True)
            self._worker.start()

    def _work(self) -> None:
        while True:
            try:
                key, folder, meta = self._queue.get(timeout=5)
            except queue.Empty:
                return
            duration = plan_duration(folder, meta)
            with self._lock:
                self._durations[key] = duration


PLAN_TIMEOUT_S = 300.0
PLAN_NICE = 10  # plans are advice: the runs on this PC come first


def plan_command(procedure: Path, station: Path | None = None, cell: str | None = None,
                 params: dict[str, str] | None = None) -> list[str]:
    """`labctl plan PROCEDURE ... --json` as `python -m labctl.cli` (the same labctl)."""
    import sys

    cmd = [sys.executable, "-m", "labctl.cli", "plan", str(procedure), "--json"]
    if station is not None:
        cmd += ["--station", str(station)]
    if cell:
        cmd += ["--cell", cell]
    for name, value in (params or {}).items():
        cmd += ["--param", f"{name}={value}"]
    return cmd


def run_niced(cmd: list[str], *, cwd: Path | None = None, timeout_s: float = PLAN_TIMEOUT_S,
              cancelled: Callable[[], bool] = lambda: False) -> tuple[int | None, str, str]:
    """Run a child at low priority: (exit status, stdout, stderr); status None when it was
    killed because it took longer than `timeout_s` or `cancelled()` became true.

    The priority is set from here (setpriority), not with preexec_fn, which is unsafe in
    a process with threads; output goes to files, as a plan's JSON can fill a pipe.
    """
    import os
    import subprocess
    import tempfile
    import time

    from labctl.console.launch import child_env

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                env=child_env(), cwd=cwd, close_fds=True)
        try:
            os.setpriority(os.PRIO_PROCESS, proc.pid, PLAN_NICE)
        except OSError:
            pass  # it may have ended already
        deadline = time.monotonic() + timeout_s
        status: int | None = None
        while True:
            try:
                status = proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline or cancelled():
                    proc.kill()
                    proc.wait()
                    break
        out.seek(0)
        err.seek(0)
        return status, out.read().decode("utf-8", "replace"), \
            err.read().decode("utf-8", "replace")


def plan_duration(folder: Path, meta: dict) -> tuple[float, int] | None:
    """The planned duration and number of steps of a run, from the inputs it keeps
    (procedure, cell, station) and its parameters.

    `labctl plan --json` runs in a child process at low priority: a long procedure's
    plan is seconds of CPU that must not hold up the console (the GIL) or the runs.
    """
    inputs = folder / "inputs"
    procedure = next(iter(sorted(inputs.glob("procedure.*"))), None)
    if procedure is None:
        return None
    station = inputs / "station.yaml"
    cell = inputs / "cell.yaml"
    params = meta.get("param_overrides") if isinstance(meta.get("param_overrides"), dict) else {}
    cmd = plan_command(procedure, station if station.is_file() else None,
                       str(cell) if cell.is_file() else None,
                       {str(k): str(v) for k, v in params.items()})
    try:
        _, stdout, _ = run_niced(cmd, cwd=folder)
        report = json.loads(stdout)
        return float(report["run_duration_s"]), int(report["n_steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # an estimate is advice: never a reason for a tile to fail
