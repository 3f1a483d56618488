"""`labctl analyze NAME --all`: one Dask task per run, then the fleet table.

Each task analyses one run in a worker process exactly as `labctl analyze NAME RUN`
does (labctl/fleet/tasks.py) and returns the summary it printed. A worker that dies
has its tasks run again by the scheduler on another worker; since an analysis only
reads the run and replaces its own files atomically, running it twice leaves the
same bytes. With `workers=0` the runs are analysed one after another in this
process (the serial reference, no Dask needed).
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from labctl.errors import LabctlError
from labctl.fleet.tasks import analyze_one

FLEET_DIR = "fleet"


@dataclass
class FleetOutcome:
    analysis: str
    results: list[dict[str, Any]]
    table: Path | None = None
    per_item: Path | None = None
    plot: Path | None = None
    outliers: list[str] = field(default_factory=list)
    dashboard: str | None = None
    elapsed_s: float = 0.0
    skipped_running: int = 0

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.results if not r.get("ok")]

    def as_dict(self) -> dict[str, Any]:
        return {"ok": not self.failed, "analysis": self.analysis, "runs": len(self.results),
                "analysed": len(self.results) - len(self.failed),
                "failed": [{"run": r["run_path"], "error": r.get("error")} for r in self.failed],
                "skipped_running": self.skipped_running,
                "table": self.table, "per_item_table": self.per_item, "plot": self.plot,
                "outliers": self.outliers, "dashboard": self.dashboard,
                "elapsed_s": round(self.elapsed_s, 3)}


def select_runs(results: str | Path, where: str | None) -> tuple[pd.DataFrame, int]:
    """The finished runs of the store matching `where` (a pandas query on the catalog);
    returns them and how many running runs were left out."""
    from labctl.fleet.store import Store

    catalog = Store(str(results)).runs
    running = catalog["status"] == "running"
    chosen = catalog[~running]
    if where:
        try:
            chosen = chosen.query(where, engine="python")
        except Exception as exc:  # a typo in the user's expression: say what is allowed
            raise LabctlError(
                f"--where {where!r}: {type(exc).__name__}: {exc}. Write a pandas query on the "
                f"catalog columns: {', '.join(catalog.columns)} (e.g. \"procedure == 'cycling' "
                "and cell == 'LFP 2.2 Ah'\")") from None
        if not isinstance(chosen, pd.DataFrame):
            raise LabctlError(f"--where {where!r}: not a condition on the runs")
    return chosen.reset_index(drop=True), int(running.sum())


def analyze_all(
    name: str,
    *,
    results: str | Path,
    options: dict[str, Any] | None = None,
    where: str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    client: Any = None,
    progress: Callable[[int, int], None] | None = None,
    on_started: Callable[[Any], None] | None = None,
) -> FleetOutcome:
    """Analyse every matching run; write RESULTS/fleet/<name>.parquet (+ plot)."""
    from labctl.fleet.tasks import analysis_command, run_argument

    command = analysis_command(name)  # unknown analysis: a clear error before any work
    if run_argument(command) is None:
        raise LabctlError(f"analysis {name!r} does not take one run, so it cannot run with --all")
    options = dict(options or {})
    runs, skipped = select_runs(results, where)
    if runs.empty:
        raise LabctlError(f"no finished runs in {results}"
                          + (f" match --where {where!r}" if where else ""))
    paths = [str(Path(p).resolve()) for p in runs["path"]]
    runs = runs.assign(path=paths)
    started = time.perf_counter()
    if workers == 0 and client is None and scheduler is None:
        outcome = FleetOutcome(name, _serial(name, paths, options, progress))
    elif client is not None:
        outcome = _distributed(name, paths, options, client, progress, on_started)
    else:
        from labctl.fleet.cluster import fleet_client

        with fleet_client(workers, scheduler) as own:
            outcome = _distributed(name, paths, options, own, progress, on_started)
    outcome.elapsed_s = time.perf_counter() - started
    outcome.skipped_running = skipped
    write_fleet_table(outcome, runs, Path(results))
    return outcome


def _serial(name: str, paths: list[str], options: dict[str, Any],
            progress: Callable[[int, int], None] | None) -> list[dict[str, Any]]:
    out = []
    for k, path in enumerate(paths):
        out.append(analyze_one(name, path, options))
        if progress:
            progress(k + 1, len(paths))
    return out


def _distributed(name: str, paths: list[str], options: dict[str, Any], client: Any,
                 progress: Callable[[int, int], None] | None,
                 on_started: Callable[[Any], None] | None) -> FleetOutcome:
    from distributed import as_completed

    from labctl.fleet.cluster import dashboard_link

    outcome = FleetOutcome(name, [], dashboard=dashboard_link(client))
    if on_started:
        on_started(outcome)
    batch = uuid.uuid4().hex[:8]
    keys = [f"labctl-analyze-{name}-{batch}-{k}" for k in range(len(paths))]
    futures = client.map(analyze_one, [name] * len(paths), paths, [options] * len(paths),
                         key=keys)
    index = {f.key: k for k, f in enumerate(futures)}
    by_index: dict[int, dict[str, Any]] = {}
    done = 0
    for future in as_completed(futures):
        k = index[future.key]
        try:
            by_index[k] = future.result()
        except Exception as exc:  # e.g. KilledWorker: the run killed its workers repeatedly
            by_index[k] = {"run_path": paths[k], "ok": False,
                           "error": f"{type(exc).__name__}: {exc}"}
        done += 1
        if progress:
            progress(done, len(paths))
    outcome.results = [by_index[k] for k in range(len(paths))]
    return outcome


def write_fleet_table(outcome: FleetOutcome, runs: pd.DataFrame, results: Path) -> None:
    """RESULTS/fleet/<name>.parquet (+ <name>-per-cycle.parquet or the like, and <name>.png),
    each replaced atomically."""
    from labctl.fleet import fleet_table as ft
    from labctl.store.atomic import atomic_write_bytes

    folder = results / FLEET_DIR
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LabctlError(f"{folder}: cannot create the fleet folder ({exc})") from None
    table = ft.run_table(outcome.results, runs)
    outcome.table = folder / f"{outcome.analysis}.parquet"
    atomic_write_bytes(outcome.table, _parquet(table))
    outcome.outliers = [str(r) for r in table.loc[table["outlier"].astype(bool), "run_id"]]
    long = ft.per_item_table(outcome.analysis, table, outcome.results)
    if long is not None:
        suffix = ft.PER_ITEM[outcome.analysis].suffix
        outcome.per_item = folder / f"{outcome.analysis}-{suffix}.parquet"
        atomic_write_bytes(outcome.per_item, _parquet(long))
    fig = ft.figure(outcome.analysis, table, long)
    buf = io.BytesIO()
    fig.set_layout_engine("tight")
    fig.savefig(buf, format="png", dpi=110)
    outcome.plot = folder / f"{outcome.analysis}.png"
    atomic_write_bytes(outcome.plot, buf.getvalue())


def _parquet(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()
