"""`labctl validate`, `run` and `resume`."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from labctl.commands.common import (
    EXIT_INTERRUPTED,
    EXIT_RUN_FAILED,
    cell_option,
    console,
    emit_json,
    json_option,
    param_option,
    parse_params,
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
    from labctl.engine.session import prepare
    from labctl.plan import enforce_ceilings
    from labctl.plan.report import one_line

    prep = prepare(procedure, station_path=station, cell_ref=cell, params=parse_params(params))
    report = enforce_ceilings(prep)  # the plan's estimate; exit 2 past a ceiling
    if as_json:
        emit_json({"ok": True, "procedure": prep.procedure.name, "cell": prep.cell.name,
                   "station": prep.station.name, "parameters": prep.procedure.parameters,
                   "estimate": {"duration_s": report.run_duration_s,
                                "n_samples": report.run_samples,
                                "disk_bytes": report.run_disk_bytes,
                                "approximate": report.approximate,
                                "warnings": report.warnings}})
    else:
        console.print(
            f"[green]ok[/green]: {procedure} is valid for cell {prep.cell.name} on station "
            f"{prep.station.name}", highlight=False,
        )
        console.print(f"  {one_line(report)}", highlight=False)


def _bms_summary(run_dir: Any) -> dict | None:
    """Verdict counts of the BMS report (RUN/analysis/bms/summary.json), if the run has one."""
    path = Path(run_dir) / "analysis" / "bms" / "summary.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None


def _print_outcome(outcome: Any, as_json: bool) -> None:
    bms = _bms_summary(outcome.path) if outcome.path else None
    if as_json:
        payload = {"ok": outcome.status == "completed", "run_dir": str(outcome.path),
                   "status": outcome.status, "reason": outcome.reason, "summary": outcome.summary}
        if bms is not None:
            payload["bms_checks"] = {k: bms.get(k) for k in
                                     ("checks", "passed", "failed", "info", "verdict", "failed_checks")}
        emit_json(payload)
        return
    s = outcome.summary
    colour = "green" if outcome.status == "completed" else "red"
    console.print(f"run directory: {outcome.path}", highlight=False)
    console.print(f"status: [{colour}]{outcome.status}[/{colour}] ({outcome.reason})", highlight=False)
    if bms is not None:
        vc = "green" if bms.get("verdict") == "pass" else "red"
        console.print(f"  BMS checks: {bms.get('passed')} pass, {bms.get('failed')} fail, "
                      f"{bms.get('info')} info -> [{vc}]{bms.get('verdict')}[/{vc}]", highlight=False)
        for name in (bms.get("failed_checks") or [])[:10]:
            console.print(f"    failed: {name}", highlight=False)
    if not s.get("n_samples"):
        return
    for key, label, fmt in (
        ("discharge_capacity_ah", "discharge capacity", "{:.4f} Ah"),
        ("charge_capacity_ah", "charge capacity", "{:.4f} Ah"),
        ("discharge_energy_wh", "discharge energy", "{:.4f} Wh"),
        ("coulombic_efficiency", "coulombic efficiency", "{:.2%}"),
        ("energy_efficiency", "energy efficiency", "{:.2%}"),
        ("n_samples", "samples", "{:d}"),
    ):
        value = s.get(key)
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            continue
        console.print(f"  {label}: {fmt.format(value)}", highlight=False)


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
@json_option
@user_errors
def run(procedure: str | None, station: str | None, cell: str | None, params: tuple[str, ...],
        results: str, channels: tuple[str, ...], batch: str | None, speed: float | None,
        processes: int | None, no_progress: bool, as_json: bool) -> None:
    """Validate, then run a procedure; prints the run directory and a summary."""
    from labctl.engine.control import RunControl, signals_abort
    from labctl.engine.session import prepare, start_run

    if batch or len(channels) > 1:
        _run_channels(procedure, station, cell, params, results, channels, batch, speed, as_json,
                      processes)
        return
    if procedure is None:
        raise LabctlError("name a procedure file (or use --batch FILE)")
    prep = prepare(procedure, station_path=station, cell_ref=cell, params=parse_params(params))
    if channels:
        from labctl.engine.multi import on_channel

        prep = on_channel(prep, channels[0])
    from labctl.plan import enforce_ceilings

    enforce_ceilings(prep, need_report=False)  # exit 2 (with the estimate) past a ceiling
    control = RunControl()
    with signals_abort(control):
        if as_json or no_progress:
            outcome = start_run(prep, results_root=results, control=control, speed=speed)
        else:
            from labctl.progress import RichProgress

            with RichProgress(console) as observer:
                outcome = start_run(prep, results_root=results, control=control, speed=speed,
                                    observer=observer)
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
    prepared = prepare_all(jobs)
    controls = [RunControl() for _ in prepared]
    with signals_abort(*controls):
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
        table = Table("channel", "status", "reason", "run directory", "discharge Ah")
        for r in rows:
            cap = r["summary"].get("discharge_capacity_ah")
            table.add_row(r["channel"], r["status"], r["reason"], str(r["run_dir"]),
                          "-" if cap is None else f"{cap:.4f}")
        console.print(table)
    if not all_ok:
        interrupted = any("Ctrl-C" in r["reason"] for r in rows)
        sys.exit(EXIT_INTERRUPTED if interrupted else EXIT_RUN_FAILED)


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--speed", type=float, help="Pace virtual time: virtual seconds per wall second.")
@json_option
@user_errors
def resume(run_dir: str, speed: float | None, as_json: bool) -> None:
    """Continue an interrupted run from the step that was running."""
    from labctl.engine.control import RunControl, signals_abort
    from labctl.engine.session import resume_run

    control = RunControl()
    with signals_abort(control):
        outcome = resume_run(run_dir, control=control, speed=speed)
    _print_outcome(outcome, as_json)
    _exit_for(outcome.status, outcome.reason)

