"""The list of runs in a results store, from run.json files only (fast)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labctl.store.rundir import RUN_JSON, effective_status


def list_runs(results_root: str | Path) -> list[dict[str, Any]]:
    root = Path(results_root)
    if not root.is_dir():
        return []
    runs = []
    for run_json in root.glob(f"*/{RUN_JSON}"):
        try:
            meta = json.loads(run_json.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        started = meta.get("started_unix_s")
        ended = meta.get("ended_unix_s")
        runs.append({
            "run_id": meta.get("run_id", run_json.parent.name),
            "path": str(run_json.parent),
            "procedure": (meta.get("procedure") or {}).get("name"),
            "cell": (meta.get("cell") or {}).get("name"),
            "status": effective_status(meta),
            "reason": meta.get("reason"),
            "started": datetime.fromtimestamp(started, tz=UTC).isoformat(timespec="seconds")
            if started else None,
            "started_unix_s": started,
            "wall_duration_s": (ended - started) if started and ended else None,
        })
    runs.sort(key=lambda r: (r["started_unix_s"] or 0, r["run_id"]))
    return runs
