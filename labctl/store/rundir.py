"""Run directories: run.json (rewritten atomically), inputs/ copies, log.txt, tables.

A run directory is self-contained and relocatable: nothing outside it is
needed to read it. Every file except the journal and log.txt is replaced
atomically, so a crash leaves either the old or the new version.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas costs ~0.2 s to import; `labctl ls` never needs it
    import pandas as pd

from labctl.errors import LabctlError
from labctl.store.atomic import (
    atomic_write_bytes,
    atomic_write_json,
    describe_os_error,
    fsync_dir,
    side_by_side,
)

__all__ = [
    "INDEX_NAME", "JOURNAL_NAME", "RUN_JSON", "RUN_SCHEMA_VERSION", "RUN_STATUSES", "RunDir", "RunDirExists",
    "atomic_write_bytes", "atomic_write_json", "effective_status", "labctl_version", "new_run_id",
    "pid_alive",
]

RUN_SCHEMA_VERSION = 1
RUN_JSON = "run.json"
JOURNAL_NAME = "journal.bin"
INDEX_NAME = "index.jsonl"
RUN_STATUSES = ("running", "completed", "aborted", "faulted", "interrupted", "imported")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def labctl_version() -> str:
    import labctl  # looks the version up once, on first use

    return str(labctl.__version__)


def _safe(name: str) -> str:
    """A name that is safe in a file name on any OS (no separators, no spaces)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(name)).strip("-._")[:40] or "x"


class RunDirExists(LabctlError):
    """The run directory's name is taken (e.g. by a run of the same procedure and cell
    started in the same second on another channel: try another suffix)."""


def new_run_id(procedure_name: str, cell_name: str, now: float) -> str:
    """`YYYYMMDD-HHMMSS-<procedure>-<cell>-<4 hex>` (UTC): sorts by start time."""
    stamp = datetime.fromtimestamp(now, tz=UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{_safe(procedure_name)}-{_safe(cell_name)}-{_random_suffix()}"


def _random_suffix() -> str:
    """4 hex digits from the OS's randomness (what `secrets.token_hex(2)` gives, without
    importing `secrets`, whose `hmac` loads OpenSSL: ~3 ms of `labctl run`)."""
    return os.urandom(2).hex()


# -- is the process that runs it still alive? -------------------------------------------------

def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    except OSError:
        return False
    return True


def _process_start(pid: int) -> int | None:
    """The kernel's start time of `pid` (Linux), to tell a reused pid from the original."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _process_marker(pid: int) -> dict[str, Any]:
    return {"pid": pid, "start_ticks": _process_start(pid)}


def host_name() -> str:
    """This machine's name, as socket.gethostname() gives it (POSIX: the uname node name,
    without importing socket on every run's path)."""
    uname = getattr(os, "uname", None)
    if uname is not None:
        return uname().nodename
    import socket  # pragma: no cover - Windows

    return socket.gethostname()


def effective_status(meta: dict) -> str:
    """The status, except "interrupted" for a "running" run whose process is gone.

    Only a run started on this host can be checked; elsewhere "running" stays.
    A pid reused by another process is recognised by its start time (Linux).
    """
    status = meta.get("status", "unknown")
    if status != "running":
        return str(status)
    pid = meta.get("pid")
    if meta.get("host") != host_name() or not isinstance(pid, int):
        return status
    if not pid_alive(pid):
        return "interrupted"
    marker = meta.get("process")
    if isinstance(marker, dict) and marker.get("pid") == pid and marker.get("start_ticks"):
        now = _process_start(pid)
        if now is not None and now != marker["start_ticks"]:
            return "interrupted"  # the pid now belongs to another process
    return status


# -- the run directory ------------------------------------------------------------------------

class RunDir:
    """One run's directory. `meta` mirrors run.json."""

    def __init__(self, path: Path, meta: dict):
        self.path = Path(path)
        self.meta = meta

    @classmethod
    def create(cls, results_root: str | Path, run_id: str, meta: dict) -> RunDir:
        """Make the directory with inputs/, write run.json, add a line to the store's index."""
        if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
            raise LabctlError(f"run id {run_id!r}: use letters, digits, '.', '_' and '-' only")
        root = Path(results_root)
        path = root / run_id
        try:
            root.mkdir(parents=True, exist_ok=True)
            path.mkdir()
            (path / "inputs").mkdir()
        except FileExistsError:
            raise RunDirExists(f"{path}: a run directory of that name already exists") from None
        except OSError as exc:
            raise LabctlError(f"{path}: cannot create the run directory "
                              f"({describe_os_error(exc)})") from None
        pid = os.getpid()
        full = {"schema_version": RUN_SCHEMA_VERSION, "labctl_version": labctl_version(),
                "run_id": run_id, "host": host_name(), "pid": pid, **meta,
                "process": _process_marker(pid)}
        # run.json (fsynced with its folder) and the new folder's entry in `root`: the two
        # waits for the disk overlap.
        side_by_side((atomic_write_json, path / RUN_JSON, full), (fsync_dir, root))
        _append_index(root, full)
        return cls(path, full)

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        path = Path(path)
        try:
            meta = json.loads((path / RUN_JSON).read_text(encoding="utf-8"))
        except FileNotFoundError:
            what = "no such folder" if not path.exists() else f"no {RUN_JSON}"
            raise LabctlError(f"{path}: not a run directory ({what})") from None
        except NotADirectoryError:
            raise LabctlError(f"{path}: not a run directory (a file, not a folder)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LabctlError(f"{path / RUN_JSON}: unreadable ({exc})") from None
        if not isinstance(meta, dict):
            raise LabctlError(f"{path / RUN_JSON}: not a run description (expected an object)")
        version_ = meta.get("schema_version", 0)
        if not isinstance(version_, int) or version_ > RUN_SCHEMA_VERSION:
            raise LabctlError(f"{path}: run schema {version_} is newer than this labctl "
                              f"understands ({RUN_SCHEMA_VERSION}); upgrade labctl")
        return cls(path, meta)

    def update_meta(self, **fields: Any) -> None:
        """Change some fields of run.json: read, modify, atomic replace.

        Reading first keeps fields another RunDir object wrote meanwhile (the
        table builder records which journal the tables match).
        """
        try:
            on_disk = json.loads((self.path / RUN_JSON).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            on_disk = None
        base = on_disk if isinstance(on_disk, dict) else self.meta
        new = {**base, **fields}
        if fields.get("pid") == os.getpid():
            new["process"] = _process_marker(os.getpid())  # a resumed run's new process
        atomic_write_json(self.path / RUN_JSON, new)
        self.meta = new

    def save_input(self, name: str, text: str, sync_dir: bool = True) -> Path:
        """Keep a copy of an input file (procedure, cell, station) as it was used
        (`sync_dir=False`: the caller fsyncs inputs/ once after several)."""
        safe = Path(str(name)).name
        if safe in ("", ".", ".."):
            raise LabctlError(f"input name {name!r} is not a file name")
        target = self.path / "inputs" / safe
        atomic_write_bytes(target, text.encode("utf-8"), sync_dir=sync_dir)
        return target

    def write_table(self, name: str, df: pd.DataFrame) -> Path:
        """Write `<name>.parquet` in the run directory atomically."""
        if not _RUN_ID.match(name):
            raise LabctlError(f"table name {name!r}: use letters, digits, '.', '_' and '-' only")
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        target = self.path / f"{name}.parquet"
        atomic_write_bytes(target, buf.getvalue())
        return target

    def append_log(self, line: str) -> None:
        """Add a line to the human-readable log.txt (best effort: the journal is the record)."""
        stamp = datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        text = "".join(f"{stamp} {part}\n" for part in str(line).rstrip("\n").split("\n"))
        try:
            fd = os.open(self.path / "log.txt", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
            try:
                os.write(fd, text.encode("utf-8"))
            finally:
                os.close(fd)
        except OSError:
            pass

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"


def index_entry(meta: dict, rel_path: str, created_unix_s: float | None = None
                ) -> dict[str, Any]:
    """The line the store's index keeps for a run: what does not change over its life."""
    procedure = meta.get("procedure") if isinstance(meta.get("procedure"), dict) else {}
    cell = meta.get("cell") if isinstance(meta.get("cell"), dict) else {}
    return {"run_id": meta.get("run_id", rel_path), "path": rel_path,
            "procedure": procedure.get("name"), "cell": cell.get("name"),
            "started_unix_s": meta.get("started_unix_s"),
            "created_unix_s": time.time() if created_unix_s is None else created_unix_s}


def _append_index(root: Path, meta: dict) -> None:
    line = json.dumps(index_entry(meta, str(meta["run_id"])), default=str) + "\n"
    try:
        # One write on an O_APPEND descriptor: lines from parallel channels never interleave.
        fd = os.open(root / INDEX_NAME, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)
    except OSError:
        pass  # the index is a cache; list_runs rebuilds it from the run.json files
