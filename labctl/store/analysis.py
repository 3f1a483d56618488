"""Analysis results stored with a run: `analysis/<name>/` beside the raw data.

An analysis (EIS fits, OCV-SoC table, HPPC ECM parameters, cycle-life table,
abuse onsets, BMS report...) saves its tables as Parquet (and CSV where a person
or another tool wants one, e.g. an OCV table in the cell-file format), a
`summary.json` of headline numbers, and PNG figures. Every file is replaced
atomically, so re-running `labctl analyze` never leaves half a result; the temporary
file of a writer killed mid-way (a fleet worker lost during `analyze --all`) is
removed by the next analysis that completes, so a re-run leaves the same files.
`Run.analysis(name)` reads the tables back, `Run.analysis_summary(name)` the summary.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from labctl.errors import LabctlError
from labctl.store.atomic import (
    atomic_write_bytes,
    atomic_write_json,
    describe_os_error,
    remove_stale_temp_files,
)

ANALYSIS_DIR = "analysis"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def analysis_folder(run_dir: str | Path, name: str) -> Path:
    """run_dir/analysis/<name>/ (created)."""
    if not _NAME.match(str(name)):
        raise LabctlError(f"analysis name {name!r}: use letters, digits, '.', '_' and '-'")
    folder = Path(run_dir) / ANALYSIS_DIR / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a read-only results folder (a colleague's), a full disk...
        raise LabctlError(f"{folder}: cannot store the analysis here ({describe_os_error(exc)}); "
                          "copy the run to a folder you can write to") from None
    return folder


def save_analysis(
    run_dir: str | Path,
    name: str,
    *,
    tables: Mapping[str, pd.DataFrame] | None = None,
    summary: Mapping[str, Any] | None = None,
    csv: Mapping[str, pd.DataFrame] | None = None,
    figures: Mapping[str, Any] | None = None,
    files: Mapping[str, str | bytes] | None = None,
) -> Path:
    """Store an analysis; returns its folder.

    tables: name -> DataFrame, written as <name>.parquet (what Run.analysis reads);
    csv: name -> DataFrame written as <name>.csv (for people and cell files);
    summary: JSON-able headline numbers -> summary.json;
    figures: name -> matplotlib Figure, saved as <name>.png and closed;
    files: file name -> text or bytes (e.g. a cell YAML file).
    """
    started = time.time()
    folder = analysis_folder(run_dir, name)
    for stem, df in (tables or {}).items():
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        atomic_write_bytes(folder / f"{_stem(stem)}.parquet", buf.getvalue())
    for stem, df in (csv or {}).items():
        atomic_write_bytes(folder / f"{_stem(stem)}.csv", df.to_csv(index=False).encode("utf-8"))
    for stem, fig in (figures or {}).items():
        buf = io.BytesIO()
        # The layout engine fits labels into the figure; bbox_inches="tight" would draw
        # every figure twice (half of a cycling analysis' time went there).
        if fig.get_layout_engine() is None:
            fig.set_layout_engine("tight")
        fig.savefig(buf, format="png", dpi=110)
        _close(fig)
        atomic_write_bytes(folder / f"{_stem(stem)}.png", buf.getvalue())
    for fname, content in (files or {}).items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        atomic_write_bytes(folder / Path(fname).name, data)
    if summary is not None:
        atomic_write_json(folder / "summary.json", _jsonable(summary))
    remove_stale_temp_files(folder, before=started)
    return folder


def load_summary(run_dir: str | Path, name: str) -> dict[str, Any]:
    import json

    p = Path(run_dir) / ANALYSIS_DIR / str(name) / "summary.json"
    if not _NAME.match(str(name)) or not p.is_file():
        raise LabctlError(f"{run_dir}: analysis {name!r} has no summary.json")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LabctlError(f"{p}: unreadable ({exc})") from None


def _stem(name: str) -> str:
    if not _NAME.match(str(name)):
        raise LabctlError(f"analysis file name {name!r}: use letters, digits, '.', '_' and '-'")
    return str(name)


def _close(fig: Any) -> None:
    try:
        import matplotlib.pyplot as plt

        plt.close(fig)
    except Exception:
        pass


def _jsonable(x: Any) -> Any:
    import math

    import numpy as np

    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return [_jsonable(v) for v in x.tolist()]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, np.bool_):
        return bool(x)
    return x
