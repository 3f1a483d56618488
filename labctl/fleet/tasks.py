"""What one Dask task does for `labctl analyze NAME --all`: analyse one run.

The task calls the analysis' own `labctl analyze NAME RUN --json` command function
(its click callback, in the worker process), so what lands in the run's directory
is written by exactly the code the single-run command runs: the same files, bit
for bit. The JSON the command prints is captured per thread (a worker may run
several tasks in threads) and returned; an error is returned, not raised, so one
broken run never stops the others.
"""

from __future__ import annotations

import gc
import io
import json
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_local = threading.local()
_install_lock = threading.Lock()
# A Dask worker with several threads starts several tasks at once. Some packages import
# their own modules in their __init__ (the procedures, cells, each analysis): imported
# first by two threads entering through different modules, one thread can be handed a
# half-initialised module. Tasks hold this lock for the part that first imports them.
first_imports = threading.Lock()


class _ThreadStdout:
    """sys.stdout that sends a thread's writes to its own buffer while it captures."""

    def __init__(self, real: Any):
        self._real = real

    def _target(self) -> Any:
        return getattr(_local, "buffer", None) or self._real

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        return False if getattr(_local, "buffer", None) else self._real.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)


def _capture_start() -> io.StringIO:
    with _install_lock:
        if not isinstance(sys.stdout, _ThreadStdout):
            sys.stdout = _ThreadStdout(sys.stdout)
    _local.buffer = io.StringIO()
    return _local.buffer


def _capture_stop() -> None:
    _local.buffer = None


def analysis_command(name: str) -> Any:
    """The click command of analysis `name` (as `labctl analyze NAME` builds it)."""
    from labctl.plugins import build_registry

    info = build_registry().get("analysis", name)
    if info.command is None:
        from labctl.errors import LabctlError

        raise LabctlError(f"analysis {name!r} has no command to run over a fleet")
    return info.command()


def run_argument(command: Any) -> str | None:
    """The name of the command's single run argument (RUN or TARGET), if it has one."""
    import click

    args = [p for p in command.params if isinstance(p, click.Argument)]
    if len(args) == 1 and args[0].nargs == 1:
        return args[0].name
    return None


def command_defaults(command: Any) -> dict[str, Any]:
    """The value of every option as the command line would give it when not typed."""
    import click

    ctx = click.Context(command)
    out = {}
    for p in command.params:
        if isinstance(p, click.Argument) or p.name is None:
            continue
        value = p.get_default(ctx, call=True)
        out[p.name] = p.type_cast_value(ctx, value) if value is not None else (
            () if p.multiple else None)
    return out


def analyze_one(name: str, run_path: str, options: dict[str, Any]) -> dict[str, Any]:
    """Analyse one run like `labctl analyze NAME RUN --json [options]`; never raises.

    Returns {"run_path", "ok", "summary", "folder"} or {"run_path", "ok": False, "error"}.
    """
    from labctl.errors import LabctlError, ValidationError

    buffer = _capture_start()
    try:
        with first_imports:
            command = analysis_command(name)
        callback = getattr(command.callback, "__wrapped__", command.callback)
        arg = run_argument(command)
        callback(**{**command_defaults(command), **options, arg: run_path, "as_json": True})
        payload = _last_json(buffer.getvalue())
        ok = bool(payload.get("ok", True))
        return {"run_path": run_path, "ok": ok, "summary": payload.get("summary"),
                "folder": payload.get("folder"), "error": payload.get("error"),
                "items": per_item_rows(name, payload.get("folder")) if ok else None}
    except ValidationError as exc:
        return {"run_path": run_path, "ok": False,
                "error": "; ".join(str(p) for p in exc.problems)}
    except LabctlError as exc:
        return {"run_path": run_path, "ok": False, "error": str(exc)}
    except SystemExit as exc:
        return {"run_path": run_path, "ok": False, "error": f"the analysis exited ({exc.code})"}
    except Exception as exc:  # a broken run: record it, the others go on
        last = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f" at {last[0].filename}:{last[0].lineno}" if last else ""
        return {"run_path": run_path, "ok": False,
                "error": f"{type(exc).__name__}: {exc}{where}"}
    finally:
        _capture_stop()


def analyze_many(name: str, run_paths: list[str], options: dict[str, Any]
                 ) -> list[dict[str, Any]]:
    """`analyze_one` for several runs in one task (one scheduler round trip for all)."""
    freeze_start_up()
    return [analyze_one(name, path, options) for path in run_paths]


_frozen = False


def freeze_start_up() -> None:
    """Keep Python's cyclic garbage collector off what this worker process holds before
    its first analysis (imported modules, Dask's own state), for the process' life.

    An analysis allocates many short-lived objects (matplotlib artists, pandas frames),
    so the collector runs hundreds of times per run, and each full pass walks every live
    object: ~4 % of a run's CPU serially, more in a Dask worker, whose heap holds ~20 %
    more objects (bench/fleet.py). The start-up objects live as long as the process, so
    skipping them loses nothing; what the analyses create is collected as usual. Done
    once per process: freezing again and again would also freeze garbage of the runs
    before, and a worker's memory then grew from 300 to 650 MiB in 100 runs.
    """
    global _frozen
    with _install_lock:
        if _frozen:
            return
        gc.collect()
        gc.freeze()
        _frozen = True


@contextmanager
def gc_frozen() -> Iterator[None]:
    """The serial loop's `freeze_start_up`, undone after (this process may go on)."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def per_item_rows(name: str, folder: str | None) -> dict[str, list] | None:
    """The columns of the analysis' per-item table the fleet table collects (cycling: its
    cycles table), read here in the worker so the client never re-reads every run."""
    from labctl.fleet.fleet_table import PER_ITEM

    spec = PER_ITEM.get(name)
    if spec is None or not folder:
        return None
    import pyarrow.parquet as pq

    path = f"{folder}/{spec.table}.parquet"
    try:
        names = set(pq.read_schema(path).names)
        keep = [c for c in (*spec.items, *spec.values) if c in names]
        return pq.read_table(path, columns=keep).to_pydict()
    except (OSError, ValueError):
        return None


def _last_json(text: str) -> dict[str, Any]:
    """The JSON object the command printed (the last one, if it printed several)."""
    start = text.rfind("\n{")
    for candidate in (text, text[start + 1:] if start >= 0 else ""):
        try:
            value = json.loads(candidate)
            if isinstance(value, dict):
                return value
        except ValueError:
            continue
    return {"ok": True}
