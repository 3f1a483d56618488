"""`labctl ls`, `show`, `export` and `doctor`: the results store."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from labctl.commands.common import (
    EXIT_RUN_FAILED,
    console,
    emit_json,
    json_option,
    resolve_run,
    results_option,
    user_errors,
)


@click.command(name="ls")
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


@click.command()
@click.argument("run")
@results_option
@json_option
@user_errors
def show(run: str, results: str, as_json: bool) -> None:
    """Summarise one run (a run directory or a run id)."""
    from labctl.store.run import open_run

    r = open_run(resolve_run(run, results))
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


@click.command()
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

    r = open_run(resolve_run(run, results))
    exporter = build_registry().get("exporter", fmt)
    written = exporter.export(r, Path(output))
    if as_json:
        emit_json({"ok": True, "format": fmt, "output": str(written)})
    else:
        console.print(f"wrote {written}", highlight=False)


@click.command()
@click.argument("runs", nargs=-1, required=True)
@click.option("--repair", is_flag=True, help="Rebuild tables and cut a torn journal tail.")
@results_option
@json_option
@user_errors
def doctor(runs: tuple[str, ...], repair: bool, results: str, as_json: bool) -> None:
    """Check run directories (journal vs tables, time gaps, schema); optionally repair."""
    from labctl.store.doctor import doctor_many

    reports = doctor_many([resolve_run(r, results) for r in runs], repair)
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

