"""Shared by the hostile-input tests: journal record boundaries, crashed-run look-alikes."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from labctl.store.journal import EVENT, JournalReader

DEAD_PID = 2**22 + 12345  # above the default pid_max: no such process


def record_boundaries(journal: Path) -> list[tuple[int, str]]:
    """(end offset, what the record was) for every record of the journal."""
    reader = JournalReader(journal)
    out = []
    for kind, item, _ in reader.records():
        out.append((reader.valid_bytes, item.get("type", "?") if kind == EVENT else "samples"))
    return out


def as_interrupted(run: Path, cut: int | None = None) -> None:
    """Make a finished run look like one whose process died (journal cut at `cut`)."""
    if cut is not None:
        journal = run / "journal.bin"
        journal.write_bytes(journal.read_bytes()[:cut])
    meta = json.loads((run / "run.json").read_text())
    meta.update(status="running", pid=DEAD_PID, host=socket.gethostname())
    meta.pop("process", None)
    (run / "run.json").write_text(json.dumps(meta))
    for table in run.glob("*.parquet"):
        table.unlink()
