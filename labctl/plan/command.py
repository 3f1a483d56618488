"""`labctl plan PROC`: what the procedure will do, from the station's simulated twin."""

from __future__ import annotations

import math
from typing import Any

import click

from labctl.commands.common import (
    cell_option,
    console,
    emit_json,
    json_option,
    param_option,
    parse_params,
    station_option,
    user_errors,
)

SHOWN_CYCLES = 5  # first and last cycles printed; --json gives them all


@click.command()
@click.argument("procedure", type=click.Path(dir_okay=False))
@cell_option
@station_option
@param_option
@json_option
@user_errors
def plan(procedure: str, cell: str | None, station: str | None, params: tuple[str, ...],
         as_json: bool) -> None:
    """Predict a procedure's duration, capacities, temperatures, margins and data size by
    running it on the simulated twin of the station (nothing is stored)."""
    from labctl.engine.prepare import prepare
    from labctl.plan import plan_prepared

    prep = prepare(procedure, station_path=station, cell_ref=cell, params=parse_params(params))
    report = plan_prepared(prep)
    if as_json:
        emit_json({"ok": True, **report.as_dict()})
        return
    print_report(report)


def _f(x: Any, fmt: str = "{:.4f}") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return fmt.format(x)


def _numbers_unwrapped(table: Any, *columns: int) -> None:
    for k in columns:
        table.columns[k].no_wrap = True


def print_report(report: Any) -> None:
    from rich.table import Table

    from labctl.plan.report import expected_end, human_bytes, human_duration

    out = console.print
    out(f"[bold]plan[/bold] of {report.procedure} on cell {report.cell}, station "
        f"{report.station} (its simulated twin; planned in {report.planning_wall_s:.2f} s)",
        highlight=False)
    approx = " (approximate)" if report.approximate else ""
    end = expected_end(report)
    seconds = f" ({report.run_duration_s:,.0f} s)" if report.run_duration_s < 1e9 else ""
    out(f"duration: {human_duration(report.run_duration_s)}{seconds}{approx}"
        + (f"; ends {end} if started now" if end else ""), highlight=False)
    if report.max_duration_s is not None and report.duration_s > report.max_duration_s:
        out(f"  (the procedure needs {human_duration(report.duration_s)}; its max_duration stops "
            "it first)", highlight=False)
    n = report.run_samples  # what the run records: max_duration may stop it first
    out(f"samples: {n:,.0f}" if n < 1e15 else f"samples: {n:.3g}", highlight=False, end="")
    out(f"; disk: {human_bytes(report.run_disk_bytes)}", highlight=False)
    out(f"max temperature: {_f(report.max_temperature_c, '{:.1f} °C')}", highlight=False)
    colour = "green" if report.status == "completed" else "red"
    out(f"outcome: [{colour}]{report.status}[/{colour}] ({report.reason})", highlight=False)

    steps = Table("step (where)", "runs", "duration", "ends on", "Ah in/out", "Wh in/out",
                  "max °C", title="steps (folded per loop; durations and Ah/Wh per run)",
                  title_justify="left")
    for s in report.steps:
        reasons = s["end_reasons"]
        top = next(iter(reasons), "-").partition(": ")[2] or "-"
        if len(reasons) > 1:
            top += f" (+{len(reasons) - 1} other)"
        steps.add_row(f"{s['text']} [dim]({s['path']})[/dim]", f"{s['count']:,}",
                      human_duration(s["duration_s"]), top,
                      f"{_f(s['charge_capacity_ah'], '{:.3f}')}/"
                      f"{_f(s['discharge_capacity_ah'], '{:.3f}')}",
                      f"{_f(s['charge_energy_wh'], '{:.3f}')}/"
                      f"{_f(s['discharge_energy_wh'], '{:.3f}')}",
                      _f(s["max_temperature_c"], "{:.1f}"))
    _numbers_unwrapped(steps, 1, 2, 4, 5, 6)
    out(steps)

    cycles = report.cycles
    if cycles:
        shown = cycles if len(cycles) <= 2 * SHOWN_CYCLES else \
            cycles[:SHOWN_CYCLES] + [None] + cycles[-SHOWN_CYCLES:]
        table = Table("cycle", "Ah in/out", "Wh in/out", "CE", "EE", "duration",
                      title=f"cycles ({len(cycles):,} rows; --json for all)", title_justify="left")
        for c in shown:
            if c is None:
                table.add_row("...", *[""] * 5)
                continue
            label = str(c["cycle_index"])
            if c["repeats"] != 1:  # counted cycles: each like the last simulated one
                last = c["cycle_index"] + c["repeats"] - 1
                if c.get("every") == 1 and last < 1e15:
                    label = f"{c['cycle_index']:,}-{last:,}"
                else:
                    label = f"{c['cycle_index']:,} (x{c['repeats']:,.3g})"
            table.add_row(label, f"{_f(c['charge_capacity_ah'])}/{_f(c['discharge_capacity_ah'])}",
                          f"{_f(c['charge_energy_wh'], '{:.3f}')}/"
                          f"{_f(c['discharge_energy_wh'], '{:.3f}')}",
                          _f(c["coulombic_efficiency"], "{:.2%}"),
                          _f(c["energy_efficiency"], "{:.2%}"), human_duration(c["duration_s"]))
        _numbers_unwrapped(table, 1, 2, 3, 4)
        out(table)

    if report.margins:
        table = Table("limit", "closest", "margin", "where", title="smallest margin to each "
                      "safety limit", title_justify="left")
        for name, m in report.margins.items():
            it = "".join(f"[{i}]" for i in m["iteration"])
            where = f"{m['text']} [dim]({m['path']}{it}, step {m['step_index']:,})[/dim] " \
                    f"at {human_duration(m['test_time_s'])}"
            unit = m["unit"]
            table.add_row(f"{name.replace('_', ' ')} {m['limit']:g} {unit}",
                          f"{m['value'] + 0.0:.4g} {unit}", f"{m['margin']:.4g} {unit}", where)
        out(table)

    if report.refusal:
        out(f"[red]validate and run refuse it[/red]: {report.refusal}", highlight=False)
    if report.warnings:
        out(f"[yellow]warnings ({len(report.warnings)}):[/yellow]", highlight=False)
        for w in report.warnings:
            out(f"  - {w}", highlight=False, soft_wrap=True)
    for note in report.notes:
        out(f"note: {note}", highlight=False, soft_wrap=True)
