"""`labctl run --batch FILE --scheduler tcp://HOST:8786`: channels on benches of several hosts.

Each channel job is one Dask task that needs its bench's worker resource
(`bench: A` in the batch file -> resource `bench-A`), so only a worker started
with `dask worker ... --resources "bench-A=1"` (the PC wired to bench A) runs it.
The resource's amount is how many of that bench's channels run at once.

Hardware is never retried silently: a job claims its slot in the results store
(`RESULTS/.fleet/batches/<batch>/<bench>-<channel>.json`) before it touches an
instrument. If its worker dies, the scheduler would hand the task to the next
worker with that resource (a restarted worker of the same PC); that attempt finds
the claim and, instead of starting the channel again, marks the run `interrupted`
(naming the dead worker) so that `labctl resume` can continue it. The client watches
too: a claim whose worker left the scheduler ends the job the same way, even when no
worker for that bench comes back.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from labctl.engine.multi import ChannelJob
from labctl.errors import LabctlError

CLAIMS_DIR = Path(".fleet") / "batches"
POLL_S = 0.5
STOP_FILE = "STOP"  # in a batch's claims folder: no job of the batch starts any more


def bench_resource(bench: str) -> str:
    """The Dask worker resource of a bench: `A` -> `bench-A`; `bench-A` stays."""
    bench = str(bench).strip()
    return bench if bench.startswith("bench-") else f"bench-{bench}"


def _slot(job: ChannelJob) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{bench_resource(job.bench or '')}-ch{job.channel}")


def _absolute(job: ChannelJob) -> ChannelJob:
    """Paths as the workers must see them (a shared folder), not relative to this shell."""
    cell = job.cell
    if cell is not None and Path(cell).exists():
        cell = str(Path(cell).resolve())
    return ChannelJob(channel=job.channel, procedure=str(Path(job.procedure).resolve()),
                      cell=cell, station=None if job.station is None else
                      str(Path(job.station).resolve()), params=dict(job.params), bench=job.bench)


# -- on the worker ----------------------------------------------------------------------------

def run_bench_job(job: dict[str, Any], results_root: str, speed: float | None,
                  batch: str) -> dict[str, Any]:
    """One channel on this worker's bench (a Dask task). Never raises for a run's fate."""
    from distributed import get_worker

    from labctl.engine.control import RunControl
    from labctl.engine.multi import on_channel
    from labctl.engine.session import prepare, start_run
    from labctl.fleet.tasks import first_imports

    cj = ChannelJob(**job)
    worker = get_worker()
    row = {"channel": cj.channel, "bench": cj.bench, "worker": str(worker.name),
           "status": "faulted", "reason": "", "run_dir": None, "summary": {}}
    claim = Path(results_root) / CLAIMS_DIR / batch / f"{_slot(cj)}.json"
    try:
        claim.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        # An earlier attempt of this very job started on a worker that then died.
        return interrupted_row(cj, results_root, batch, _read_claim(claim))
    with os.fdopen(fd, "w") as fh:
        json.dump({"worker": str(worker.name), "address": worker.address,
                   "host": socket.gethostname(), "pid": os.getpid(),
                   "claimed_unix_s": time.time()}, fh)
    if (claim.parent / STOP_FILE).exists():  # Ctrl-C on the client while this was queued
        row.update(status="not started", reason="Ctrl-C on the batch's client before it started")
        return row
    try:
        with first_imports:  # labctl/fleet/tasks.py: tasks of one worker start at once
            prep = on_channel(prepare(cj.procedure, station_path=cj.station, cell_ref=cj.cell,
                                      params=cj.params), cj.channel)
        fleet = {"bench": cj.bench, "worker": str(worker.name), "batch": batch,
                 "channel": cj.channel}
        outcome = start_run(prep, results_root=results_root, control=RunControl(), speed=speed,
                            meta_extra={"fleet": fleet})
    except Exception as exc:  # reported per channel; the other channels carry on
        row["reason"] = f"{type(exc).__name__}: {exc}"
        return row
    row.update(status=outcome.status, reason=outcome.reason, run_dir=str(outcome.path),
               summary=outcome.summary)
    return row


def _read_claim(claim: Path) -> dict[str, Any]:
    try:
        value = json.loads(claim.read_text(encoding="utf-8"))
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def find_job_run(results_root: str | Path, batch: str, job: ChannelJob) -> Path | None:
    """The run directory a job of `batch` created (its run.json names batch and channel)."""
    for meta_file in Path(results_root).glob("*/run.json"):
        try:
            fleet = json.loads(meta_file.read_text(encoding="utf-8")).get("fleet") or {}
        except (OSError, ValueError, AttributeError):
            continue
        if (fleet.get("batch") == batch and str(fleet.get("channel")) == job.channel
                and fleet.get("bench") == job.bench):
            return meta_file.parent
    return None


def interrupted_row(job: ChannelJob, results_root: str | Path, batch: str,
                    claim: dict[str, Any]) -> dict[str, Any]:
    """Mark the job's run interrupted (resumable) because its worker died; the row to report."""
    from labctl.store.rundir import RunDir

    worker = claim.get("worker", "?")
    where = f"worker {worker}" + (f" on {claim['host']}" if claim.get("host") else "")
    run_dir = find_job_run(results_root, batch, job)
    if run_dir is None:
        reason = (f"{where} died before the run started; nothing was measured and the "
                  "channel was not started elsewhere")
    else:
        reason = (f"{where} died during the run; not restarted on another bench. "
                  f"Resume it with: labctl resume {run_dir}")
        try:
            rundir = RunDir.open(run_dir)
            if rundir.meta.get("status") == "running":
                rundir.update_meta(status="interrupted", reason=reason)
        except LabctlError:
            pass
    return {"channel": job.channel, "bench": job.bench, "worker": worker,
            "status": "interrupted", "reason": reason,
            "run_dir": None if run_dir is None else str(run_dir), "summary": {}}


# -- on the client ----------------------------------------------------------------------------

def check_benches(client: Any, jobs: list[ChannelJob]) -> None:
    """Every bench the batch names has a worker with its resource; else nothing starts."""
    workers = client.scheduler_info().get("workers", {})
    offered: dict[str, list[str]] = {}
    for info in workers.values():
        for res in (info.get("resources") or {}):
            offered.setdefault(res, []).append(str(info.get("name")))
    missing = sorted({bench_resource(j.bench) for j in jobs if j.bench} - set(offered))
    if missing:
        have = ", ".join(f"{r} ({', '.join(n)})" for r, n in sorted(offered.items())) or "none"
        raise LabctlError(
            f"no worker of the scheduler serves {', '.join(missing)}; start one on the bench's PC "
            f"with: dask worker SCHEDULER --resources \"{missing[0]}=1\". Resources offered: {have}")


def run_batch_on_scheduler(jobs: list[ChannelJob], *, results_root: str | Path,
                           scheduler: str | None = None, client: Any = None,
                           speed: float | None = None) -> list[dict[str, Any]]:
    """Validate every channel here, then run each on its bench's worker; rows in job order."""
    from labctl.engine.multi import prepare_all

    no_bench = [j.channel for j in jobs if not j.bench]
    if no_bench:
        raise LabctlError(f"with --scheduler every channel names its bench (bench: A, or a "
                          f"top-level 'bench:'); channel(s) {', '.join(no_bench)} do not")
    jobs = [_absolute(j) for j in jobs]
    prepare_all(jobs)  # nothing starts unless every channel is valid
    root = str(Path(results_root).resolve())
    if client is not None:
        return _submit(client, jobs, root, speed)
    from labctl.fleet.cluster import fleet_client

    with fleet_client(scheduler=scheduler) as own:
        return _submit(own, jobs, root, speed)


def _submit(client: Any, jobs: list[ChannelJob], root: str, speed: float | None
            ) -> list[dict[str, Any]]:
    check_benches(client, jobs)
    batch = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    futures = [client.submit(run_bench_job, asdict(j), root, speed, batch,
                             key=f"labctl-run-{batch}-{_slot(j)}",
                             resources={bench_resource(j.bench): 1}, retries=0, pure=False)
               for j in jobs]
    rows: dict[int, dict[str, Any]] = {}
    claims = Path(root) / CLAIMS_DIR / batch
    # Ctrl-C only sets a flag: a KeyboardInterrupt raised inside Dask's client machinery
    # can be swallowed there. A second Ctrl-C interrupts for real.
    interrupted: list[bool] = []
    stopped = False

    def on_sigint(signum: int, frame: Any) -> None:
        if interrupted:
            raise KeyboardInterrupt
        interrupted.append(True)

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        while len(rows) < len(jobs):
            if interrupted and not stopped:
                # Stop every started run safely (as `labctl stop` does), then keep
                # collecting their outcomes: the runs end `aborted` with outputs off.
                stopped = True
                _stop_all(root, batch, jobs)
                for k, future in enumerate(futures):  # queued jobs never start
                    if k not in rows and not (claims / f"{_slot(jobs[k])}.json").exists():
                        future.cancel()
                        rows[k] = {"channel": jobs[k].channel, "bench": jobs[k].bench,
                                   "worker": None, "status": "not started",
                                   "reason": "Ctrl-C on the batch's client before it started",
                                   "run_dir": None, "summary": {}}
            _poll(client, futures, jobs, rows, claims, root, batch)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    return [rows[k] for k in range(len(jobs))]


def _poll(client: Any, futures: list, jobs: list[ChannelJob], rows: dict[int, dict[str, Any]],
          claims: Path, root: str, batch: str) -> None:
    """Wait a little for results; end the jobs whose claimed worker left the scheduler."""
    from distributed import wait

    pending = [f for k, f in enumerate(futures) if k not in rows]
    try:
        wait(pending, timeout=POLL_S, return_when="FIRST_COMPLETED")
    except TimeoutError:
        pass
    alive = {str(a) for a in client.scheduler_info().get("workers", {})}
    for k, future in enumerate(futures):
        if k in rows:
            continue
        if future.done():
            rows[k] = _result(future, jobs[k])
            continue
        claim = _read_claim(claims / f"{_slot(jobs[k])}.json")
        if claim.get("address") and claim["address"] not in alive:
            future.cancel()  # its worker is gone: never run it on another one
            rows[k] = interrupted_row(jobs[k], root, batch, claim)


def _result(future: Any, job: ChannelJob) -> dict[str, Any]:
    try:
        return future.result()
    except Exception as exc:  # KilledWorker, cancelled...
        return {"channel": job.channel, "bench": job.bench, "worker": None,
                "status": "faulted", "reason": f"{type(exc).__name__}: {exc}", "run_dir": None,
                "summary": {}}


def _stop_all(root: str, batch: str, jobs: list[ChannelJob]) -> None:
    from labctl.engine.control import send_command

    folder = Path(root) / CLAIMS_DIR / batch
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / STOP_FILE).write_text("Ctrl-C on the batch's client\n")
    except OSError:
        pass

    for job in jobs:
        run_dir = find_job_run(root, batch, job)
        if run_dir is not None:
            try:
                send_command(run_dir, "stop", reason="Ctrl-C on the batch's client")
            except LabctlError:
                pass
