"""`labctl import FILE [FILE ...]` and `labctl import --watch DIR`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from labctl.commands.common import (
    EXIT_BAD_INPUT,
    emit_json,
    err_console,
    json_option,
    results_option,
    user_errors,
)
from labctl.errors import LabctlError
from labctl.importers.registry import FORMAT_NAMES


@click.command("import")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["auto", *FORMAT_NAMES]), default="auto",
              show_default=True, help="Force a format instead of detecting it from the content.")
@click.option("--cell", default=None, help="Cell file (kept with the run) or cell name.")
@click.option("--name", default=None, help="A name for the run (goes into its run id).")
@click.option("--watch", "watch_dir", type=click.Path(file_okay=False), default=None,
              help="Import each new or changed file in DIR once it stops growing (Ctrl-C stops).")
@click.option("--force", is_flag=True, help="Import a file again even if a run already holds "
              "the same content (sha256).")
@click.option("--cycles", type=click.Choice(["file", "labctl"]), default="file",
              show_default=True, help="file: the file's own cycle numbers; labctl: a new "
              "cycle when a charging step follows a discharging one, the same rule for every "
              "cycler (to compare cycle N across vendors).")
@results_option
@json_option
@user_errors
def import_cmd(files: tuple[str, ...], fmt: str, cell: str | None, name: str | None,
               watch_dir: str | None, force: bool, cycles: str, results: str,
               as_json: bool) -> None:
    """Import cycler and potentiostat files (Arbin, BioLogic, Maccor, Neware, BDF, PEC,
    impedance spectra) as runs in the results store, with status `imported`.

    The format is detected from the file's content; see docs/import.md.
    """
    from labctl.importers.api import import_file

    if watch_dir is not None:
        if files:
            raise LabctlError("give either FILE ... or --watch DIR, not both")
        from labctl.importers.watch import watch

        watch(Path(watch_dir), results, fmt=fmt, cell=cell, force=force, as_json=as_json,
              cycles=cycles)
        return
    if not files:
        raise LabctlError("nothing to import: give one or more files, or --watch DIR")
    runs, errors = [], []
    for f in files:
        try:
            r = import_file(f, results, fmt=fmt, cell=cell, name=name, force=force,
                            cycles=cycles)
        except LabctlError as exc:
            errors.append(str(exc))
            if not as_json:
                err_console.print(f"[red]error[/red]: {exc}", highlight=False, soft_wrap=True)
            continue
        runs.append(r)
        if not as_json:
            if r.existing:
                click.echo(f"{f}: already imported as {r.path} (same sha256; --force imports "
                           "it again); nothing created")
            else:
                click.echo(f"{f}: {r.format}, {r.rows} rows, {r.cycles} cycles -> {r.path}")
    if as_json:
        payload = {"ok": not errors, "runs": [r.as_dict() for r in runs]}
        if errors:
            payload["errors"] = errors
        emit_json(payload)
    if errors:
        sys.exit(EXIT_BAD_INPUT)
