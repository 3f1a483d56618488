"""What every `labctl` command shares: JSON output, option decorators, exit codes,
user-error handling and run lookup.

Command modules and analysis plugins import these helpers from here, never from
`labctl.cli` (which only lists the commands).
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any

import click

from labctl.errors import LabctlError, ValidationError

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _escape_controls(text: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def terminal_safe(text: str) -> str:
    """Text from files made harmless for a terminal and for rich: control characters
    (escape sequences that move the cursor or retitle the window) shown as \\xNN,
    `[markup]` shown literally. Newlines and tabs stay."""
    from rich.markup import escape as rich_escape

    return rich_escape(_escape_controls(text))


def _make_consoles() -> None:
    """`console` and `err_console`, made on first use: rich costs ~15 ms to import, which
    a command that prints only JSON (`labctl run --json`) never needs."""
    from rich.console import Console
    from rich.segment import Segment

    class _TerminalSafeConsole(Console):
        """A rich Console that never passes a control character from *text* to the terminal.

        Step texts, names and messages come from files; an escape sequence in one could
        clear the screen or retitle the terminal. Rich strips a few control codes but not
        ESC, so every non-control segment is escaped (\\x1b) here, after layout and before
        rich adds its own styling codes. emoji=False: ":smile:" in a file stays as written.
        """

        def on_broken_pipe(self) -> None:
            """`labctl show RUN | head`: quiet, with the same status as click's output."""
            _quiet_stdout()
            raise SystemExit(EXIT_BROKEN_PIPE)

        def _render_buffer(self, buffer: Any) -> str:
            return super()._render_buffer(
                seg if seg.control or not _CONTROL.search(seg.text)
                else Segment(_escape_controls(seg.text), seg.style, seg.control)
                for seg in buffer)

    globals().update(console=_TerminalSafeConsole(emoji=False),
                     err_console=_TerminalSafeConsole(stderr=True, emoji=False))


def _console(name: str) -> Any:
    if name not in globals():
        _make_consoles()
    return globals()[name]


def __getattr__(name: str) -> Any:
    # `from labctl.commands.common import console` (and `common.console`) make the
    # consoles on first use (PEP 562).
    if name in ("console", "err_console"):
        return _console(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

EXIT_RUN_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as `yes | head` leaves `yes`
EXIT_INTERRUPTED = 130


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    if isinstance(value, Path):
        return str(value)
    return value




def print_error(message: object) -> None:
    """`error: MESSAGE` on stderr; the message is user text, never markup or emoji codes."""
    _console("err_console").print(f"[red]error[/red]: {terminal_safe(str(message))}",
                                  highlight=False, soft_wrap=True, emoji=False)


def emit_json(payload: dict) -> None:
    click.echo(json.dumps(_jsonable(payload), indent=2, default=str))


def procedure_output_aside(as_json: bool) -> Any:
    """With --json, what a procedure prints while it is read, planned or run (a Python
    procedure may print) goes to stderr: stdout carries the JSON alone, for scripts."""
    import contextlib

    return contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()


def user_errors(func):
    """Turn LabctlError into a clear message and exit status 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        as_json = kwargs.get("as_json", False)
        try:
            return func(*args, **kwargs)
        except ValidationError as exc:
            if as_json:
                emit_json({"ok": False, "problems": [p.as_dict() for p in exc.problems]})
            else:
                for problem in exc.problems:
                    print_error(problem)
            sys.exit(EXIT_BAD_INPUT)
        except LabctlError as exc:
            if as_json:
                emit_json({"ok": False, "error": str(exc)})
            else:
                print_error(exc)
            sys.exit(EXIT_BAD_INPUT)
        except BrokenPipeError:  # `labctl ... | head`: the reader has what it wanted
            _quiet_stdout()
            sys.exit(EXIT_BROKEN_PIPE)
        except OSError as exc:  # read-only results folder, full disk, file in the way...
            from labctl.store.atomic import describe_os_error

            message = f"{exc.filename or 'file'}: {describe_os_error(exc)}"
            if as_json:
                emit_json({"ok": False, "error": message})
            else:
                print_error(message)
            sys.exit(EXIT_BAD_INPUT)

    return wrapper


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's exit flush raises nothing more."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def parse_params(values: tuple[str, ...]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise LabctlError(f"--param {item!r}: write it as name=value")
        params[name.strip()] = value.strip()
    return params


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
station_option = click.option(
    "--station", type=click.Path(dir_okay=False), help="Station file (default: instruments/sim.yaml)."
)
cell_option = click.option("--cell", help="Cell file, or a preset name such as lfp-2p2ah (default).")
param_option = click.option(
    "--param", "params", multiple=True, metavar="NAME=VALUE", help="Override a procedure parameter."
)
results_option = click.option(
    "--results", type=click.Path(file_okay=False), default="results", show_default=True,
    help="Results store folder.",
)


def resolve_run(run: str, results: str) -> Path:
    """A run directory given as a path, or a run-id prefix in the results store."""
    path = Path(run)
    if path.is_dir():
        return path
    root = Path(results)
    if path.is_absolute() or len(path.parts) != 1 or any(c in run for c in "*?["):
        # A path (not a run-id prefix) that is not a folder; glob would refuse it with a
        # traceback (absolute patterns) or match what the user did not mean (wildcards).
        what = "is not a folder" if path.exists() else "does not exist"
        raise LabctlError(f"no run {run!r}: that path {what}; give a run folder or a run id "
                          f"(or its start) in {root}")
    matches = sorted(p for p in root.glob(f"{run}*") if p.is_dir()) if root.is_dir() else []
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise LabctlError(f"no run {run!r}: not a folder, and no run id starting so in {root}")
    from labctl.store.catalog import ambiguous_list

    raise LabctlError(f"run id {run!r} is ambiguous in {root}: "
                      f"{ambiguous_list([m.name for m in matches])}")


def run_path_argument(run: str, results: str) -> Path:
    """A run directory given as a path or a run-id prefix in the results store."""
    return resolve_run(run, results)
