"""The `labctl` command.

Exit status: 0 done, 1 the run ended aborted or faulted, 2 bad input (a file,
an argument, an instrument that cannot be reached), 130 stopped by Ctrl-C.
Every command takes `--json` for scripts.
"""

from __future__ import annotations

import functools
import json
import math
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from labctl.errors import LabctlError, ValidationError

console = Console()
err_console = Console(stderr=True)

EXIT_RUN_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    if isinstance(value, Path):
        return str(value)
    return value


def emit_json(payload: dict) -> None:
    click.echo(json.dumps(_jsonable(payload), indent=2, default=str))


def user_errors(func):
    """Turn LabctlError into a clear message and exit status 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        as_json = kwargs.get("as_json", False)
        try:
            return func(*args, **kwargs)
        except ValidationError as exc:
            if as_json:
                emit_json({"ok": False, "problems": [p.as_dict() for p in exc.problems]})
            else:
                for problem in exc.problems:
                    err_console.print(f"[red]error[/red]: {problem}", highlight=False, soft_wrap=True)
            sys.exit(EXIT_BAD_INPUT)
        except LabctlError as exc:
            if as_json:
                emit_json({"ok": False, "error": str(exc)})
            else:
                err_console.print(f"[red]error[/red]: {exc}", highlight=False, soft_wrap=True)
            sys.exit(EXIT_BAD_INPUT)

    return wrapper


def parse_params(values: tuple[str, ...]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise LabctlError(f"--param {item!r}: write it as name=value")
        params[name.strip()] = value.strip()
    return params


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
station_option = click.option(
    "--station", type=click.Path(dir_okay=False), help="Station file (default: instruments/sim.yaml)."
)
cell_option = click.option("--cell", help="Cell file, or a preset name such as lfp-2p2ah (default).")
param_option = click.option(
    "--param", "params", multiple=True, metavar="NAME=VALUE", help="Override a procedure parameter."
)
results_option = click.option(
    "--results", type=click.Path(file_okay=False), default="results", show_default=True,
    help="Results store folder.",
)


@click.group()
@click.version_option(package_name="labctl")
def main() -> None:
    """labctl: run battery test procedures on real or simulated benches."""


@main.command()
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

    prep = prepare(procedure, station_path=station, cell_ref=cell, params=parse_params(params))
    if as_json:
        emit_json({"ok": True, "procedure": prep.procedure.name, "cell": prep.cell.name,
                   "station": prep.station.name, "parameters": prep.procedure.parameters})
    else:
        console.print(
            f"[green]ok[/green]: {procedure} is valid for cell {prep.cell.name} on station "
            f"{prep.station.name}", highlight=False,
        )


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


@main.command()
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


@main.command()
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


@main.command(name="ls")
@results_option
@json_option
@user_errors
def list_runs_cmd(results: str, as_json: bool) -> None:
    """List the runs in a results store."""
    from labctl.store.catalog import list_runs

    runs = list_runs(Path(results))
    if as_json:
        emit_json({"ok": True, "runs": runs})
        return
    table = Table("run", "procedure", "cell", "status", "started")
    for r in runs:
        table.add_row(str(r.get("run_id")), str(r.get("procedure")), str(r.get("cell")),
                      str(r.get("status")), str(r.get("started")))
    console.print(table)


def _resolve_run(run: str, results: str) -> Path:
    path = Path(run)
    if path.is_dir():
        return path
    root = Path(results)
    matches = sorted(p for p in root.glob(f"{run}*") if p.is_dir()) if root.is_dir() else []
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise LabctlError(f"no run {run!r}: not a folder, and no run id starting so in {root}")
    raise LabctlError(f"run id {run!r} is ambiguous in {root}: {', '.join(m.name for m in matches)}")


@main.command()
@click.argument("run")
@results_option
@json_option
@user_errors
def show(run: str, results: str, as_json: bool) -> None:
    """Summarise one run (a run directory or a run id)."""
    from labctl.store.run import open_run

    r = open_run(_resolve_run(run, results))
    summary = r.summary()
    if as_json:
        emit_json({"ok": True, "run_dir": str(r.path), "meta": r.meta, "summary": summary,
                   "steps": r.steps.to_dict(orient="records")})
        return
    console.print(f"run directory: {r.path}", highlight=False)
    for key, value in summary.items():
        console.print(f"  {key}: {value}", highlight=False)
    steps = r.steps
    if len(steps):
        table = Table("step", "cycle", "kind", "text", "end", "duration s", "Ah in", "Ah out")
        for row in steps.itertuples():
            table.add_row(str(row.step_index), str(row.cycle_index), row.kind, row.text,
                          row.end_reason, f"{row.duration_s:.1f}", f"{row.charge_capacity_ah:.4f}",
                          f"{row.discharge_capacity_ah:.4f}")
        console.print(table)


@main.command()
@click.argument("run")
@click.option("--format", "fmt", required=True, help="csv, parquet or bdf (or a plugin's format).")
@click.option("-o", "--output", required=True, type=click.Path(), help="Where to write.")
@results_option
@json_option
@user_errors
def export(run: str, fmt: str, output: str, results: str, as_json: bool) -> None:
    """Export a run's data (BDF = Battery Data Format column names)."""
    from labctl.plugins import build_registry
    from labctl.store.run import open_run

    r = open_run(_resolve_run(run, results))
    exporter = build_registry().get("exporter", fmt)
    written = exporter.export(r, Path(output))
    if as_json:
        emit_json({"ok": True, "format": fmt, "output": str(written)})
    else:
        console.print(f"wrote {written}", highlight=False)


def _live_runs(results: str) -> list[dict]:
    from labctl.store.catalog import list_runs

    return [r for r in list_runs(Path(results)) if r["status"] == "running"]


def _read_status(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "status.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


@main.command()
@results_option
@json_option
@user_errors
def status(results: str, as_json: bool) -> None:
    """Show every active run in a results store (works from any terminal)."""
    from labctl.progress import format_duration

    rows = []
    for run in _live_runs(results):
        live = _read_status(Path(run["path"]))
        rows.append({**run, "state": live.get("state", "running"), "step_index": live.get("step_index"),
                     "step": live.get("step"), "test_time_s": live.get("test_time_s"),
                     "voltage_v": live.get("voltage_v"), "current_a": live.get("current_a"),
                     "temperature_c": live.get("temperature_c"),
                     "updated_unix_s": live.get("updated_unix_s")})
    if as_json:
        emit_json({"ok": True, "runs": rows})
        return
    if not rows:
        console.print(f"no active runs in {results}", highlight=False)
        return
    table = Table("run", "procedure", "state", "step", "time", "V", "A", "°C")
    for r in rows:
        def fmt(x, f):
            return "-" if x is None else f.format(x)
        table.add_row(r["run_id"], str(r["procedure"]), r["state"],
                      f"{r['step_index']}: {r['step']}" if r["step_index"] else "-",
                      format_duration(r["test_time_s"]) if r["test_time_s"] is not None else "-",
                      fmt(r["voltage_v"], "{:.4f}"), fmt(r["current_a"], "{:+.4f}"),
                      fmt(r["temperature_c"], "{:.1f}"))
    console.print(table)


def _command(command: str, runs: tuple[str, ...], all_runs: bool, results: str, as_json: bool) -> None:
    from labctl.engine.control import send_command
    from labctl.store.rundir import RunDir, effective_status

    if all_runs:
        targets = [Path(r["path"]) for r in _live_runs(results)]
    elif runs:
        targets = [_resolve_run(r, results) for r in runs]
    else:
        raise LabctlError(f"name a run (directory or id) or use --all for every active run in {results}")
    sent = []
    for path in targets:
        state = effective_status(RunDir.open(path).meta)
        if state != "running":
            raise LabctlError(f"{path}: run is {state!r}, not running")
        send_command(path, command, reason=f"{command} requested with labctl {command}")
        sent.append(str(path))
    if as_json:
        emit_json({"ok": True, "command": command, "runs": sent})
    else:
        for path in sent:
            console.print(f"{command} sent to {path}", highlight=False)


_run_args = click.argument("runs", nargs=-1)
_all_option = click.option("--all", "all_runs", is_flag=True, help="Every active run in the store.")


@main.command()
@_run_args
@_all_option
@results_option
@json_option
@user_errors
def stop(runs: tuple[str, ...], all_runs: bool, results: str, as_json: bool) -> None:
    """Stop running runs safely (outputs off, run marked aborted)."""
    _command("stop", runs, all_runs, results, as_json)


@main.command()
@_run_args
@_all_option
@results_option
@json_option
@user_errors
def pause(runs: tuple[str, ...], all_runs: bool, results: str, as_json: bool) -> None:
    """Pause running runs: outputs off until `labctl continue`."""
    _command("pause", runs, all_runs, results, as_json)


@main.command(name="continue")
@_run_args
@_all_option
@results_option
@json_option
@user_errors
def continue_(runs: tuple[str, ...], all_runs: bool, results: str, as_json: bool) -> None:
    """Continue paused runs (the interrupted step goes on with what is left of it)."""
    _command("continue", runs, all_runs, results, as_json)


@main.command()
@click.argument("runs", nargs=-1, required=True)
@click.option("--repair", is_flag=True, help="Rebuild tables and cut a torn journal tail.")
@results_option
@json_option
@user_errors
def doctor(runs: tuple[str, ...], repair: bool, results: str, as_json: bool) -> None:
    """Check run directories (journal vs tables, time gaps, schema); optionally repair."""
    from labctl.store.doctor import doctor_many

    reports = doctor_many([_resolve_run(r, results) for r in runs], repair)
    if as_json:
        emit_json({"ok": all(r.healthy for r in reports), "runs": [r.as_dict() for r in reports]})
    else:
        for report in reports:
            console.print(f"{report.path}", highlight=False)
            for f in report.findings:
                mark = "[green]ok[/green]" if f.ok else ("[yellow]repaired[/yellow]" if f.repaired
                                                          else "[red]problem[/red]")
                console.print(f"  {mark} {f.check}: {f.detail}", highlight=False)
    if not all(r.healthy for r in reports):
        sys.exit(EXIT_RUN_FAILED)


@main.command()
@station_option
@json_option
@user_errors
def plugins(station: str | None, as_json: bool) -> None:
    """List every registered driver, step type, analysis and exporter, and where it came from."""
    from labctl.plugins import build_registry, local_plugin_files

    registry = build_registry(local_plugin_files(station) if station else [])
    items = sorted(registry.all(), key=lambda r: (r.kind, r.name))
    if as_json:
        emit_json({"ok": True, "plugins": [
            {"kind": r.kind, "name": r.name, "source": r.source,
             "description": getattr(r.info, "description", "")} for r in items]})
        return
    table = Table("kind", "name", "source", "description")
    for r in items:
        table.add_row(r.kind, r.name, r.source, getattr(r.info, "description", ""))
    console.print(table)


class _AnalysisGroup(click.Group):
    """`labctl analyze NAME ...`: each registered analysis brings its own sub-command."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from labctl.plugins import build_registry

        registry = build_registry()
        return [n for n in registry.names("analysis") if registry.get("analysis", n).command]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        # Build only the named command: one analysis' import problem must not break others.
        from labctl.plugins import build_registry

        registry = build_registry()
        if name not in registry.names("analysis"):
            return None
        info = registry.get("analysis", name)
        return info.command() if info.command is not None else None


@main.group(cls=_AnalysisGroup)
def analyze() -> None:
    """Analyse a run (or a data file) and store the result in the run's analysis/ folder."""


def run_path_argument(run: str, results: str) -> Path:
    """A run directory given as a path or a run-id prefix in the results store."""
    return _resolve_run(run, results)


@main.group()
def sim() -> None:
    """Simulated instruments for real drivers (no hardware needed)."""


@sim.command("serve")
@click.option("--instrument", type=click.Choice(["keithley-2400", "keithley-2450"]),
              default="keithley-2400", show_default=True, help="Command set to speak.")
@click.option("--cell", default=None, help="Cell file or preset on the SMU's terminals.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=5025, show_default=True, help="TCP port (0 = any free).")
@click.option("--allow-remote", is_flag=True, help="Allow a non-loopback --host (no authentication!).")
@click.option("--time-per-read", "time_per_read_s", type=float, default=None,
              help="Virtual seconds each reading takes (lock-step; default 0.1).")
@click.option("--speed", type=float, default=None,
              help="Instead: virtual time runs at this many times the wall clock.")
@click.option("--initial-soc", type=float, default=None, help="Cell state of charge at start (0..1).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--noise-v", type=float, default=0.0, help="Voltage noise (V, 1 sigma).")
@click.option("--noise-a", type=float, default=0.0, help="Current noise (A, 1 sigma).")
@click.option("--gain-error", type=float, default=0.0, help="Mis-calibration: relative reading error.")
@click.option("--offset-v", type=float, default=0.0, help="Mis-calibration: voltage offset (V).")
@click.option("--offset-a", type=float, default=0.0, help="Mis-calibration: current offset (A).")
@click.option("--ready-file", default=None, help="Write the bound port here once listening.")
@user_errors
def sim_serve(**options: Any) -> None:
    """Serve a simulated SMU with a simulated cell over SCPI on TCP (127.0.0.1:5025)."""
    from labctl.simserve.command import serve

    serve(**options)


if __name__ == "__main__":  # pragma: no cover
    main()
