"""The Benches page's data: one tile per active run, read from files only.

Every second the watcher lists the run folders (one `stat` of run.json each;
run.json is parsed again only when it changed) and reads the small status.json
the engine rewrites at most once a second. It never opens a journal and never
takes a lock, so a watching browser costs the engine nothing.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from labctl.store.rundir import effective_status

RECENT_S = 6 * 3600.0  # ended runs stay on the Benches page this long (faults shown loudly)


def _read_json(path: str | Path) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


class RunWatcher:
    """Active runs (running or paused, whoever started them) and recently ended ones."""

    def __init__(self, results: Path, recent_s: float = RECENT_S, estimator: Any = None):
        self.results = Path(results)
        self.recent_s = recent_s
        self.estimator = estimator  # (folder, run.json, status.json) -> remaining s (labctl plan)
        self._metas: dict[str, tuple[int, dict]] = {}
        self._lock = threading.Lock()
        self._cached: tuple[float, list[dict]] = (0.0, [])

    def tiles(self, max_age_s: float = 0.5) -> list[dict[str, Any]]:
        """The tiles, computed at most every `max_age_s` whatever the number of viewers."""
        with self._lock:
            stamp, tiles = self._cached
            now = time.monotonic()
            if now - stamp >= max_age_s:
                tiles = self._compute()
                self._cached = (now, tiles)
            return tiles

    def _meta(self, folder: str) -> dict | None:
        path = os.path.join(folder, "run.json")
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError:
            self._metas.pop(folder, None)
            return None
        known = self._metas.get(folder)
        if known and known[0] == mtime:
            return known[1]
        meta = _read_json(path)
        if meta is not None:
            self._metas[folder] = (mtime, meta)
        return meta

    def _compute(self) -> list[dict[str, Any]]:
        try:
            folders = [e.path for e in os.scandir(self.results) if e.is_dir()]
        except OSError:
            return []
        wall = time.time()
        tiles = []
        for folder in folders:
            meta = self._meta(folder)
            if meta is None:
                continue
            status = effective_status(meta)
            if status == "imported":  # a vendor file brought in: no bench ran it here
                continue
            ended = _num(meta.get("ended_unix_s"))
            if ended is None and status != "running":  # its process died: last sign of life
                ended = _mtime(os.path.join(folder, "status.json")) or \
                    _mtime(os.path.join(folder, "run.json"))
            if status != "running" and (ended is None or wall - ended > self.recent_s):
                continue
            live = _read_json(os.path.join(folder, "status.json")) or {}
            tiles.append(self._tile(Path(folder).name, meta, status, live, wall))
        # running first (oldest first: a bench keeps its place), then faults and stops
        # (newest first: the one to look at), then the other runs that ended
        tiles.sort(key=lambda t: (0, t["started_unix_s"] or 0.0, t["run_id"]) if t["active"] else
                   (1 if t["alarm"] else 2, -(t["started_unix_s"] or 0.0), t["run_id"]))
        return tiles

    def _tile(self, name: str, meta: dict, status: str, live: dict, wall: float) -> dict[str, Any]:
        proc = meta.get("procedure") if isinstance(meta.get("procedure"), dict) else {}
        cell = meta.get("cell") if isinstance(meta.get("cell"), dict) else {}
        station = meta.get("station") if isinstance(meta.get("station"), dict) else {}
        fleet = meta.get("fleet") if isinstance(meta.get("fleet"), dict) else {}
        state = status
        if status == "running" and live.get("state") == "paused":
            state = "paused"
        current = _num(live.get("current_a"))
        remaining = steps_total = None
        if self.estimator is not None and status == "running":
            try:
                remaining, steps_total = self.estimator(self.results / name, meta, live) or \
                    (None, None)
            except Exception:
                remaining = steps_total = None
        updated = _num(live.get("updated_unix_s"))
        return {
            "run_id": meta.get("run_id", name),
            "procedure": proc.get("name"),
            "cell": cell.get("name"),
            "station": station.get("name"),
            # which channel: the cycler the run is bound to (its serial names the channel)
            "channel": meta.get("channel") or ((station.get("instruments") or {}).get("cycler")
                                               or {}).get("serial"),
            # which bench and PC: a store shared by several hosts (labctl run --batch --scheduler)
            "bench": fleet.get("bench"),
            "host": meta.get("host"),
            "state": state,
            "active": status == "running",
            "reason": meta.get("reason") or "",
            "alarm": state in ("faulted", "aborted", "interrupted"),
            # the engine's safety stops say "safety: voltage 3.7 V > 3.65 V" (or refuse a
            # step "before it started" on a limit): shown as SAFETY STOP
            "safety": state != "completed" and "safety" in str(meta.get("reason") or "").lower(),
            "step_index": live.get("step_index"),
            "steps_total": steps_total,  # from the plan (labctl plan), None until it is made
            "step": live.get("step"),
            "cycle_index": live.get("cycle_index"),
            "voltage_v": _num(live.get("voltage_v")),
            # Pause puts the outputs in their safe state (off); status.json keeps the
            # last measured current, which is not what flows now.
            "current_a": 0.0 if state == "paused" else current,
            "output_off": state == "paused",
            "temperature_c": _num(live.get("temperature_c")),
            "test_time_s": _num(live.get("test_time_s")),
            "remaining_s": remaining,
            "started_unix_s": _num(meta.get("started_unix_s")),
            "updated_age_s": None if updated is None else max(0.0, wall - updated),
        }
