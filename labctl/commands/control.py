"""`labctl status`, `stop`, `pause` and `continue`: active runs, from any terminal."""

from __future__ import annotations

import json
from pathlib import Path

import click

from labctl.commands.common import (
    console,
    emit_json,
    json_option,
    resolve_run,
    results_option,
    user_errors,
)
from labctl.errors import LabctlError


def _live_runs(results: str) -> list[dict]:
    from labctl.store.catalog import list_runs

    return [r for r in list_runs(Path(results)) if r["status"] == "running"]


def _read_status(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "status.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


@click.command()
@results_option
@json_option
@user_errors
def status(results: str, as_json: bool) -> None:
    """Show every active run in a results store, from every bench that writes to it."""
    from labctl.report.quantities import format_hms

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
    from labctl.report.idtable import print_id_table

    def fmt(x, f):
        return "-" if x is None else f.format(x)

    print_id_table(console, ("run", "bench", "procedure", "state", "step", "time", "V", "A", "°C"), [
        (str(r["run_id"]), str(r.get("bench") or r.get("host") or "-"), str(r["procedure"]),
         str(r["state"]),
         f"{r['step_index']}: {r['step']}" if r["step_index"] else "-",
         format_hms(r["test_time_s"]) if r["test_time_s"] is not None else "-",
         fmt(r["voltage_v"], "{:.4f}"), fmt(r["current_a"], "{:+.4f}"),
         fmt(r["temperature_c"], "{:.1f}")) for r in rows])


def _command(command: str, runs: tuple[str, ...], all_runs: bool, results: str, as_json: bool) -> None:
    from labctl.engine.control import send_command
    from labctl.store.rundir import RunDir, effective_status

    if all_runs:
        targets = [Path(r["path"]) for r in _live_runs(results)]
    elif runs:
        targets = [resolve_run(r, results) for r in runs]
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


@click.command()
@_run_args
@_all_option
@results_option
@json_option
@user_errors
def stop(runs: tuple[str, ...], all_runs: bool, results: str, as_json: bool) -> None:
    """Stop running runs safely (outputs off, run marked aborted)."""
    _command("stop", runs, all_runs, results, as_json)


@click.command()
@_run_args
@_all_option
@results_option
@json_option
@user_errors
def pause(runs: tuple[str, ...], all_runs: bool, results: str, as_json: bool) -> None:
    """Pause running runs: outputs off until `labctl continue`."""
    _command("pause", runs, all_runs, results, as_json)


@click.command(name="continue")
@_run_args
@_all_option
@results_option
@json_option
@user_errors
def continue_(runs: tuple[str, ...], all_runs: bool, results: str, as_json: bool) -> None:
    """Continue paused runs (the interrupted step goes on with what is left of it)."""
    _command("continue", runs, all_runs, results, as_json)

