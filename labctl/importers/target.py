"""What `labctl analyze <name> TARGET` analyses: a run, or a plain data file imported first.

A file (cycler export, spectrum) is imported into the results store once, by its
sha256 (a second analysis of the same file reuses that run), and analysed as a
run, so results go to RUN/analysis/<name>/ and never beside the input (which may
be read-only or shared). The run's path is printed on stderr (stdout stays JSON
for --json).
"""

from __future__ import annotations

from pathlib import Path


def run_or_import(target: str, results: str) -> Path:
    """The run directory for TARGET: a run path or id prefix, or a data file imported
    (or found already imported) into `results`."""
    from labctl.commands.common import err_console, resolve_run

    path = Path(target)
    if path.is_file():
        from labctl.importers.api import import_file

        r = import_file(path, results)
        what = "already imported as" if r.existing else f"imported ({r.format}) as"
        err_console.print(f"{path}: {what} {r.path}", highlight=False, soft_wrap=True)
        return r.path
    return resolve_run(target, results)
