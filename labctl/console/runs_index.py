"""The Runs page's list (search and filters over the results store) and the station's
pytest qualification records (RESULTS/qualification/<session>/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FILTERS = ("status", "procedure", "cell", "kind", "bench")


def _kind(row: dict) -> str:
    return "imported" if row.get("status") == "imported" else "recorded"


def filter_runs(results: Path, query: dict[str, str]) -> tuple[list[dict], dict[str, list[str]]]:
    """Runs matching `query` (q: words in id/procedure/cell/reason; status, procedure, cell,
    kind, bench: exact; since/until: YYYY-MM-DD on the start date), newest first, and the values
    each filter can take."""
    from labctl.store.catalog import list_runs

    rows = list_runs(results)
    for r in rows:
        r["kind"] = _kind(r)
        # the bench of a fleet run (labctl run --batch --scheduler), else the PC it ran on
        r["bench"] = r.get("bench") or r.get("host")
        r["date"] = (r.get("started") or "")[:10]
    facets = {key: sorted({str(r[key]) for r in rows if r.get(key) is not None})
              for key in FILTERS}
    words = (query.get("q") or "").lower().split()
    out = []
    for r in rows:
        text = " ".join(str(r.get(k) or "") for k in ("run_id", "procedure", "cell", "reason",
                                                         "status", "bench")).lower()
        if any(w not in text for w in words):
            continue
        if any(query.get(k) and str(r.get(k)) != query[k] for k in FILTERS):
            continue
        if query.get("since") and r["date"] < query["since"]:
            continue
        if query.get("until") and (not r["date"] or r["date"] > query["until"]):
            continue
        out.append(r)
    out.reverse()
    return out, facets


def qualification_sessions(results: Path, station_file: str | None = None) -> list[dict[str, Any]]:
    """Qualification sessions (newest first) with their verdict per device and record files;
    only those of `station_file` when given."""
    root = Path(results) / "qualification"
    if not root.is_dir():
        return []
    out = []
    for folder in sorted((p for p in root.iterdir() if p.is_dir() and not p.is_symlink()),
                         reverse=True):
        try:
            summary = json.loads((folder / "session.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            summary = {}
        session = summary.get("session") or {}
        if station_file and session.get("station_file") and \
                str(Path(session["station_file"]).resolve()) != str(Path(station_file).resolve()):
            continue
        devices = summary.get("devices") or {}
        files = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.is_symlink()
                       and p.suffix in (".json", ".xml", ".html"))
        out.append({"id": folder.name, "mode": session.get("mode"),
                    "station_file": session.get("station_file"),
                    "started_unix_s": session.get("started_unix_s"),
                    "devices": [{"role": role, "verdict": d.get("verdict"),
                                 "serial": (d.get("identity") or {}).get("serial"),
                                 "tests": len(d.get("tests") or [])}
                                for role, d in sorted(devices.items())],
                    "verdict": "fail" if any(d.get("verdict") == "fail" for d in devices.values())
                    else ("pass" if devices else "-"),
                    "files": files})
    return out
