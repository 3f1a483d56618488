"""The `labctl` command: a table of sub-commands, each imported only when it is used.

Exit status: 0 done, 1 the run ended aborted or faulted, 2 bad input (a file,
an argument, an instrument that cannot be reached), 130 stopped by Ctrl-C.
Every command takes `--json` for scripts.

A new command lives in a module of its own (helpers in `labctl.commands.common`)
and is listed in COMMANDS below; nothing else imports this module.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from labctl.commands import gc_paused

# numpy's OpenBLAS starts a worker thread per core when numpy is imported, and each
# spins for ~0.1 s of CPU waiting for work (measured with perf: `blas_thread_server`)
# that these commands' small matrices never give it; on a 2-core bench PC that is CPU
# taken from the command itself. They run with one BLAS thread, unless the user chose
# otherwise (set before numpy is imported; the worker processes of `run --channel`
# inherit it). Analyses may multiply large matrices: they keep OpenBLAS's default.
_MULTITHREADED_BLAS = frozenset({"analyze", "console"})

# name -> (module:attribute, one-line help shown by `labctl --help` without importing it)
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("labctl.commands.running:validate",
                 "Check a procedure against a cell and a station without touching hardware."),
    "run": ("labctl.commands.running:run", "Validate, then run a procedure."),
    "plan": ("labctl.plan.command:plan",
             "Predict what a procedure will do, on the station's simulated twin."),
    "resume": ("labctl.commands.running:resume",
               "Continue an interrupted run from the step that was running."),
    "ls": ("labctl.commands.runs:list_runs_cmd", "List the runs in a results store."),
    "show": ("labctl.commands.runs:show", "Show a run's metadata, steps and cycles."),
    "export": ("labctl.commands.runs:export", "Export a run's timeseries (csv, parquet, bdf)."),
    "doctor": ("labctl.commands.runs:doctor", "Check run directories; optionally repair."),
    "status": ("labctl.commands.control:status", "Every active run: step, time, V, I, T."),
    "stop": ("labctl.commands.control:stop", "Stop running runs safely (outputs off)."),
    "pause": ("labctl.commands.control:pause", "Pause running runs: outputs off."),
    "continue": ("labctl.commands.control:continue_", "Continue paused runs."),
    "plugins": ("labctl.commands.extensions:plugins",
                "List every registered driver, step type, analysis and exporter."),
    "analyze": ("labctl.commands.extensions:analyze",
                "Analyse a run (or a data file) and store the result with the run."),
    "sim": ("labctl.commands.extensions:sim", "Simulated instruments for real drivers."),
    "import": ("labctl.importers.command:import_cmd",
               "Import vendor cycler/potentiostat files as runs (Arbin, BioLogic, Maccor, ...)."),
    "console": ("labctl.console.command:console_cmd",
                "Operator console in the browser (needs the [console] extra)."),
}


class LazyCommands(click.Group):
    """A click group that imports a sub-command's module only when that command runs,
    so `labctl --help` and light commands start without loading the heavy ones."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, _, attr = target[0].partition(":")
        if name not in _MULTITHREADED_BLAS and "numpy" not in sys.modules:
            os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        with gc_paused():  # imports make no garbage for the collector to look for
            command = getattr(importlib.import_module(module_name), attr)
        command.name = name
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, help_text) in sorted(COMMANDS.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyCommands)
@click.version_option(package_name="labctl")
def main() -> None:
    """labctl: run battery test procedures on real or simulated benches."""


def console() -> None:
    """The `labctl` command (console script and `python -m labctl.cli`): `main` in a process
    of its own, which may treat what it imports as never garbage (commands.gc_paused),
    reuse the compiled methods of its dataclasses (dataclass_code_cache), parsed YAML
    texts (yaml_cache) and ceilings verdicts (plan/verdicts.py), and end without
    the interpreter's teardown (process_exit)."""
    import labctl.commands
    from labctl import yaml_cache
    from labctl.dataclass_code_cache import install

    labctl.commands.FREEZE_AFTER_IMPORTS = True
    code_cache = install()
    parse_cache = yaml_cache.install()
    try:
        main()
    except SystemExit as stop:
        from labctl.process_exit import leave_now

        # The ceilings verdicts, if a command checked a procedure (found through
        # sys.modules: --help and --version import nothing for them).
        verdicts = getattr(sys.modules.get("labctl.plan.verdicts"), "ACTIVE", None)
        for cache in (code_cache, parse_cache, verdicts):
            if cache is not None:
                cache.save()
        leave_now(stop)
        raise


if __name__ == "__main__":  # pragma: no cover
    console()
