"""The plan next to Start: `labctl plan --json` for a checked choice, made in the background.

The Check (validate's rough plan) decides whether Start is allowed; the plan the
form shows is the full one `labctl plan --json` makes, with the same procedure,
station, cell and parameters. It runs in a child process at low priority (see
estimate.run_niced), started by a thread of its own, at most MAX_PARALLEL at a
time, so no request of the console ever waits for it: the browser asks
`GET /api/plan/ID` until it is ready.

A plan is made once per choice (and file contents: the key holds each file's size
and modification time) and kept for the next Check of the same choice. A plan
that nobody asks about any more (the operator changed the form) is stopped.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from labctl.console.estimate import PLAN_TIMEOUT_S, finite, plan_command, run_niced
from labctl.console.planview import plan_view, readable

MAX_PARALLEL = 2  # plans running at once (a 2-core lab PC also runs its benches)
KEEP = 32  # finished plans kept for a Check of the same choice
IDLE_S = 120.0  # a plan nobody has asked about for this long is stopped...
IDLE_WHEN_QUEUED_S = 10.0  # ...or for this long, when another plan waits for its turn


@dataclass
class PlanJob:
    id: str
    cmd: list[str]
    state: str = "planning"  # planning | ready | failed
    view: dict[str, Any] | None = None
    error: str | None = None
    started: float = field(default_factory=time.monotonic)
    asked: float = field(default_factory=time.monotonic)  # last request or poll
    queued: bool = True  # waiting for one of the MAX_PARALLEL slots
    abandoned: bool = False  # stopped because nobody asked for it
    run_duration_s: float | None = None


def _stamp(path: str | Path) -> list[Any]:
    try:
        st = Path(path).stat()
        return [str(path), st.st_size, st.st_mtime_ns]
    except OSError:
        return [str(path)]  # a preset's name, or a file gone since


class PlanJobs:
    """Full plans of Start-form choices, each made once in a low-priority child process."""

    def __init__(self, max_parallel: int = MAX_PARALLEL) -> None:
        self._jobs: dict[str, PlanJob] = {}
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(max_parallel)
        self._waiting = 0
        self._running = 0
        self._closed = False

    def request(self, procedure: Path, station: Path, cell: str,
                params: dict[str, str]) -> str:
        """The id of the plan of this choice; started now unless made or under way."""
        key = json.dumps([_stamp(procedure), _stamp(station), _stamp(cell),
                          sorted(params.items())])
        job_id = hashlib.sha256(key.encode()).hexdigest()[:20]
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None and job.state != "failed":
                job.asked = time.monotonic()
                return job_id
            job = PlanJob(job_id, plan_command(procedure, station, cell, params))
            self._jobs[job_id] = job
            self._forget_old()
        threading.Thread(target=self._make, args=(job,), name=f"console-plan-{job_id[:8]}",
                         daemon=True).start()
        return job_id

    def poll(self, job_id: str) -> dict[str, Any] | None:
        """{"state": "planning", "elapsed_s"} | {"state": "ready", "plan"} |
        {"state": "failed", "error"}; None for an unknown (or stopped) plan."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            job.asked = time.monotonic()
        if job.state == "planning":
            # queued: waiting for a slot (the seconds so far are not planning time)
            return {"state": "planning", "queued": job.queued,
                    "elapsed_s": time.monotonic() - job.started}
        if job.state == "failed":
            return {"state": "failed", "error": job.error}
        view = dict(job.view or {})
        summary = dict(view.get("summary") or {})
        if summary.get("expected_end") and job.run_duration_s is not None:
            # "if started now": now is when it is shown, not when the plan was made
            summary["expected_end"] = (datetime.now().astimezone() + timedelta(
                seconds=job.run_duration_s)).isoformat(timespec="seconds")
        view["summary"] = summary
        return {"state": "ready", "plan": view}

    @property
    def closed(self) -> bool:
        """The console is stopping: no more plans or checks."""
        return self._closed

    def close(self, wait_s: float = 2.0) -> None:
        """Stop every plan under way (the console is stopping): no child outlives it."""
        self._closed = True
        deadline = time.monotonic() + wait_s
        while self._running and time.monotonic() < deadline:
            time.sleep(0.05)

    def _make(self, job: PlanJob) -> None:
        with self._lock:
            self._waiting += 1
        try:
            while not self._slots.acquire(timeout=0.5):
                if self._abandoned(job, queued=True):
                    return self._drop(job)
        finally:
            with self._lock:
                self._waiting -= 1
        with self._lock:
            self._running += 1
        try:
            job.started = time.monotonic()
            job.queued = False
            if self._abandoned(job):  # nobody asked while it waited for its turn
                return self._drop(job)

            def cancelled() -> bool:
                job.abandoned = job.abandoned or self._abandoned(job)
                return job.abandoned

            status, stdout, stderr = run_niced(job.cmd, timeout_s=PLAN_TIMEOUT_S,
                                               cancelled=cancelled)
        except Exception as exc:  # e.g. no fork under load: failed, never "planning" for good
            job.error = f"the plan could not be started: {type(exc).__name__}: {exc}"
            job.state = "failed"
            return None
        finally:
            with self._lock:
                self._running -= 1
            self._slots.release()
        if status is None and job.abandoned:  # killed for want of a reader, not too slow
            return self._drop(job)
        try:
            self._finish(job, status, stdout, stderr)
        except Exception as exc:  # a plan the view cannot read must not stay "planning"
            job.error = f"the plan could not be shown: {type(exc).__name__}: {exc}"
            job.state = "failed"

    def _abandoned(self, job: PlanJob, queued: bool = False) -> bool:
        if self._closed:
            return True
        idle = IDLE_WHEN_QUEUED_S if (self._waiting and not queued) else IDLE_S
        return time.monotonic() - job.asked > idle

    def _drop(self, job: PlanJob) -> None:
        with self._lock:
            if self._jobs.get(job.id) is job:
                del self._jobs[job.id]

    def _finish(self, job: PlanJob, status: int | None, stdout: str, stderr: str) -> None:
        try:
            plan = json.loads(stdout) if stdout.strip() else None
        except ValueError:
            plan = None
        if status is None:
            job.error = f"planning took longer than {PLAN_TIMEOUT_S:g} s and was stopped"
        elif isinstance(plan, dict) and plan.get("ok") and status == 0:
            plan = finite(plan)
            job.run_duration_s = plan.get("run_duration_s")
            job.view = plan_view(plan)
        elif isinstance(plan, dict) and plan.get("error"):
            job.error = readable(str(plan["error"]))
        else:
            job.error = f"labctl plan failed (exit status {status}): " + (
                stderr.strip()[-2000:] or "no output")
        job.state = "ready" if job.view is not None else "failed"

    def _forget_old(self) -> None:
        """Keep the KEEP most recently asked finished plans (those under way all stay)."""
        done = sorted((j for j in self._jobs.values() if j.state != "planning"),
                      key=lambda j: j.asked)
        for job in done[:max(0, len(done) - KEEP)]:
            del self._jobs[job.id]
