"""`labctl import --watch DIR`: import each new or changed file once it stops growing.

Polls the folder (portable, no extra dependency): a file is imported when its size
and modification time have stayed the same for `settle_s`. A file already imported
(same sha256) is not imported again; one that cannot be read is reported once per
version and the watch goes on. Ctrl-C stops.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from labctl.errors import LabctlError


def watch(folder: Path, results: str, fmt: str = "auto", cell: str | None = None,
          force: bool = False, as_json: bool = False, settle_s: float = 2.0,
          cycles: str = "file",
          poll_s: float = 1.0, max_polls: int | None = None) -> None:
    from labctl.commands.common import emit_json, err_console
    from labctl.importers.api import import_file

    if not folder.is_dir():
        raise LabctlError(f"--watch {folder}: not a folder")
    seen: dict[Path, tuple[int, int]] = {}  # file -> (size, mtime_ns) last handled
    pending: dict[Path, tuple[tuple[int, int], float]] = {}  # file -> (stat, since)
    results_dir = Path(results).resolve()
    polls = 0
    if not as_json:
        click.echo(f"watching {folder} (Ctrl-C stops)")
    try:
        while max_polls is None or polls < max_polls:
            polls += 1
            now = time.monotonic()
            for p in sorted(folder.rglob("*")):
                if not p.is_file() or p.name.startswith(".") or results_dir in p.resolve().parents:
                    continue
                try:
                    st = p.stat()
                except OSError:
                    continue
                key = (st.st_size, st.st_mtime_ns)
                if seen.get(p) == key:
                    continue
                old = pending.get(p)
                if old is None or old[0] != key:
                    pending[p] = (key, now)
                    continue
                if now - old[1] < settle_s:
                    continue
                pending.pop(p, None)
                seen[p] = key
                try:
                    r = import_file(p, results, fmt=fmt, cell=cell, force=force, cycles=cycles)
                except LabctlError as exc:
                    if as_json:
                        emit_json({"ok": False, "error": str(exc)})
                    else:
                        err_console.print(f"[red]error[/red]: {exc}", highlight=False,
                                          soft_wrap=True)
                    continue
                if as_json:
                    emit_json({"ok": True, "runs": [r.as_dict()], "existing": r.existing})
                elif r.existing:
                    click.echo(f"{p}: already imported as {r.path}")
                else:
                    click.echo(f"{p}: {r.format}, {r.rows} rows, {r.cycles} cycles -> {r.path}")
            time.sleep(poll_s)
    except KeyboardInterrupt:
        if not as_json:
            click.echo("watch stopped")
