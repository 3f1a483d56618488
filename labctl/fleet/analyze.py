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
from labctl.fleet.tasks import analyze_many, analyze_one, gc_frozen

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
    lot: tuple[str, ...] = ()  # the catalog columns runs were grouped by (--lot)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.results if not r.get("ok")]

    def as_dict(self) -> dict[str, Any]:
        return {"ok": not self.failed, "analysis": self.analysis, "runs": len(self.results),
                "analysed": len(self.results) - len(self.failed),
                "failed": [{"run": r["run_path"], "error": r.get("error")} for r in self.failed],
                "skipped_running": self.skipped_running,
                "table": self.table, "per_item_table": self.per_item, "plot": self.plot,
                "outliers": self.outliers, "lot": list(self.lot), "dashboard": self.dashboard,
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
                "and cell == 'lfp-2p2ah'\")") from None
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
    runs_per_task: int = 1,
    lot: str | None = None,
) -> FleetOutcome:
    """Analyse every matching run; write RESULTS/fleet/<name>.parquet (+ plot).

    Each run is one Dask task unless `runs_per_task` > 1 lets a task take up to that many
    (for fleets of tens of thousands of runs, where the scheduler's per-task cost counts)."""
    from labctl.fleet.fleet_table import parse_lot
    from labctl.fleet.tasks import analysis_command, run_argument

    lot_fields = parse_lot(lot)  # bad input: a clear error before any work
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
    sizes = [int(x) if pd.notna(x) else 0 for x in runs["n_samples"]] if "n_samples" in runs \
        else None
    started = time.perf_counter()
    if workers == 0 and client is None and scheduler is None:
        outcome = FleetOutcome(name, _serial(name, paths, options, progress))
    elif client is not None:
        outcome = _distributed(name, paths, options, client, progress, on_started, sizes,
                               runs_per_task)
    else:
        from labctl.fleet.cluster import fleet_client

        with fleet_client(workers, scheduler) as own:
            outcome = _distributed(name, paths, options, own, progress, on_started, sizes,
                                   runs_per_task)
    outcome.elapsed_s = time.perf_counter() - started
    outcome.skipped_running = skipped
    outcome.lot = lot_fields
    write_fleet_table(outcome, runs, Path(results), lot_fields)
    return outcome


def _serial(name: str, paths: list[str], options: dict[str, Any],
            progress: Callable[[int, int], None] | None) -> list[dict[str, Any]]:
    out = []
    with gc_frozen():  # as a worker's task does (labctl/fleet/tasks.py)
        for k, path in enumerate(paths):
            out.append(analyze_one(name, path, options))
            if progress:
                progress(k + 1, len(paths))
    return out


def _distributed(name: str, paths: list[str], options: dict[str, Any], client: Any,
                 progress: Callable[[int, int], None] | None,
                 on_started: Callable[[Any], None] | None,
                 sizes: list[int] | None = None, runs_per_task: int = 1) -> FleetOutcome:
    from distributed import as_completed

    from labctl.fleet.cluster import dashboard_link, worker_slots

    outcome = FleetOutcome(name, [], dashboard=dashboard_link(client))
    if on_started:
        on_started(outcome)
    batch = uuid.uuid4().hex[:8]
    chunks = plan_chunks(largest_first(sizes, len(paths)), worker_slots(client),
                         runs_per_task)
    keys = [f"labctl-analyze-{name}-{batch}-{k}" for k in range(len(chunks))]
    futures = client.map(analyze_many, [name] * len(chunks),
                         [[paths[i] for i in chunk] for chunk in chunks],
                         [options] * len(chunks), key=keys)
    owner = {f.key: chunk for f, chunk in zip(futures, chunks, strict=True)}
    by_index: dict[int, dict[str, Any]] = {}
    alone_again: set[int] = set()  # runs sent alone a second time after a KilledWorker
    done = 0
    pending = as_completed(futures)
    for future in pending:
        chunk = owner.pop(future.key)
        try:
            for i, result in zip(chunk, future.result(), strict=True):
                by_index[i] = result
        except Exception as exc:  # e.g. KilledWorker: a run killed its workers repeatedly
            if len(chunk) > 1:  # find which: each of its runs again, alone
                for i in chunk:
                    again = client.submit(analyze_many, name, [paths[i]], options,
                                          key=f"labctl-analyze-{name}-{batch}-run-{i}")
                    owner[again.key] = [i]
                    pending.add(again)
                continue
            i = chunk[0]
            if type(exc).__name__ == "KilledWorker" and i not in alone_again:
                # A run sent alone can still share a dying worker with the run that kills
                # it (queued behind it): the scheduler then blames both. Once more, alone.
                alone_again.add(i)
                again = client.submit(analyze_many, name, [paths[i]], options,
                                      key=f"labctl-analyze-{name}-{batch}-again-{i}")
                owner[again.key] = [i]
                pending.add(again)
                continue
            by_index[chunk[0]] = {"run_path": paths[chunk[0]], "ok": False,
                                  "error": f"{type(exc).__name__}: {exc}"}
        done += len(chunk)
        if progress:
            progress(done, len(paths))
    outcome.results = [by_index[k] for k in range(len(paths))]
    return outcome


# Runs per task: by default one run is one Dask task (on 2 workers, 400 runs: wall
# speed-up 1.85 against 1.88 with up to 8 runs per task; bench/fleet.py). A task costs the
# client, the scheduler and the worker a few ms of CPU; on a fleet of 100,000 runs the
# scheduler's share of that is worth cutting (--runs-per-task, docs/scale-out.md). Then
# chunks shrink towards the end so no worker is left with a long tail.
CHUNKS_PER_WORKER = 4  # of what is left: guided self-scheduling


def largest_first(sizes: list[int] | None, n: int) -> list[int]:
    """Run indices, the largest runs (by samples) first so that no long run starts last;
    equal sizes keep the catalog's order."""
    if not sizes:
        return list(range(n))
    return sorted(range(n), key=lambda i: -sizes[i])


def plan_chunks(order: list[int], workers: int, runs_per_task: int = 1) -> list[list[int]]:
    """Split `order` into tasks of at most `runs_per_task` runs, each about
    1/CHUNKS_PER_WORKER of a worker's share of what is left, down to one run per task."""
    workers, most = max(1, workers), max(1, runs_per_task)
    chunks, start = [], 0
    while start < len(order):
        left = len(order) - start
        size = max(1, min(most, -(-left // (CHUNKS_PER_WORKER * workers))))
        chunks.append(order[start:start + size])
        start += size
    return chunks


def write_fleet_table(outcome: FleetOutcome, runs: pd.DataFrame, results: Path,
                      lot: tuple[str, ...] = ()) -> None:
    """RESULTS/fleet/<name>.parquet (+ <name>-per-cycle.parquet or the like, and <name>.png),
    each replaced atomically."""
    from labctl.fleet import fleet_table as ft
    from labctl.store.atomic import atomic_write_bytes

    folder = results / FLEET_DIR
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LabctlError(f"{folder}: cannot create the fleet folder ({exc})") from None
    table = ft.run_table(outcome.results, runs, lot)
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
