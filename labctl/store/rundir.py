"""Run directories: run.json (atomic), inputs/ copies, log.txt, Parquet tables."""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd

from labctl.errors import LabctlError

RUN_SCHEMA_VERSION = 1
RUN_JSON = "run.json"
INDEX_NAME = "index.jsonl"


def labctl_version() -> str:
    try:
        return version("labctl")
    except PackageNotFoundError:
        return "0+unknown"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:40] or "x"


def new_run_id(procedure_name: str, cell_name: str, now: float) -> str:
    stamp = datetime.fromtimestamp(now, tz=UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{_safe(procedure_name)}-{_safe(cell_name)}-{secrets.token_hex(2)}"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write, fsync, rename, fsync the folder: readers see the old file or the new one."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    except OSError as exc:
        raise LabctlError(f"{path}: cannot write ({exc.strerror})") from None
    _fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, default=str, allow_nan=True).encode())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def effective_status(meta: dict) -> str:
    status = meta.get("status", "unknown")
    if status == "running":
        pid = meta.get("pid")
        if meta.get("host") == socket.gethostname() and isinstance(pid, int) and not pid_alive(pid):
            return "interrupted"
    return status


class RunDir:
    def __init__(self, path: Path, meta: dict):
        self.path = Path(path)
        self.meta = meta

    @classmethod
    def create(cls, results_root: str | Path, run_id: str, meta: dict) -> RunDir:
        root = Path(results_root)
        path = root / run_id
        try:
            (path / "inputs").mkdir(parents=True, exist_ok=False)
        except OSError as exc:
            raise LabctlError(f"{path}: cannot create the run directory ({exc.strerror})") from None
        full = {"schema_version": RUN_SCHEMA_VERSION, "labctl_version": labctl_version(),
                "run_id": run_id, "host": socket.gethostname(), "pid": os.getpid(), **meta}
        atomic_write_json(path / RUN_JSON, full)
        entry = {"run_id": run_id, "path": run_id, "created_unix_s": time.time()}
        try:
            with open(root / INDEX_NAME, "a") as f:
                f.write(json.dumps(entry) + "\n")
        except OSError:
            pass  # the index is a cache; list_runs rebuilds it from run.json files
        return cls(path, full)

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        path = Path(path)
        try:
            meta = json.loads((path / RUN_JSON).read_text())
        except FileNotFoundError:
            raise LabctlError(f"{path}: not a run directory (no {RUN_JSON})") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise LabctlError(f"{path / RUN_JSON}: unreadable ({exc})") from None
        if meta.get("schema_version", 0) > RUN_SCHEMA_VERSION:
            raise LabctlError(f"{path}: run schema {meta['schema_version']} is newer than this "
                              f"labctl understands ({RUN_SCHEMA_VERSION})")
        return cls(path, meta)

    def update_meta(self, **fields: Any) -> None:
        """Change some fields of run.json (read-modify-write, then an atomic replace).

        Reading first keeps fields another RunDir object wrote meanwhile (the
        table builder records which journal the tables match).
        """
        try:
            on_disk = json.loads((self.path / RUN_JSON).read_text())
        except (OSError, json.JSONDecodeError):
            on_disk = {}
        self.meta = {**on_disk, **self.meta, **fields} if not on_disk else {**on_disk, **fields}
        atomic_write_json(self.path / RUN_JSON, self.meta)

    def save_input(self, name: str, text: str) -> None:
        atomic_write_bytes(self.path / "inputs" / Path(name).name, text.encode())

    def write_table(self, name: str, df: pd.DataFrame) -> None:
        import io

        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        atomic_write_bytes(self.path / f"{name}.parquet", buf.getvalue())

    def append_log(self, line: str) -> None:
        try:
            with open(self.path / "log.txt", "a") as f:
                f.write(line.rstrip("\n") + "\n")
        except OSError:
            pass
