"""Start and resume runs: validate first, then build the station, run, finalize.

Nothing touches an instrument until the procedure, the cell and the station
have all been read and checked against each other (`prepare`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from labctl.clock import VirtualClock, WallClock
from labctl.engine.control import RunControl
from labctl.engine.observer import RunObserver
from labctl.engine.prepare import Prepared, prepare
from labctl.engine.resume import check_inputs_unchanged, restore_instruments, resume_state
from labctl.engine.runner import Engine
from labctl.errors import LabctlError, StorageError
from labctl.plugins import file_sha256
from labctl.stations.build import make_clock, open_station, pace
from labctl.store.atomic import fsync_dir, remove_stale_temp_files, side_by_side
from labctl.store.finalize import finalize
from labctl.store.journal import JournalWriter
from labctl.store.run import summarize
from labctl.store.rundir import RunDir, RunDirExists, effective_status, host_name, new_run_id

if TYPE_CHECKING:
    from labctl.store.table_writer import TableWriter

DEFAULT_RESULTS = "results"


@dataclass
class RunOutcome:
    """How a run ended: its folder, status, reason and summary."""

    path: Path
    status: str
    reason: str
    summary: dict[str, Any]


def _save_companions(rundir: RunDir, prep: Prepared) -> None:
    """Copies of the files the inputs refer to: a cell's CSV tables (at the same relative
    path as beside the cell file, so inputs/cell.yaml loads as it is) and included
    procedure files (under inputs/included/)."""
    from labctl.store.atomic import atomic_write_bytes

    inputs = rundir.path / "inputs"
    cell_dir = Path(prep.cell.source).resolve().parent if prep.cell.source else None
    for table in prep.cell.extra.get("table_files", []) if prep.cell.extra else []:
        src = Path(table).resolve()
        rel = Path(os.path.relpath(src, cell_dir)) if cell_dir else Path(src.name)
        if rel.is_absolute() or ".." in rel.parts:
            rel = Path(src.name)
        try:
            (inputs / rel).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(inputs / rel, src.read_bytes())
        except OSError:
            pass  # the cell was loaded from it moments ago; a copy is a convenience
    included = prep.procedure.extra.get("included_texts", {})
    proc_dir = prep.procedure_path.resolve().parent
    for name, text in included.items():
        src = Path(name).resolve()
        rel = Path(os.path.relpath(src, proc_dir))
        if rel.is_absolute() or ".." in rel.parts:
            rel = Path(src.name)
        (inputs / "included" / rel).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(inputs / "included" / rel, text.encode("utf-8"))


def _create_rundir(root: Path, procedure: str, cell: str, started: float, meta: dict) -> RunDir:
    """A new run directory. Its name has a random 4-hex suffix; runs of the same procedure
    and cell started in the same second (a batch of channels, a fleet) may draw the same
    one, so a taken name is drawn again."""
    for _ in range(31):
        try:
            return RunDir.create(root, new_run_id(procedure, cell, started), meta)
        except RunDirExists:
            continue
    return RunDir.create(root, new_run_id(procedure, cell, started), meta)


def _save_inputs(rundir: RunDir, prep: Prepared) -> None:
    """Copies of the procedure, cell, station and plugin files as used: each fsynced
    (side by side), their folder once after all of them."""
    copies = [("procedure" + (prep.procedure_path.suffix or ".yaml"), prep.procedure.text)]
    for name, source in (("cell.yaml", prep.cell.source), ("station.yaml", prep.station.source)):
        text = _read_text(source)
        if text is not None:
            copies.append((name, text))
    for plugin in prep.station.plugin_files:
        copies.append((f"plugin-{Path(plugin).name}", Path(plugin).read_text(encoding="utf-8")))
    side_by_side(*[(rundir.save_input, name, text, False) for name, text in copies])
    _save_companions(rundir, prep)
    fsync_dir(rundir.path / "inputs")


def _read_text(path: str | None) -> str | None:
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return None


def start_run(
    prep: Prepared,
    *,
    results_root: str | Path = DEFAULT_RESULTS,
    observer: RunObserver | None = None,
    control: RunControl | None = None,
    speed: float | None = None,
    meta_extra: dict[str, Any] | None = None,
    table_writer: TableWriter | Literal["shared"] | None = "shared",
) -> RunOutcome:
    """Run a prepared procedure from the beginning in a new run directory.

    `meta_extra`: more run.json fields (e.g. `fleet`: the bench and Dask worker).
    `table_writer`: the child process that encodes the Parquet tables
    (store/table_writer.py): "shared", this process's own (store/shared_writer.py,
    started on first use); None: a thread of this process encodes them."""
    if table_writer == "shared":  # first: a new writer imports while the run is set up
        from labctl.store.shared_writer import shared_writer

        table_writer = shared_writer()
    clock = make_clock(prep.station, speed=speed)
    station = open_station(prep.station, prep.cell, registry=prep.registry, clock=clock)
    started = time.time()
    proc = prep.procedure
    meta = {
        "status": "running",
        "reason": "",
        "procedure": {
            "name": proc.name,
            "file": str(prep.procedure_path.resolve()),
            "sha256": proc.sha256,
            "included_files": list(proc.included_files),
        },
        "parameters": proc.parameters,
        "param_overrides": prep.params,
        "cell": {
            "name": prep.cell.name,
            "chemistry": prep.cell.chemistry,
            "capacity_ah": prep.cell.capacity_ah,
            "file": str(Path(prep.cell.source).resolve()) if prep.cell.source else None,
        },
        "station": {
            "name": prep.station.name,
            "file": str(Path(prep.station.source).resolve()) if prep.station.source else None,
            "instruments": station.identities(),
            "plugins": [{"file": str(p), "sha256": file_sha256(p)} for p in prep.station.plugin_files],
        },
        "safety": dict(proc.safety.__dict__),
        "started_unix_s": started,
        "ended_unix_s": None,
        "clock": "realtime" if prep.station.clock == "realtime" else "virtual",
        "sessions": [{"started_unix_s": started, "pid": os.getpid(), "host": host_name()}],
        **(meta_extra or {}),
    }
    rundir = _create_rundir(Path(results_root), proc.name, prep.cell.name, started, meta)
    # The new journal and the copies of the inputs each wait for the disk (fsync):
    # side by side, so the waits overlap.
    created: list[JournalWriter] = []
    try:
        side_by_side((lambda: created.append(JournalWriter.create(rundir.path)),),
                     (_save_inputs, rundir, prep))
    except BaseException:
        for journal in created:
            journal.close()
        raise
    journal = created[0]
    journal.tap = _live_tables(rundir.path, table_writer)
    engine = Engine(
        procedure=proc,
        station=station,
        cell=prep.cell,
        journal=journal,
        rundir=rundir,
        unix_origin_s=started,
        time_origin_s=clock.now(),
        observer=observer,
        control=control,
    )
    return _finish(engine, rundir, journal, station)


def _finish(engine: Engine, rundir: RunDir, journal: Any, station: Any) -> RunOutcome:
    live = getattr(journal, "tap", None)  # tables built while the journal was written
    try:
        status, reason = engine.run()
    except BaseException:
        if live is not None:
            live.abandon()
        raise
    finally:
        try:
            journal.close()
        except StorageError as exc:
            engine.storage_error = engine.storage_error or str(exc)
        station.close()
    summary: dict[str, Any] = {}

    def outcome(steps: Any, cycles: Any, n_samples: int) -> dict[str, Any]:
        # Written to run.json together with the tables' journal mark: one rewrite.
        summary.update(summarize(dict(rundir.meta, status=status, reason=reason), steps,
                                 cycles, n_samples))
        return {"status": status, "reason": reason, "ended_unix_s": time.time(),
                "summary": summary}

    try:
        finalize(rundir.path, live=live, meta_fields=outcome)
    except (LabctlError, OSError) as exc:
        if live is not None:
            live.abandon()
        # Outputs are already safe and the journal holds every sample written before the
        # failure; the tables can be built later, once there is room.
        why = engine.storage_error or str(exc)
        raise StorageError(
            f"the run stopped safely ({status}: {reason}) but its results could not be "
            f"completed in {rundir.path}: {why}. Everything measured up to the failure is in "
            f"the journal; free space (or make the folder writable) and run "
            f"'labctl doctor --repair {rundir.path}' to build the tables"
        ) from None
    return RunOutcome(rundir.path, status, reason, summary)


def _live_tables(run_path: Path, writer: TableWriter | None = None) -> Any:
    """The timeseries written while the run goes (store/live_tables.py), or None."""
    try:
        from labctl.store.live_tables import LiveTables

        return LiveTables(run_path, writer=writer)
    except (OSError, LabctlError):
        return None  # finalize builds the tables from the journal


# -- resume ----------------------------------------------------------------------------------

def resume_run(
    run_path: str | Path,
    *,
    observer: RunObserver | None = None,
    control: RunControl | None = None,
    speed: float | None = None,
) -> RunOutcome:
    """Continue an interrupted run from the step that was running when it stopped."""
    rundir = RunDir.open(Path(run_path))
    meta = rundir.meta
    status = effective_status(meta)
    if status != "interrupted":
        raise LabctlError(
            f"{rundir.path}: run is {status!r}; only an interrupted run (its process died) can be "
            "resumed"
        )
    check_inputs_unchanged(rundir.path, meta)  # before anything named in run.json is loaded
    # Half-written tables (or run.json) from a kill during the last finalize.
    stale = remove_stale_temp_files(rundir.path)
    if stale:
        rundir.append_log(f"removed {len(stale)} temporary file(s) left by the interrupted "
                          f"session: {', '.join(stale)}")
    proc_meta, cell_meta, station_meta = meta["procedure"], meta["cell"], meta["station"]
    prep = prepare(
        proc_meta["file"],
        station_path=station_meta.get("file"),
        cell_ref=cell_meta.get("file") or cell_meta.get("name"),
        params=meta.get("param_overrides") or {},
    )
    if prep.procedure.sha256 != proc_meta.get("sha256"):
        raise LabctlError(
            f"{proc_meta['file']}: the procedure changed since the run started (sha256 differs); "
            "restore it to resume"
        )
    sessions = list(meta.get("sessions", []))
    state, last_time = resume_state(rundir.path, len(sessions) + 1)
    started = meta["started_unix_s"]
    if prep.station.clock == "realtime":
        clock = WallClock()
        gap = max(0.0, time.time() - (started + last_time))
        time_origin = clock.now() - (last_time + gap)
    else:
        clock = VirtualClock(start=last_time, speed=pace(prep.station, speed))
        time_origin = 0.0
    station = open_station(prep.station, prep.cell, registry=prep.registry, clock=clock)
    try:
        state.notes.extend(restore_instruments(station, state, prep.cell))
    except LabctlError:
        station.close()
        raise
    sessions.append({"started_unix_s": time.time(), "pid": os.getpid(), "host": host_name()})
    rundir.update_meta(status="running", reason="", pid=os.getpid(), host=host_name(),
                       sessions=sessions)
    journal = JournalWriter.open_for_append(rundir.path)
    engine = Engine(
        procedure=prep.procedure,
        station=station,
        cell=prep.cell,
        journal=journal,
        rundir=rundir,
        unix_origin_s=started,
        time_origin_s=time_origin,
        observer=observer,
        control=control,
        resume=state,
    )
    return _finish(engine, rundir, journal, station)
