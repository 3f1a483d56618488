"""The runs in a results store, from run.json files only (fast: no table is read).

`<results_root>/index.jsonl` has one line per run created (appended by
`RunDir.create`). It is a cache for other tools (dashboards, batch jobs) to find
runs without walking the folder; `list_runs` checks it against the folders
present and rewrites it when it is missing or stale.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labctl.errors import LabctlError
from labctl.store.atomic import atomic_write_bytes
from labctl.store.rundir import INDEX_NAME, RUN_JSON, effective_status, index_entry


def ambiguous_list(names: list[str], most: int = 10) -> str:
    """The runs a prefix matches, the first `most` of them: a prefix of a big store can
    match thousands, and the message is to be read."""
    shown = ", ".join(names[:most])
    more = len(names) - most
    return f"{shown} and {more} more (give more of the id)" if more > 0 else shown


def iso_time(ts: Any) -> str | None:
    """A Unix time as ISO 8601 (UTC, seconds); None for anything that is not one."""
    if not isinstance(ts, (int, float)) or isinstance(ts, bool):
        return None
    try:
        return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return None


def number_or_none(x: Any) -> float | None:
    """A JSON number as float; None for anything else (booleans included)."""
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _row(path: Path, meta: dict) -> dict[str, Any]:
    started, ended = number_or_none(meta.get("started_unix_s")), number_or_none(meta.get("ended_unix_s"))
    summary = meta.get("summary") if isinstance(meta.get("summary"), dict) else {}
    procedure = meta.get("procedure") if isinstance(meta.get("procedure"), dict) else {}
    cell = meta.get("cell") if isinstance(meta.get("cell"), dict) else {}
    return {
        "run_id": meta.get("run_id", path.name),
        "path": str(path),
        "procedure": procedure.get("name"),
        "cell": cell.get("name"),
        "status": effective_status(meta),
        "reason": meta.get("reason"),
        "started": iso_time(started),
        "started_unix_s": started,
        "ended_unix_s": ended,
        "wall_duration_s": ended - started if started is not None and ended is not None else None,
        "duration_s": number_or_none(summary.get("duration_s")),  # test time, when finished
        "n_samples": summary.get("n_samples"),
        "clock": meta.get("clock"),
        "host": meta.get("host"),  # the PC that runs it (a store may hold several benches')
        "bench": (meta.get("fleet") or {}).get("bench") if isinstance(meta.get("fleet"), dict)
        else None,  # set by `labctl run --batch --scheduler` (labctl/fleet/benches.py)
    }


def _run_folders(root: Path) -> list[Path]:
    with os.scandir(root) as it:
        # hidden folders are runs still being built (`.importing-<id>`): not runs yet
        return [Path(e.path) for e in it
                if e.is_dir() and not e.name.startswith(".")
                and os.path.isfile(os.path.join(e.path, RUN_JSON))]


def _read_index(root: Path) -> set[str] | None:
    try:
        text = (root / INDEX_NAME).read_text(encoding="utf-8")
    except OSError:
        return None
    names = set()
    for line in text.splitlines():
        try:
            names.add(str(json.loads(line)["path"]))
        except (ValueError, KeyError, TypeError):
            return None  # a damaged line: rebuild
    return names


def list_runs(results_root: str | Path) -> list[dict[str, Any]]:
    """One dict per run (run_id, path, procedure, cell, status, started, durations...),
    sorted by start time. Folders whose run.json is unreadable are left out."""
    root = Path(results_root)
    if not root.is_dir():
        return []
    runs, metas = [], {}
    for folder in _run_folders(root):
        try:
            meta = json.loads((folder / RUN_JSON).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if not isinstance(meta, dict):
            continue
        metas[folder.name] = meta
        runs.append(_row(folder, meta))
    runs.sort(key=lambda r: (r["started_unix_s"] or 0.0, str(r["run_id"])))
    if _read_index(root) != set(metas):
        _rewrite_index(root, metas)
    return runs


def _rewrite_index(root: Path, metas: dict[str, dict]) -> None:
    entries = sorted((index_entry(m, name, m.get("started_unix_s")) for name, m in metas.items()),
                     key=lambda e: (e["started_unix_s"] or 0.0, e["path"]))
    text = "".join(json.dumps(e, default=str) + "\n" for e in entries)
    try:
        atomic_write_bytes(root / INDEX_NAME, text.encode("utf-8"))
    except LabctlError:
        pass  # a read-only store still lists fine
