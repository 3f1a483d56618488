"""Starting a run from the console: the choices, the parameter form and Start.

(Check, `labctl validate` on the choice, is console/checking.py.) Start runs
`python -m labctl.cli run ...` as a process of its own, in its own session, so the
run outlives the console and the browser; the console never drives an instrument
itself.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labctl.console.planview import readable
from labctl.console.security import NotFound, inside
from labctl.errors import LabctlError, Problem, ValidationError

PROCEDURE_SUFFIXES = (".yaml", ".yml", ".py")
STATION_SUFFIXES = (".yaml", ".yml")


def list_files(root: Path | None, suffixes: tuple[str, ...]) -> list[str]:
    """Relative names of the files under `root` with these suffixes, only those inside it."""
    if root is None or not root.is_dir():
        return []
    base = root.resolve()
    out = []
    for dirpath, dirnames, filenames in os.walk(base):  # does not follow symlinked folders
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or not name.endswith(suffixes):
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), base)
            try:
                inside(base, rel)
            except NotFound:
                continue  # a symlink leading out of the folder
            out.append(Path(rel).as_posix())
    return out


def station_files(root: Path | None) -> list[str]:
    """The station files under `root`: YAML files holding a mapping with `instruments:`,
    the one key every station file has (labctl.stations.load). Other YAML kept beside
    them (a pyvisa-sim device file, say) is not offered: Check would only refuse it."""
    return [name for name in list_files(root, STATION_SUFFIXES)
            if root is not None and _is_station(root / name)]


def _is_station(path: Path) -> bool:
    from labctl.yamlio import load_file  # safe loading, bounded in size and depth

    try:
        data = load_file(path).data
    except (LabctlError, OSError, ValueError):
        return True  # broken YAML: offered, and Check says what is wrong with it
    return isinstance(data, dict) and "instruments" in data


def cell_choices(cells_dir: Path | None) -> list[str]:
    """Cell presets by name, then cell files of `--cells` (as `file:NAME`)."""
    from labctl.cells import list_presets

    return list(list_presets()) + [f"file:{n}" for n in list_files(cells_dir, STATION_SUFFIXES)]


@dataclass(frozen=True)
class Field:
    """One input of the Start form, from a parameter declaration."""

    name: str
    type: str
    default: Any
    unit: str | None
    min: float | None
    max: float | None
    choices: tuple[Any, ...] | None
    description: str
    range_text: str
    default_text: str  # the default as written in the procedure ("C/3", not 0.333...)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def parameter_fields(path: Path) -> tuple[list[Field], list[dict]]:
    """The form fields of a procedure's declared parameters, and problems reading them.

    YAML: the `parameters:` mapping; Python: a literal `PARAMETERS = {...}` (read
    with ast, never imported: the form must not run the file).
    """
    from labctl.procedures.parameters import parse_declarations
    from labctl.yamlio import LocatedDoc, load_file, loads

    problems: list[Problem] = []
    try:
        if path.suffix == ".py":
            raw = _python_parameters(path)
            doc: LocatedDoc = loads("{}", str(path))
        else:
            doc = load_file(path)
            raw = doc.data.get("parameters") if isinstance(doc.data, dict) else None
    except ValidationError as exc:
        return [], [p.as_dict() for p in exc.problems]
    except (LabctlError, OSError, ValueError, SyntaxError) as exc:
        return [], [Problem(str(path), None, None, "", str(exc)).as_dict()]
    decls = parse_declarations(doc, ("parameters",), raw, problems)
    written = raw if isinstance(raw, dict) else {}
    fields = [Field(d.name, d.type, d.default, d.unit, d.min, d.max, d.choices, d.description,
                    readable(d.range_text()), _as_written(written.get(d.name), d.default))
              for d in decls.values()]
    return fields, [p.as_dict() for p in problems]


def _as_written(decl: Any, default: Any) -> str:
    """A declaration's default as the file writes it: "C/3" stays "C/3" (its value is
    1/3), "30 min" stays "30 min"; the value itself when the file gives no text."""
    written = decl.get("default") if isinstance(decl, dict) else decl
    if isinstance(written, str) and written.strip():
        return written.strip()
    if isinstance(written, bool) or not isinstance(written, (int, float)):
        written = default
    return "" if written is None else str(written)


def _python_parameters(path: Path) -> Any:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "PARAMETERS" for t in node.targets):
            return ast.literal_eval(node.value)
    return None


@dataclass
class Choice:
    """A procedure, station and cell chosen in the form, resolved inside their folders."""

    procedure: Path
    station: Path
    cell: str  # a preset name or an absolute path of a cell file inside --cells
    params: dict[str, str]
    speed: float | None


def run_command(choice: Choice, results: Path) -> list[str]:
    """The `labctl run` command line the console starts (as `python -m labctl.cli`)."""
    cmd = [sys.executable, "-m", "labctl.cli", "run", str(choice.procedure),
           "--station", str(choice.station), "--cell", choice.cell, "--results", str(results),
           "--no-progress"]
    for name, value in choice.params.items():
        cmd += ["--param", f"{name}={value}"]
    if choice.speed is not None:
        cmd += ["--speed", repr(choice.speed)]
    return cmd


def child_env() -> dict[str, str]:
    """The environment of a `python -m labctl.cli` child: it imports the same labctl as
    this console (a checkout or the installed package)."""
    import labctl

    env = dict(os.environ)
    code_root = str(Path(labctl.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [code_root, env.get("PYTHONPATH")]))
    return env


def start(choice: Choice, results: Path, log_dir: Path, wait_s: float = 10.0) -> dict[str, Any]:
    """Start the run in its own process; wait until its run directory exists.

    Returns {"ok": True, "run_id", "pid"} or {"ok": False, "error", "log"} when the
    process ended before creating its run (its output says why).
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"start-{time.time_ns()}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(run_command(choice, results), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, env=child_env(),
                                start_new_session=True, close_fds=True)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        run_id = _run_of_pid(results, proc.pid)
        if run_id:
            return {"ok": True, "run_id": run_id, "pid": proc.pid}
        if proc.poll() is not None:
            run_id = _run_of_pid(results, proc.pid)
            if run_id:
                return {"ok": True, "run_id": run_id, "pid": proc.pid}
            text = log_path.read_text(encoding="utf-8", errors="replace")[-4000:]
            return {"ok": False, "error": f"the run did not start (exit status {proc.returncode})",
                    "log": text}
        time.sleep(0.05)
    return {"ok": True, "run_id": None, "pid": proc.pid}  # slow start: it will show up


def _run_of_pid(results: Path, pid: int) -> str | None:
    import json

    try:
        entries = list(os.scandir(results))
    except OSError:
        return None
    for e in sorted(entries, key=lambda e: e.name, reverse=True)[:200]:
        try:
            meta = json.loads(Path(e.path, "run.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and meta.get("pid") == pid:
            return str(meta.get("run_id") or e.name)
    return None
