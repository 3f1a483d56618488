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
    procedure_output_aside,
    station_option,
    user_errors,
)

SHOWN_CYCLES = 5  # first and last cycles printed; --json gives them all
NARROW_COLUMNS = 120  # below this terminal width steps and margins are lists, not tables


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

    with procedure_output_aside(as_json):
        prep = prepare(procedure, station_path=station, cell_ref=cell,
                       params=parse_params(params))
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


def _ends_on(reasons: dict[str, Any], count: float) -> str:
    """What ends a step: its reason, or, when that varies, each with how often."""
    if not reasons:
        return "-"
    texts = [(k.partition(": ")[2] or k, n) for k, n in reasons.items()]
    if len(texts) == 1:
        return texts[0][0]
    shown = "; ".join(f"{text} ({n:,} of {count:,})" for text, n in texts[:2])
    return shown + (f"; {len(texts) - 2} other" if len(texts) > 2 else "")


def where_in_loops(path: str, iteration: list[int]) -> str:
    """"steps[0].steps[3], iterations 14, 12": the place in the file and, inside loops, the
    iteration of each loop around it (outermost first)."""
    if not iteration:
        return path
    if len(iteration) == 1:
        return f"{path}, iteration {iteration[0]:,}"
    return f"{path}, iterations {', '.join(f'{i:,}' for i in iteration)} from the outermost loop"


def _step_figures(s: dict[str, Any]) -> tuple[str, str, str]:
    """Ah in/out, Wh in/out, max °C of a folded step."""
    return (f"{_f(s['charge_capacity_ah'], '{:.3f}')}/{_f(s['discharge_capacity_ah'], '{:.3f}')}",
            f"{_f(s['charge_energy_wh'], '{:.3f}')}/{_f(s['discharge_energy_wh'], '{:.3f}')}",
            _f(s["max_temperature_c"], "{:.1f}"))


def _print_steps(report: Any, narrow: bool) -> None:
    from rich.table import Table

    from labctl.plan.report import human_duration

    title = "steps (folded per loop; durations and Ah/Wh per run)"
    if narrow:  # a table of seven columns is unreadable at 80: two lines a step
        console.print(f"[bold]{title}[/bold]", highlight=False)
        for s in report.steps:
            ah, wh, hot = _step_figures(s)
            console.print(f"  {s['text']} [dim]({s['path']})[/dim]", highlight=False,
                          soft_wrap=True)
            console.print(f"    {s['count']:,} x {human_duration(s['duration_s'])}; ends: "
                          f"{_ends_on(s['end_reasons'], s['count'])}; Ah {ah}; Wh {wh}; "
                          f"max {hot} °C", highlight=False)
        return
    steps = Table("step (where)", "runs", "duration", "ends on", "Ah in/out", "Wh in/out",
                  "max °C", title=title, title_justify="left")
    for s in report.steps:
        steps.add_row(f"{s['text']} [dim]({s['path']})[/dim]", f"{s['count']:,}",
                      human_duration(s["duration_s"]), _ends_on(s["end_reasons"], s["count"]),
                      *_step_figures(s))
    _numbers_unwrapped(steps, 1, 2, 4, 5, 6)
    console.print(steps)


def _print_margins(report: Any, narrow: bool) -> None:
    from rich.table import Table

    from labctl.plan.report import human_duration

    title = "smallest margin to each hard safety limit (docs/plan.md)"
    rows = []
    for name, m in report.margins.items():
        unit = m["unit"]
        margin = f"{m['margin']:.4g} {unit}" + (" (reached)" if m.get("reached") else "")
        if name.endswith("_current") and m["value"] == 0:
            where = "never flows"
        else:
            where = f"{m['text']} [dim]({where_in_loops(m['path'], m['iteration'])}, step " \
                    f"{m['step_index']:,})[/dim] at {human_duration(m['test_time_s'])}"
        rows.append((f"{name.replace('_', ' ')} {m['limit']:g} {unit}",
                     f"{m['value'] + 0.0:.4g} {unit}", margin, where))
    if narrow:
        console.print(f"[bold]{title}[/bold]", highlight=False)
        for limit, closest, margin, where in rows:
            console.print(f"  {limit}: closest {closest}, margin {margin}", highlight=False)
            console.print(f"    {where}", highlight=False, soft_wrap=True)
        return
    table = Table("limit", "closest", "margin", "where", title=title, title_justify="left")
    for row in rows:
        table.add_row(*row)
    console.print(table)


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
    out(f"outcome: [{colour}]{report.status}[/{colour}] ({report.reason})", highlight=False,
        soft_wrap=True)
    if report.refusal:  # before the tables: the first thing a technician must see
        out(f"[red]validate and run refuse it[/red]: {report.refusal}", highlight=False,
            soft_wrap=True)

    narrow = console.width < NARROW_COLUMNS
    _print_steps(report, narrow)

    cycles = report.cycles
    if cycles:
        shown = cycles if len(cycles) <= 2 * SHOWN_CYCLES else \
            cycles[:SHOWN_CYCLES] + [None] + cycles[-SHOWN_CYCLES:]
        table = Table("cycle", "Ah in/out", "Wh in/out", "CE", "EE", "duration",
                      title=f"cycles ({len(cycles):,} row{'s' if len(cycles) != 1 else ''}"
                            "; --json for all)", title_justify="left")
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
        _print_margins(report, narrow)

    if report.warnings:
        out(f"[yellow]warnings ({len(report.warnings)}):[/yellow]", highlight=False)
        for w in report.warnings:
            out(f"  - {w}", highlight=False, soft_wrap=True)
    for note in report.notes:
        out(f"note: {note}", highlight=False, soft_wrap=True)
