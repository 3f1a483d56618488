"""`labctl validate`, `run` and `resume`."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import click

from labctl.commands import common, gc_paused
from labctl.commands.common import (
    EXIT_INTERRUPTED,
    EXIT_RUN_FAILED,
    cell_option,
    emit_json,
    json_option,
    param_option,
    parse_params,
    resolve_run,
    results_option,
    station_option,
    user_errors,
)
from labctl.errors import LabctlError


@click.command()
@click.argument("procedure", type=click.Path(dir_okay=False))
@station_option
@cell_option
@param_option
@json_option
@user_errors
def validate(procedure: str, station: str | None, cell: str | None, params: tuple[str, ...],
             as_json: bool) -> None:
    """Check a procedure against a cell and a station without touching hardware."""
    from labctl.engine.prepare import prepare
    from labctl.plan import enforce_ceilings
    from labctl.plan.report import estimate_json, one_line

    with common.procedure_output_aside(as_json):
        prep = prepare(procedure, station_path=station, cell_ref=cell,
                       params=parse_params(params))
        report = enforce_ceilings(prep)  # the plan's estimate; exit 2 past a ceiling
    if as_json:
        emit_json({"ok": True, "procedure": prep.procedure.name, "cell": prep.cell.name,
                   "station": prep.station.name, "parameters": prep.procedure.parameters,
                   "estimate": estimate_json(report)})
    else:
        common.console.print(
            f"[green]ok[/green]: {procedure} is valid for cell {prep.cell.name} on station "
            f"{prep.station.name}", highlight=False, soft_wrap=True,
        )
        # soft_wrap: one line however narrow the terminal, for grep and scripts
        common.console.print(f"  {one_line(report)}", highlight=False, soft_wrap=True)


def _bms_summary(run_dir: Any) -> dict | None:
    """Verdict counts of the BMS report (RUN/analysis/bms/summary.json), if the run has one."""
    path = Path(run_dir) / "analysis" / "bms" / "summary.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None


def _record_results(run_dir: Any) -> dict:
    """Spectra count, conductivity, abuse onset... of the run's record tables (if any)."""
    # A finished run keeps its record tables in records/; a cycling run has none, and
    # then pandas (~0.2 s to import) is not needed for its closing summary.
    if not run_dir or not any((Path(run_dir) / "records").glob("*.parquet")):
        return {}
    from labctl.report.run_results import record_results
    from labctl.store.run import open_run

    try:
        return record_results(open_run(run_dir))
    except (LabctlError, OSError):
        return {}


MAX_CONDUCTIVITY_LINES = 8  # more spectra than this: one line with the range


def _line(text: str) -> None:
    common.console.print(f"  {text}", highlight=False, soft_wrap=True)


def print_record_results(results: dict) -> None:
    """Spectra count, pellet conductivity, abuse onset: what EIS and abuse runs measured."""
    from labctl.report.quantities import format_quantity

    line = _line
    if results.get("n_spectra") is not None:
        line(f"impedance spectra: {results['n_spectra']}")
    found = [c for c in results.get("conductivity") or []
             if c.get("conductivity_s_per_cm") is not None]
    if len(found) > MAX_CONDUCTIVITY_LINES:
        sigmas = [c["conductivity_s_per_cm"] for c in found]
        line(f"total conductivity: {format_quantity('conductivity_s_per_cm', min(sigmas))} to "
             f"{format_quantity('conductivity_s_per_cm', max(sigmas))} over {len(found)} spectra "
             "(each in --json)")
        found = []
    for c in found:
        where = ("" if c.get("temperature_c") is None
                 else f" at {format_quantity('temperature_c', c['temperature_c'])}")
        line(f"total conductivity{where}: "
             f"{format_quantity('conductivity_s_per_cm', c.get('conductivity_s_per_cm'))}")
    if "onset_temperature_c" in results:
        onset = results["onset_temperature_c"]
        line("self-heating onset: " + ("none seen" if onset is None
                                       else format_quantity("onset_temperature_c", onset)))
    if results.get("max_temperature_c") is not None:
        line(f"max cell temperature: {format_quantity('max_temperature_c', results['max_temperature_c'])}")


def print_results(summary: dict, results: dict) -> None:
    """The lines a technician reads at the end of a run."""
    from labctl.report.quantities import format_quantity

    line = _line
    print_record_results(results)
    moved = any((summary.get(k) or 0) > 0 for k in ("charge_capacity_ah", "discharge_capacity_ah"))
    if moved:
        for key, label in (("discharge_capacity_ah", "discharge capacity"),
                           ("charge_capacity_ah", "charge capacity"),
                           ("discharge_energy_wh", "discharge energy"),
                           ("coulombic_efficiency", "coulombic efficiency"),
                           ("energy_efficiency", "energy efficiency")):
            value = summary.get(key)
            if value is None or (isinstance(value, float) and not math.isfinite(value)):
                continue
            line(f"{label}: {format_quantity(key, value)}")
        both = all((summary.get(k) or 0) > 0 for k in ("charge_capacity_ah", "discharge_capacity_ah"))
        if summary.get("efficiency_note") and both:
            line(summary["efficiency_note"])
    if summary.get("n_samples"):
        line(f"samples: {summary['n_samples']:d}")


def _print_outcome(outcome: Any, as_json: bool) -> None:
    bms = _bms_summary(outcome.path) if outcome.path else None
    results = _record_results(outcome.path)
    if as_json:
        payload = {"ok": outcome.status == "completed", "run_dir": str(outcome.path),
                   "status": outcome.status, "reason": outcome.reason, "summary": outcome.summary,
                   "results": results}
        if bms is not None:
            payload["bms_checks"] = {k: bms.get(k) for k in
                                     ("checks", "passed", "failed", "info", "verdict", "failed_checks")}
        emit_json(payload)
        return
    s = outcome.summary
    colour = "green" if outcome.status == "completed" else "red"
    common.console.print(f"run directory: {outcome.path}", highlight=False, soft_wrap=True)
    common.console.print(f"status: [{colour}]{outcome.status}[/{colour}] ({outcome.reason})",
                  highlight=False, soft_wrap=True)
    if bms is not None:
        vc = "green" if bms.get("verdict") == "pass" else "red"
        common.console.print(f"  BMS checks: {bms.get('passed')} pass, {bms.get('failed')} fail, "
                      f"{bms.get('info')} info -> [{vc}]{bms.get('verdict')}[/{vc}]", highlight=False)
        for name in (bms.get("failed_checks") or [])[:10]:
            common.console.print(f"    failed: {name}", highlight=False)
    print_results(s, results)


def _prefetch_simulation(prep: Any) -> None:
    """A simulated cycler with noise needs the simulator's noise table at its first batch:
    have it read from the user's cache, or made, on another core while the ceilings are
    checked (labctl/sim/noise_table.py). Kept in the cache only by the `labctl` command
    itself, as its other caches are (not by a program or test that calls the command)."""
    for inst in prep.station.instruments.values():
        if inst.driver == "sim-cycler" and inst.settings.get("noise"):
            from labctl.process_exit import labctl_is_the_program
            from labctl.sim import noise_table

            noise_table.prefetch(keep=labctl_is_the_program())
            return


def _skip_final_collection() -> None:
    """At interpreter exit, leave the objects alive now out of the last garbage collection.

    A run leaves tens of thousands of objects (modules, numpy/pyarrow state) that CPython's
    shutdown collection walks once more just before the process's memory is released
    anyway: ~30 ms of CPU at the end of every `labctl run` (measured, bench/sim_cycling.py).
    Registered at exit only, so an in-process caller (tests, notebooks) is not affected
    until its own interpreter ends; files the run wrote are closed and fsynced before
    start_run returns, so nothing waits on that collection.
    """
    import atexit
    import gc

    atexit.register(gc.freeze)


def _exit_for(status: str, reason: str) -> None:
    if status == "completed":
        return
    if "Ctrl-C" in reason or "SIGINT" in reason:
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(EXIT_RUN_FAILED)


@click.command()
@click.argument("procedure", type=click.Path(dir_okay=False), required=False)
@station_option
@cell_option
@param_option
@results_option
@click.option("--channel", "channels", multiple=True, metavar="N",
              help="Run on this cycler channel; repeat for several channels in parallel.")
@click.option("--batch", type=click.Path(dir_okay=False),
              help="A batch file mapping channels to procedures, cells and parameters.")
@click.option("--speed", type=float, help="Pace virtual time: virtual seconds per wall second.")
@click.option("--processes", type=click.IntRange(min=1), default=None,
              help="Worker processes for several channels (default: one per core, "
                   "and at most 4 channels per process).")
@click.option("--no-progress", is_flag=True, help="Do not show the live progress line.")
@click.option("--scheduler", default=None, metavar="tcp://HOST:8786",
              help="With --batch: run each channel on the Dask worker that owns its bench "
                   "(docs/scale-out.md).")
@json_option
@user_errors
def run(procedure: str | None, station: str | None, cell: str | None, params: tuple[str, ...],
        results: str, channels: tuple[str, ...], batch: str | None, speed: float | None,
        processes: int | None, no_progress: bool, scheduler: str | None, as_json: bool) -> None:
    """Validate, then run a procedure; prints the run directory and a summary."""
    one_run = procedure is not None and not (scheduler or batch or len(channels) > 1)
    writer = _fork_table_writer() if one_run else None
    try:
        _run(procedure, station, cell, params, results, channels, batch, speed, processes,
             no_progress, scheduler, as_json, writer)
    finally:
        if writer is not None:
            # Where the process ends right after (the labctl command itself), the system
            # reaps the child; a caller that goes on (tests, a program embedding the
            # command, a profiler) gets it reaped on a thread.
            from labctl.process_exit import labctl_is_the_program

            writer.close(reap=not labctl_is_the_program())


def _fork_table_writer() -> Any:
    """The child process that will encode the run's Parquet tables (store/table_writer.py),
    forked now, while this process has one thread and before it imports numpy: it imports
    pyarrow on the other core meanwhile. None where that cannot be done."""
    from labctl.store.table_writer import TableWriter

    return TableWriter.fork()


def _run(procedure, station, cell, params, results, channels, batch, speed, processes,
         no_progress, scheduler, as_json, writer) -> None:
    with gc_paused():  # imports make no garbage for the collector to look for
        from labctl.engine.control import RunControl, signals_abort
        from labctl.engine.session import prepare, start_run

    if scheduler:
        if not batch or procedure or channels:
            raise LabctlError("--scheduler runs a batch file: give --batch FILE (with a bench "
                              "per channel) and no PROCEDURE or --channel")
        _run_on_benches(batch, results, speed, scheduler, as_json)
        return
    if batch or len(channels) > 1:
        _run_channels(procedure, station, cell, params, results, channels, batch, speed, as_json,
                      processes)
        return
    if procedure is None:
        raise LabctlError("name a procedure file (or use --batch FILE)")
    with gc_paused(), common.procedure_output_aside(as_json):  # reading the inputs and the
        # ceilings check import most of labctl; a procedure's prints kept off --json stdout
        prep = prepare(procedure, station_path=station, cell_ref=cell,
                       params=parse_params(params))
        if channels:
            from labctl.engine.multi import on_channel

            prep = on_channel(prep, channels[0])
        _prefetch_simulation(prep)
        from labctl.plan import enforce_ceilings

        enforce_ceilings(prep, need_report=False)  # exit 2 (with the estimate) past a ceiling
    _skip_final_collection()
    control = RunControl()
    with signals_abort(control), common.procedure_output_aside(as_json):
        if as_json or no_progress:
            outcome = start_run(prep, results_root=results, control=control, speed=speed,
                                table_writer=writer)
        else:
            from labctl.progress import RichProgress

            with RichProgress(common.console) as observer:
                outcome = start_run(prep, results_root=results, control=control, speed=speed,
                                    observer=observer, table_writer=writer)
    _print_outcome(outcome, as_json)
    _exit_for(outcome.status, outcome.reason)


def _run_channels(procedure, station, cell, params, results, channels, batch, speed, as_json,
                  processes=None):
    """Several channels in parallel, each its own run directory; all validated first."""
    from labctl.engine.control import RunControl, signals_abort
    from labctl.engine.multi import (
        ChannelJob,
        default_processes,
        load_batch,
        prepare_all,
        run_channels,
    )

    if batch:
        if procedure or channels:
            raise LabctlError("--batch names the procedures itself; do not also give PROCEDURE or --channel")
        jobs = load_batch(batch)
    else:
        if procedure is None:
            raise LabctlError("name a procedure file to run on the channels")
        jobs = [ChannelJob(channel=c, procedure=procedure, cell=cell, station=station,
                           params=parse_params(params)) for c in channels]
    with common.procedure_output_aside(as_json):
        prepared = prepare_all(jobs)
        from labctl.plan import enforce_ceilings

        for prep in prepared:  # every channel within the ceilings before any starts
            enforce_ceilings(prep, need_report=False)
    controls = [RunControl() for _ in prepared]
    if processes is not None:
        _say_if_fewer_processes(prepared, processes)
    with signals_abort(*controls), common.procedure_output_aside(as_json):
        outcomes = run_channels(prepared, results_root=results, controls=controls, speed=speed,
                                processes=processes or default_processes(len(prepared)))
    rows = []
    for job, outcome in zip(jobs, outcomes, strict=True):
        if isinstance(outcome, Exception):
            rows.append({"channel": job.channel, "status": "faulted", "reason": str(outcome),
                         "run_dir": None, "summary": {}})
        else:
            rows.append({"channel": job.channel, "status": outcome.status, "reason": outcome.reason,
                         "run_dir": str(outcome.path), "summary": outcome.summary})
    all_ok = all(r["status"] == "completed" for r in rows)
    if as_json:
        emit_json({"ok": all_ok, "runs": rows})
    else:
        from labctl.report.idtable import print_id_table

        lines = []
        for r in rows:
            cap = r["summary"].get("discharge_capacity_ah")
            lines.append((str(r["run_dir"]), str(r["channel"]), r["status"], r["reason"],
                          "-" if cap is None else f"{cap:.4f}"))
        print_id_table(common.console, ("run directory", "channel", "status", "reason", "discharge Ah"),
                       lines)
    if not all_ok:
        interrupted = any("Ctrl-C" in r["reason"] for r in rows)
        sys.exit(EXIT_INTERRUPTED if interrupted else EXIT_RUN_FAILED)


def _say_if_fewer_processes(prepared: list, processes: int) -> None:
    """`--processes N` gives fewer workers where channels share a chamber one drives."""
    from labctl.engine.multi import worker_shares
    from labctl.notice import notice

    got = len(worker_shares(prepared, processes))
    if got < min(processes, len(prepared)):
        notice(f"{got} worker process{'es' if got > 1 else ''} instead of {processes}: the "
               "channels in a chamber that one of them drives run in one process, where "
               "their claims on it are arbitrated")


def _run_on_benches(batch: str, results: str, speed: float | None, scheduler: str,
                    as_json: bool) -> None:
    """Each channel of the batch on its bench's Dask worker (labctl/fleet/benches.py)."""
    from labctl.engine.multi import load_batch
    from labctl.fleet.benches import run_batch_on_scheduler
    from labctl.fleet.cluster import need_dask

    need_dask()
    rows = run_batch_on_scheduler(load_batch(batch), results_root=results, scheduler=scheduler,
                                  speed=speed)
    all_ok = all(r["status"] == "completed" for r in rows)
    if as_json:
        emit_json({"ok": all_ok, "runs": rows})
    else:
        from labctl.report.idtable import print_id_table

        print_id_table(common.console, ("run directory", "bench", "channel", "worker", "status",
                                 "reason"),
                       [(str(r["run_dir"]), str(r["bench"]), str(r["channel"]), str(r["worker"]),
                         r["status"], str(r["reason"])) for r in rows])
    if not all_ok:
        sys.exit(EXIT_RUN_FAILED)


@click.command()
@click.argument("run")
@click.option("--speed", type=float, help="Pace virtual time: virtual seconds per wall second.")
@results_option
@click.option("--no-progress", is_flag=True, help="Do not show the live progress line.")
@json_option
@user_errors
def resume(run: str, speed: float | None, results: str, no_progress: bool, as_json: bool) -> None:
    """Continue an interrupted run (a run directory or a run-id prefix) from the step that
    was running."""
    from labctl.engine.control import RunControl, signals_abort
    from labctl.engine.session import resume_run

    run_dir = resolve_run(run, results)
    control = RunControl()
    with signals_abort(control), common.procedure_output_aside(as_json):
        if as_json or no_progress:
            outcome = resume_run(run_dir, control=control, speed=speed)
        else:
            from labctl.progress import RichProgress

            with RichProgress(common.console) as observer:
                outcome = resume_run(run_dir, control=control, speed=speed, observer=observer)
    _print_outcome(outcome, as_json)
    _exit_for(outcome.status, outcome.reason)
