"""Run directories made from data recorded elsewhere (`labctl import`), not by the engine.

An imported run is built exactly like a recorded one: a journal with step_start /
step_end events, sample blocks and record events, then `finalize` turns it into the
timeseries, steps, cycles and record Parquet tables. So `open_run`, `doctor`,
`export` and every analysis read it unchanged; its status is "imported".

Atomic: everything is written in a hidden folder `.importing-<run id>` under the
results root and renamed into place at the end, so a failed import leaves no run
directory (the hidden folder is removed on failure).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labctl.errors import LabctlError
from labctl.records import SAMPLE_COLUMNS
from labctl.store.atomic import atomic_write_json, describe_os_error, fsync_dir
from labctl.store.journal import JournalWriter
from labctl.store.rundir import (
    _RUN_ID,
    RUN_JSON,
    RUN_SCHEMA_VERSION,
    _append_index,
    labctl_version,
)
from labctl.store.tables import CUMULATIVE, StepAccumulator

IMPORTED = "imported"
TMP_PREFIX = ".importing-"
BUILDER_PID = ".builder-pid"  # in a folder being built: who builds it


@dataclass(frozen=True)
class ImportedStep:
    """Rows [lo, hi) of the samples form one step (step_index = position + 1)."""

    lo: int
    hi: int
    kind: str  # charge, discharge, rest
    text: str  # what the source file called it, e.g. "CC_Chg (vendor step 3)"


def step_results(samples: Mapping[str, np.ndarray], steps: Iterable[ImportedStep]
                 ) -> list[dict[str, Any]]:
    """Each step's StepResult row, computed by the recorded runs' StepAccumulator.

    One difference: a vendor's first record of a step already carries what moved
    since the previous record, so a step's capacity and energy count from the
    previous record's counter (0 at a cycle start), not from its own first record;
    the steps of a cycle then add up to the cycle's counters exactly.
    """
    cycle = samples["cycle_index"]
    rows = []
    for k, s in enumerate(steps, start=1):
        part = {name: col[s.lo:s.hi] for name, col in samples.items()}
        acc = StepAccumulator(k, int(cycle[s.lo]), s.kind, s.text, f"import[{k - 1}]")
        acc.feed(part)
        row = acc.result("condition", "as recorded in the source file").as_dict()
        same_cycle = s.lo > 0 and cycle[s.lo - 1] == cycle[s.lo]
        for name in CUMULATIVE:
            before = float(samples[name][s.lo - 1]) if same_cycle else 0.0
            row[name] = max(0.0, float(samples[name][s.hi - 1]) - before)
        rows.append(row)
    return rows


def create_imported_run(results_root: str | Path, run_id: str, meta: Mapping[str, Any],
                        samples: Mapping[str, np.ndarray], steps: list[ImportedStep],
                        records: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                        inputs: Mapping[str, bytes] | None = None) -> Path:
    """Create the run directory `results_root/run_id` from columns, atomically.

    `samples`: every SAMPLE_COLUMNS column, equal lengths, step_index numbering
    `steps` 1, 2, ... `records`: table name -> columns (each with a step_index
    column), written as record tables (e.g. "spectra"). `inputs`: files kept in
    inputs/. Returns the new run directory.
    """
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
        raise LabctlError(f"run id {run_id!r}: use letters, digits, '.', '_' and '-' only")
    missing = [c for c in SAMPLE_COLUMNS if c not in samples]
    if missing:
        raise LabctlError(f"imported samples lack columns {missing}")
    root = Path(results_root)
    final = root / run_id
    tmp = root / f"{TMP_PREFIX}{run_id}"
    if final.exists():
        raise LabctlError(f"{final}: a run directory of that name already exists")
    try:
        root.mkdir(parents=True, exist_ok=True)
        _remove_abandoned(root)
        tmp.mkdir()
        (tmp / BUILDER_PID).write_text(str(os.getpid()))
    except OSError as exc:
        raise LabctlError(f"{tmp}: cannot create the run directory "
                          f"({describe_os_error(exc)})") from None
    try:
        full = {"schema_version": RUN_SCHEMA_VERSION, "labctl_version": labctl_version(),
                "run_id": run_id, "host": socket.gethostname(), "pid": None,
                **meta, "status": IMPORTED}
        (tmp / "inputs").mkdir()
        for name, data in (inputs or {}).items():
            (tmp / "inputs" / Path(name).name).write_bytes(data)
        atomic_write_json(tmp / RUN_JSON, full)
        _write_journal(tmp, samples, steps, records or {})
        from labctl.store.run import summarize
        from labctl.store.tables import finalize

        out = finalize(tmp)
        on_disk = json.loads((tmp / RUN_JSON).read_text(encoding="utf-8"))
        on_disk["summary"] = summarize(on_disk, out["steps"], out["cycles"], out["n_samples"])
        atomic_write_json(tmp / RUN_JSON, on_disk)
        (tmp / BUILDER_PID).unlink()
        os.rename(tmp, final)
        fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _append_index(root, full)
    return final


def _write_journal(folder: Path, samples: Mapping[str, np.ndarray], steps: list[ImportedStep],
                   records: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    cols = {name: np.ascontiguousarray(samples[name], dtype=dt)
            for name, dt in SAMPLE_COLUMNS.items()}
    results = step_results(cols, steps)
    # fsync once at the end (close): an import can simply be repeated after a crash.
    writer = JournalWriter.create(folder, fsync_interval_s=3600.0)
    try:
        writer.append_event({"type": "run_start", "imported": True})
        for k, (s, result) in enumerate(zip(steps, results, strict=True), start=1):
            writer.append_event({"type": "step_start", "step_index": k,
                                 "cycle_index": int(cols["cycle_index"][s.lo]),
                                 "kind": s.kind, "text": s.text, "path": result["path"]})
            writer.append_samples({name: c[s.lo:s.hi] for name, c in cols.items()})
            writer.append_event({"type": "step_end", "result": result})
        for table, columns in records.items():
            if not columns:
                continue
            steps_of = np.asarray(columns["step_index"])
            for step in np.unique(steps_of):
                mask = steps_of == step
                part = {k: np.asarray(v)[mask].tolist() for k, v in columns.items()}
                writer.append_event({"type": "record", "table": table,
                                     "step_index": int(step), "columns": part})
        writer.append_event({"type": "run_end", "status": IMPORTED})
        writer.sync()
    finally:
        writer.close()


def _remove_abandoned(root: Path) -> None:
    """Folders of imports whose process died (killed mid-import): nothing to keep."""
    from labctl.store.rundir import pid_alive

    for folder in root.glob(f"{TMP_PREFIX}*"):
        try:
            pid = int((folder / BUILDER_PID).read_text())
        except (OSError, ValueError):
            pid = None
        if pid is None or not pid_alive(pid):
            shutil.rmtree(folder, ignore_errors=True)


def find_by_sha256(results_root: str | Path, sha256: str) -> Path | None:
    """The run directory in the store whose `source.sha256` is this one, if any."""
    root = Path(results_root)
    if not root.is_dir():
        return None
    with os.scandir(root) as it:
        folders = sorted(e.path for e in it if e.is_dir() and not e.name.startswith("."))
    for folder in folders:
        try:
            meta = json.loads((Path(folder) / RUN_JSON).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        source = meta.get("source") if isinstance(meta, dict) else None
        if isinstance(source, dict) and source.get("sha256") == sha256:
            return Path(folder)
    return None
