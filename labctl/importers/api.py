"""`import_file`: one vendor file -> one run directory in the results store."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labctl.errors import LabctlError
from labctl.importers.base import CYCLE_RULES, ImportFailure, Parsed, fail, to_samples
from labctl.importers.registry import FORMAT_NAMES, detect, read
from labctl.records import SAMPLE_COLUMNS
from labctl.store.imported import IMPORTED, create_imported_run, find_by_sha256, has_size
from labctl.store.rundir import _safe, new_run_id

IMPORTER_VERSION = "1"


@dataclass(frozen=True)
class ImportResult:
    path: Path
    format: str
    rows: int
    cycles: int
    existing: bool = False  # True: the file was imported before; nothing was created

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "format": self.format, "rows": self.rows,
                "cycles": self.cycles}


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read(p: Path) -> bytes:
    try:
        return p.read_bytes()
    except IsADirectoryError:
        raise fail(p, "", "a folder, not a file") from None
    except OSError as exc:
        raise fail(p, "", f"cannot read the file ({exc.strerror or exc})") from None


def parse_file(path: str | Path, fmt: str = "auto", data: bytes | None = None
               ) -> tuple[Parsed, bytes]:
    """Read a vendor file into a Parsed (detecting its format unless `fmt` names one)."""
    p = Path(path)
    if fmt != "auto" and fmt not in FORMAT_NAMES:
        raise LabctlError(f"--format {fmt!r}: allowed: auto, {', '.join(FORMAT_NAMES)}")
    if data is None:
        data = _read(p)
    if not data:
        raise fail(p, "byte 0", "the file is empty")
    name = detect(p, data) if fmt == "auto" else fmt
    try:
        try:
            parsed = read(name, p, data)
        except LabctlError:
            # an EC-Lab impedance export the cycling reader refuses (odd time column):
            # the spectrum reader may still read its sweep
            if fmt != "auto" or name != "biologic-mpt" or b"freq/Hz" not in data[:65536]:
                raise
            parsed = read("eis", p, data)
    except LabctlError:
        raise
    except MemoryError:
        raise fail(p, "", "too large to read into memory", name) from None
    except Exception as exc:  # a third-party reader's failure on a damaged file: no traceback
        raise fail(p, "", f"unreadable ({type(exc).__name__}: {str(exc)[:200]}); the file is "
                   "damaged, cut short, encrypted or not this format", name) from None
    return parsed, data


def import_file(path: str | Path, results: str | Path = "results", fmt: str = "auto",
                cell: str | None = None, name: str | None = None, force: bool = False,
                cycles: str = "file") -> ImportResult:
    """Import one file as a run (status "imported"); refuses a file already imported
    (same sha256) unless `force`, returning the run that holds it. `cycles`: "file" keeps
    the file's own cycle numbers, "labctl" numbers them by labctl's rule (a new cycle
    when a charging step follows a discharging one), the same for every cycler."""
    if cycles not in CYCLE_RULES:
        raise LabctlError(f"--cycles {cycles!r}: allowed: {', '.join(CYCLE_RULES)}")
    p = Path(path)
    data = _read(p)
    if not force and has_size(results, len(data)):
        digest = sha256_of(data)
        existing = find_by_sha256(results, digest)
        if existing is not None:
            return _existing(existing)
        parsed, data = parse_file(p, fmt, data)
    else:
        # No run holds a file of this size, so this is no re-import: hash on a second
        # thread while this one parses (hashlib releases the GIL on large buffers).
        box: dict[str, str] = {}
        hasher = threading.Thread(target=lambda: box.setdefault("sha", sha256_of(data)),
                                  name="import-sha256")
        hasher.start()
        try:
            parsed, data = parse_file(p, fmt, data)
        finally:
            hasher.join()
        digest = box["sha"]
    return _store(p, data, digest, parsed, results, cell, name, cycles)


def _existing(run_dir: Path) -> ImportResult:
    import json

    meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    source = meta.get("source", {})
    summary = meta.get("summary") or {}
    return ImportResult(run_dir, str(source.get("format")), int(source.get("rows") or 0),
                        int(summary.get("n_cycles") or 0), existing=True)


def _empty_samples() -> dict[str, np.ndarray]:
    return {n: np.empty(0, dtype=d) for n, d in SAMPLE_COLUMNS.items()}


def _store(p: Path, data: bytes, digest: str, parsed: Parsed, results: str | Path,
           cell: str | None, name: str | None, cycles: str = "file") -> ImportResult:
    if len(parsed.time_s) == 0 and parsed.records:
        samples, steps = _empty_samples(), []
    else:
        samples, steps = to_samples(parsed, p, cycles)
    n_rows = len(samples["test_time_s"])
    source_rows = parsed.source_rows if parsed.source_rows is not None else n_rows
    started = parsed.start_unix_s
    if started is None and n_rows and np.isfinite(samples["unix_time_s"][0]):
        started = float(samples["unix_time_s"][0])
    duration = float(samples["test_time_s"][-1]) if n_rows else 0.0
    cell_meta, inputs = _cell(cell)
    label = name or cell_meta.get("name") or p.stem
    procedure = str(parsed.metadata.get("procedure") or f"import-{parsed.fmt}")
    meta = {
        "status": IMPORTED,
        "reason": f"imported from {p.name}",
        "name": name,
        "procedure": {"name": procedure, "file": None, "sha256": None},
        "cell": cell_meta or {"name": str(parsed.metadata.get("cell") or p.stem)},
        "station": {"name": parsed.fmt, "file": None, "instruments": {}},
        "started_unix_s": started,
        "ended_unix_s": started + duration if started is not None else None,
        "clock": "imported",
        "source": {
            "file": p.name,
            "path": str(p.resolve()),
            "format": parsed.fmt,
            "size_bytes": len(data),
            "sha256": digest,
            "importer_version": IMPORTER_VERSION,
            "rows": source_rows,
            "metadata": {str(k): _plain(v) for k, v in parsed.metadata.items()},
            "conversions": list(parsed.conversions),
            "imported_unix_s": time.time(),
        },
    }
    when = started if started else time.time()
    try:  # a callable: a name already taken is drawn again
        run_dir = create_imported_run(results, lambda: new_run_id("import", _safe(label), when),
                                      meta, samples, steps,
                                      records=parsed.records, inputs=inputs)
    except ImportFailure:
        raise
    n_cycles = int(len(np.unique(samples["cycle_index"]))) if n_rows else 0
    return ImportResult(run_dir, parsed.fmt, source_rows, n_cycles)


def _plain(value: Any) -> Any:
    if isinstance(value, str | int | float | bool | dict | list) or value is None:
        return value
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _cell(cell: str | None) -> tuple[dict[str, Any], dict[str, bytes]]:
    """--cell: a cell file (kept in inputs/cell.yaml) or a name."""
    if not cell:
        return {}, {}
    p = Path(cell)
    if p.is_file():
        from labctl.cells.load import load_cell

        spec = load_cell(p)
        return ({"name": spec.name, "chemistry": spec.chemistry,
                 "capacity_ah": spec.capacity_ah, "file": str(p.resolve())},
                {"cell.yaml": p.read_bytes()})
    return {"name": str(cell)}, {}
