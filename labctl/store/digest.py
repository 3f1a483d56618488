"""A run's digest (`digest.json`): its summary and its steps table as plain JSON, written
by `finalize` with the Parquet tables, so that `labctl show` answers without pyarrow
(importing pyarrow and numpy is ~0.13 s, more than the rest of the command).

The digest names the journal state its tables were built from (the mark `finalize` also
writes to run.json) and the labctl version that wrote it. It is read only when that
mark is run.json's, the tables are current (`Run`) and the version is this one's, so a
digest left by an earlier finalize (a crash between the two writes, a resume, a repair)
or by another labctl (whose summary or steps columns may differ) is ignored and the
tables are read as before. It is derived data: a missing, damaged or stale digest is
never an error, only slower.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DIGEST_NAME = "digest.json"
DIGEST_VERSION = 1


def steps_text(steps: Mapping[str, Any]) -> str:
    """The digest's "steps" member as JSON text: `finalize` makes it while the table writer
    still encodes the run's last rows (the steps are known once the run has ended).

    By orjson where its text reads back as json's (~0.3 against ~2.3 ms for the 500 steps
    of the cycling benchmark, on the path between the run's end and the command's): not
    where it wrote null (NaN or infinity, which json writes as such) or refused a value
    (a big integer; what json refuses too leaves the digest out, as before)."""
    plain = {name: _plain(col) for name, col in steps.items()}
    try:
        import orjson  # here, not at the top: `labctl show` only reads digests

        out = orjson.dumps(plain)
    except (ImportError, TypeError):  # orjson.JSONEncodeError is a TypeError
        out = b"null"
    if b"null" not in out:
        return out.decode("utf-8")
    return json.dumps(plain, allow_nan=True, separators=(",", ":"))


def write_digest(run_dir: str | Path, mark: Mapping[str, Any], summary: Mapping[str, Any],
                 steps: Mapping[str, Any], steps_json: str | None = None) -> None:
    """Replace the run's digest: `summary` (as `summarize` gives it) and the `steps`
    columns (numpy arrays or lists, in the steps table's order), for the tables built
    from the journal state `mark`. `steps_json`: `steps_text(steps)`, if made already.

    Not fsynced: run.json's rewrite right after fsyncs the folder, and a digest torn by a
    power cut fails to parse or names another mark, and the tables are read instead.
    A digest that cannot be written is left out the same way (the old one, if any, names
    an older mark)."""
    path = Path(run_dir) / DIGEST_NAME
    tmp = path.with_name(f".{DIGEST_NAME}.{os.getpid()}.tmp")  # what remove_stale_temp_files finds
    try:
        path.unlink(missing_ok=True)  # none rather than an old one, if this one fails
        head = json.dumps({"digest_version": DIGEST_VERSION, "labctl_version": _version(),
                           "tables_journal": dict(mark), "summary": dict(summary)},
                          allow_nan=True, separators=(",", ":"))
        # Reads back as the whole object dumped at once, "steps" last.
        text = f"{head[:-1]},\"steps\":{steps_json or steps_text(steps)}}}"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except (OSError, TypeError, ValueError):
        try:
            tmp.unlink()
        except OSError:
            pass


def _version() -> str:
    import labctl  # looked up once, from labctl's own dist-info (no importlib.metadata)

    return str(labctl.__version__)


def _plain(column: Any) -> list:
    tolist = getattr(column, "tolist", None)  # numpy: Python ints, floats and strings
    return tolist() if callable(tolist) else list(column)


def read_digest(run_dir: str | Path, mark: Any) -> dict[str, Any] | None:
    """{"summary": ..., "steps": {column: list}} when the run's digest was written for the
    tables of journal state `mark` (run.json's `tables_journal`); else None."""
    if not isinstance(mark, dict):
        return None
    try:
        data = json.loads((Path(run_dir) / DIGEST_NAME).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("digest_version") != DIGEST_VERSION \
            or data.get("tables_journal") != mark or data.get("labctl_version") != _version():
        return None
    summary, steps = data.get("summary"), data.get("steps")
    if not isinstance(summary, dict) or not isinstance(steps, dict) \
            or not all(isinstance(col, list) for col in steps.values()) \
            or len({len(col) for col in steps.values()}) > 1:
        return None
    return {"summary": summary, "steps": steps}
