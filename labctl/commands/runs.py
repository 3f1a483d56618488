"""`labctl ls`, `show`, `export` and `doctor`: the results store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

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
from labctl.errors import LabctlError


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
    from labctl.report.idtable import print_id_table

    rows = [(str(r.get("run_id")), str(r.get("procedure")), str(r.get("cell")),
             str(r.get("status")), _started(r.get("started"))) for r in runs]
    print_id_table(console, ("run", "procedure", "cell", "status", "started"), rows)


def _started(iso: object) -> str:
    """`2026-12-05T07:22:22+00:00` -> `2026-12-05 07:22:22` (the store writes UTC)."""
    text = str(iso)
    return text[:19].replace("T", " ") if len(text) >= 19 and text[10:11] == "T" else text


# A longer run's steps table shows its first and last FOLD_EDGE steps: a cycle-life run's
# thousands of rows helped nobody on a terminal, and drawing them took seconds (rich lays
# out every cell: ~0.4 s for the 500 steps of a 100-cycle run, measured).
FOLD_ABOVE = 40
FOLD_EDGE = 15


@click.command()
@click.argument("run")
@click.option("--all", "all_steps", is_flag=True,
              help=f"Print every step (a run of more than {FOLD_ABOVE} steps shows its first "
                   f"and last {FOLD_EDGE}; --json always has them all).")
@results_option
@json_option
@user_errors
def show(run: str, all_steps: bool, results: str, as_json: bool) -> None:
    """Summarise one run (a run directory or a run id)."""
    from labctl.store.run import open_run

    r = open_run(resolve_run(run, results))
    summary = r.summary()
    steps = r.columns("steps")  # no pandas: show must answer at once
    rows = [dict(zip(steps, values, strict=True)) for values in zip(*steps.values(), strict=True)]
    measured: dict = {}
    if r.record_tables():  # EIS, abuse...: what they measured (pandas only for those runs)
        from labctl.report.run_results import record_results

        measured = record_results(r)
    if as_json:
        emit_json({"ok": True, "run_dir": str(r.path), "meta": r.meta, "summary": summary,
                   "results": measured, "steps": rows})
        return
    from labctl.commands.running import print_record_results

    console.print(f"run directory: {r.path}", highlight=False, soft_wrap=True)
    print_summary(summary)
    print_record_results(measured)
    if not rows:
        return
    if all_steps or len(rows) <= FOLD_ABOVE:
        console.print(steps_table(rows, console.width))
        return
    console.print(steps_table(rows[:FOLD_EDGE] + rows[-FOLD_EDGE:], console.width,
                              fold=(FOLD_EDGE, len(rows) - 2 * FOLD_EDGE)))


_CYCLE_KEYS = {"cycle_index", "charge_capacity_ah", "discharge_capacity_ah", "charge_energy_wh",
               "discharge_energy_wh", "coulombic_efficiency", "energy_efficiency",
               "complete_cycles", "efficiency_note"}


def print_summary(summary: dict) -> None:
    """`key: value unit` lines, each value with its unit and the instrument's precision."""
    from labctl.report.quantities import format_quantity, label

    moved = any((summary.get(k) or 0) > 0 for k in ("charge_capacity_ah", "discharge_capacity_ah"))
    for key, value in summary.items():
        if not moved and key in _CYCLE_KEYS:
            continue  # an EIS or abuse run: its own results follow, not "0 Ah"
        if value is None and key in ("coulombic_efficiency", "energy_efficiency"):
            continue  # efficiency_note says why there is none
        if key == "efficiency_note":
            console.print(f"  {value}", highlight=False, soft_wrap=True)
            continue
        console.print(f"  {label(key)}: {format_quantity(key, value)}", highlight=False,
                      soft_wrap=True)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def steps_table(steps: Any, width: int, fold: tuple[int, int] | None = None) -> Table:
    """One row per step, readable in `width` columns (80 or more): short headers, the step
    text and end reason cut with an ellipsis (the full text is in `labctl show --json`).
    `fold` = (position, count): a line saying that many steps are not shown goes there."""
    from rich import box

    from labctl.report.quantities import format_duration_words

    # The step's text names its kind ("Charge at ..."): no kind column, more room for it.
    if hasattr(steps, "to_dict"):  # a DataFrame
        steps = steps.to_dict(orient="records")
    rows = [(str(row["step_index"]), str(row["cycle_index"]), str(row["text"]),
             str(row["end_reason"]), format_duration_words(row["duration_s"]),
             f"{row['charge_capacity_ah']:.4f}", f"{row['discharge_capacity_ah']:.4f}")
            for row in steps]
    heads = ("#", "cyc", "step", "end", "time", "Ah in", "Ah out")
    widths = [max([len(h)] + [len(r[k]) for r in rows]) for k, h in enumerate(heads)]
    # Room left for the two text columns: 2 spaces between columns, 1 at each edge.
    free = width - sum(w for k, w in enumerate(widths) if k not in (2, 3)) - 2 * 6 - 2
    want_step, want_end = widths[2], widths[3]
    if want_step + want_end > free:
        end_w = min(want_end, max(10, free // 3))
        widths[2], widths[3] = min(max(12, free - end_w), want_step), end_w
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True)
    for k, head in enumerate(heads):
        table.add_column(head, justify="left" if k in (2, 3) else "right", no_wrap=True,
                         min_width=widths[k], max_width=widths[k])
    for k, r in enumerate(rows):
        if fold is not None and k == fold[0]:
            table.add_row("…", "", f"{fold[1]} steps not shown", "(show --all)", "", "", "")
        table.add_row(*r[:2], _cut(r[2], widths[2]), _cut(r[3], widths[3]), *r[4:])
    return table


@click.command()
@click.argument("run")
@click.option("--format", "fmt", required=True, help="csv, parquet or bdf (or a plugin's format).")
@click.option("-o", "--output", required=True, type=click.Path(), help="Where to write.")
@click.option("--force", is_flag=True, help="Replace an existing output file or folder.")
@results_option
@json_option
@user_errors
def export(run: str, fmt: str, output: str, results: str, force: bool, as_json: bool) -> None:
    """Export a run's data (BDF = Battery Data Format column names).

    An existing output (or its `.json` description) is never replaced without --force."""
    from labctl.plugins import build_registry
    from labctl.store.run import open_run

    r = open_run(resolve_run(run, results))
    _check_output(Path(output), Path(r.path), force)
    exporter = build_registry().get("exporter", fmt)
    written = exporter.export(r, Path(output))
    if as_json:
        emit_json({"ok": True, "format": fmt, "output": str(written)})
    else:
        console.print(f"wrote {written}", highlight=False)


def _check_output(out: Path, run_dir: Path, force: bool) -> None:
    """Refuse to overwrite anything without --force, and the run itself ever."""
    target, run_root = out.resolve(), run_dir.resolve()
    if target == run_root or run_root in target.parents or target in run_root.parents:
        raise LabctlError(f"{out}: is the run directory, inside it or above it; export to "
                          "another place (the run's own files are never overwritten)")
    if force:
        return
    existing = [p for p in (out, out.with_name(out.name + ".json")) if p.exists() or p.is_symlink()]
    if existing:
        what = "folder" if existing[0].is_dir() else "file"
        raise LabctlError(f"{existing[0]}: this {what} already exists; give --force to replace "
                          "it, or choose another -o")


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

