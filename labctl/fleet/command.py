"""`--all`, `--where`, `--workers`, `--scheduler` for every `labctl analyze NAME` command.

`add_fleet_options(command)` is applied by the `analyze` group to each analysis
command that takes one run: its RUN argument becomes optional and, with `--all`,
the command runs over every finished run of the store (labctl/fleet/analyze.py)
with the same options it would use for one run. Importing this module does not
import Dask.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

FLEET_PARAMS = ("all_runs", "where", "workers", "scheduler", "runs_per_task", "lot")


def add_fleet_options(command: click.Command, name: str) -> click.Command:
    """Give `command` the fleet options (in place); commands without one run are left as is."""
    from labctl.fleet.tasks import run_argument

    arg_name = run_argument(command)
    if arg_name is None or command.callback is None or any(
            p.name == "all_runs" for p in command.params):
        return command
    for p in command.params:
        if p.name == arg_name:
            p.required = False
    command.params.extend([
        click.Option(["--all", "all_runs"], is_flag=True,
                     help="Analyse every finished run of the results store (one Dask task per "
                          f"run) and write RESULTS/fleet/{name}.parquet with outliers flagged."),
        click.Option(["--where"], default=None, metavar="QUERY",
                     help="With --all: only runs matching this pandas query on the catalog, e.g. "
                          "\"procedure == 'cycling' and cell == 'lfp-2p2ah'\"."),
        click.Option(["--workers"], type=click.IntRange(min=0), default=None,
                     help="With --all: worker processes of the local Dask cluster (default: one "
                          "per core; 0 = one after another in this process)."),
        click.Option(["--scheduler"], default=None, metavar="tcp://HOST:8786",
                     help="With --all: use this running Dask scheduler and its workers."),
        click.Option(["--runs-per-task"], type=click.IntRange(min=1), default=None,
                     metavar="N",
                     help="With --all: let one Dask task analyse up to N runs (default 1: one "
                          "task per run); for fleets of many thousands of runs."),
        click.Option(["--lot"], default=None, metavar="COLUMNS",
                     help="With --all: compare each run only with the runs of its lot, the "
                          "runs alike in these catalog columns, e.g. 'cell' or "
                          "'cell,procedure' (default: every run selected is one lot)."),
    ])
    single = command.callback

    def callback(**kwargs: Any) -> Any:
        fleet = {k: kwargs.pop(k, None) for k in FLEET_PARAMS}
        if not fleet["all_runs"]:
            used = [f"--{k.replace('_', '-')}" for k in FLEET_PARAMS[1:]
                    if fleet[k] is not None]
            if used:
                raise click.UsageError(f"{', '.join(used)}: only with --all (every run of the "
                                       "store)")
            if kwargs.get(arg_name) is None:
                raise click.UsageError(f"name a run ({arg_name.upper()}) or use --all")
            return single(**kwargs)
        if kwargs.get(arg_name) is not None:
            raise click.UsageError(f"give either {arg_name.upper()} or --all, not both")
        if fleet["workers"] is not None and fleet["scheduler"]:
            raise click.UsageError("--workers is for the local cluster; with --scheduler the "
                                   "scheduler's workers do the work")
        return _run_fleet(name, arg_name, kwargs, fleet)

    command.callback = callback
    return command


def _run_fleet(name: str, arg_name: str, kwargs: dict[str, Any], fleet: dict[str, Any]) -> None:
    from labctl.commands.common import EXIT_RUN_FAILED, user_errors

    @user_errors
    def go(as_json: bool) -> bool:
        from labctl.fleet.analyze import analyze_all

        results = kwargs.get("results") or "results"
        options = {k: v for k, v in kwargs.items() if k not in (arg_name, "as_json")}
        options["results"] = str(Path(results).resolve())
        if as_json:
            outcome = analyze_all(name, results=results, options=options, where=fleet["where"],
                                  workers=fleet["workers"], scheduler=fleet["scheduler"],
                                  runs_per_task=fleet["runs_per_task"] or 1,
                                  lot=fleet["lot"])
            from labctl.commands.common import emit_json

            emit_json(outcome.as_dict())
        else:
            outcome = _with_progress(name, results, options, fleet)
            _print(outcome)
        return not outcome.failed

    if not go(as_json=bool(kwargs.get("as_json"))):
        sys.exit(EXIT_RUN_FAILED)


def _with_progress(name: str, results: str, options: dict[str, Any], fleet: dict[str, Any]
                   ) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from labctl.commands.common import err_console
    from labctl.fleet.analyze import analyze_all

    # Redrawn twice a second (not rich's 10): the client shares the cores with the workers.
    with Progress(TextColumn(f"analyze {name}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("runs"), TimeElapsedColumn(), console=err_console,
                  transient=False, refresh_per_second=2) as bar:
        task = bar.add_task(name, total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        def started(outcome: Any) -> None:
            if outcome.dashboard:
                bar.console.print(f"Dask dashboard: {outcome.dashboard}", highlight=False)

        return analyze_all(name, results=results, options=options, where=fleet["where"],
                           workers=fleet["workers"], scheduler=fleet["scheduler"],
                           progress=progress, on_started=started,
                           runs_per_task=fleet["runs_per_task"] or 1, lot=fleet["lot"])


def _print(outcome: Any) -> None:
    from labctl.commands.common import console

    n, failed = len(outcome.results), outcome.failed
    rate = n / outcome.elapsed_s if outcome.elapsed_s > 0 else float("nan")
    console.print(f"{outcome.analysis}: {n - len(failed)} of {n} runs analysed in "
                  f"{outcome.elapsed_s:.1f} s ({rate:.2f} runs/s)", highlight=False)
    if outcome.skipped_running:
        console.print(f"  {outcome.skipped_running} running runs left out", highlight=False)
    for r in failed[:20]:
        console.print(f"  failed: {r['run_path']}: {r.get('error')}", highlight=False,
                      soft_wrap=True)
    if len(failed) > 20:
        console.print(f"  ... and {len(failed) - 20} more (see the fleet table's error column)",
                      highlight=False)
    median = (f"the median of the run's lot; lots by {', '.join(outcome.lot)}" if outcome.lot
              else "the median")
    if outcome.outliers:
        shown = ", ".join(outcome.outliers[:10]) + (" ..." if len(outcome.outliers) > 10 else "")
        console.print(f"  outliers (> 3 scaled MADs from {median}): {len(outcome.outliers)}: "
                      f"{shown}", highlight=False, soft_wrap=True)
    else:
        console.print(f"  no outliers (> 3 scaled MADs from {median})", highlight=False)
    console.print(f"  fleet table: {outcome.table}", highlight=False, soft_wrap=True)
    if outcome.per_item:
        console.print(f"  per-item table: {outcome.per_item}", highlight=False, soft_wrap=True)
    console.print(f"  plot: {outcome.plot}", highlight=False, soft_wrap=True)
