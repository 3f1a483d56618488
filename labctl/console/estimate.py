"""Estimates from `labctl plan` (labctl.plan): the duration shown after a passing Check,
and the remaining time on each running tile.

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
from pathlib import Path
from typing import Any


def estimate_of(report: Any) -> dict[str, Any]:
    """What the Start form shows: `labctl validate`'s estimate line and its numbers, and the
    plan next to Start (`labctl plan --json`'s fields: outcome, expected end, maximum
    temperature, steps folded per loop, smallest margin to each safety limit, warnings)."""
    from labctl.plan.report import one_line

    plan = report.as_dict()
    keep = ("status", "reason", "expected_end", "run_duration_s", "max_temperature_c",
            "steps", "margins", "warnings", "notes", "approximate", "planning_wall_s")
    return {"duration_s": report.run_duration_s, "n_samples": report.run_samples,
            "text": one_line(report), "warnings": list(report.warnings),
            "plan": _finite({k: plan[k] for k in keep})}


def _finite(value: Any) -> Any:
    """JSON for the browser: NaN and infinities (a step never run) become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
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


def plan_duration(folder: Path, meta: dict) -> tuple[float, int] | None:
    """The planned duration and number of steps of a run, from the inputs it keeps
    (procedure, cell, station) and its parameters.

    `labctl plan --json` runs in a child process at low priority: a long procedure's
    plan is seconds of CPU that must not hold up the console (the GIL) or the runs.
    """
    import os
    import subprocess
    import sys

    inputs = folder / "inputs"
    procedure = next(iter(sorted(inputs.glob("procedure.*"))), None)
    if procedure is None:
        return None
    cmd = [sys.executable, "-m", "labctl.cli", "plan", str(procedure), "--json"]
    for option, name in (("--station", "station.yaml"), ("--cell", "cell.yaml")):
        if (inputs / name).is_file():
            cmd += [option, str(inputs / name)]
    params = meta.get("param_overrides") if isinstance(meta.get("param_overrides"), dict) else {}
    for name, value in params.items():
        cmd += ["--param", f"{name}={value}"]
    from labctl.console.launch import child_env

    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=PLAN_TIMEOUT_S,
                              env=child_env(), cwd=folder, preexec_fn=lambda: os.nice(10))
        report = json.loads(done.stdout)
        return float(report["run_duration_s"]), int(report["n_steps"])
    except (OSError, ValueError, KeyError, TypeError, subprocess.SubprocessError):
        return None  # an estimate is advice: never a reason for a tile to fail
