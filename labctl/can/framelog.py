"""Frame logs in the run directory: BLF files (Vector's binary logging format, read by
python-can, CANalyzer, asammdf...) and the decoded signals as a Parquet table.

    RUN/can/step-0003.blf            every frame of step 3, both directions, virtual or real time
    RUN/can/step-0003-signals.parquet  test_time_s, message, signal, value (DBC physical units)
    RUN/can/signal_map.json, RUN/can/<dbc>  the mapping and DBC used, so the run decodes alone
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labctl.can.decode import BatchDecoder
from labctl.can.frames import FrameBatch
from labctl.errors import LabctlError
from labctl.fileio import read_regular_text

CAN_DIR = "can"


# BLF headers hold a calendar date (SYSTEMTIME); test time 0 would be 1970-01-01, which
# python-can's reader does not round-trip. Frames are therefore stored at ORIGIN + test
# time (a fixed, documented date) and read back relative to it.
ORIGIN_UNIX_S = 1_700_000_000.0


def write_blf(path: str | Path, messages: Iterable[Any], origin_s: float = ORIGIN_UNIX_S) -> int:
    """Write python-can messages (timestamps in test time) to a BLF file; returns the count."""
    import copy

    import can

    msgs = []
    for m in sorted(messages, key=lambda m: m.timestamp):
        m = copy.copy(m)
        m.timestamp = m.timestamp + origin_s
        msgs.append(m)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".blf.part")
    writer = can.BLFWriter(str(tmp))
    try:
        for m in msgs:
            writer.on_message_received(m)
    finally:
        writer.stop()
    tmp.replace(path)  # a half-written log never carries the final name
    return len(msgs)


def read_log(path: str | Path, origin_s: float = ORIGIN_UNIX_S) -> FrameBatch:
    """Frames of a BLF or ASC file as a FrameBatch (times relative to `origin_s`)."""
    import can

    path = Path(path)
    if not path.is_file():
        raise LabctlError(f"{path}: no such frame log")
    try:
        reader = can.LogReader(str(path))
        msgs = [m for m in reader if not m.is_error_frame and not m.is_remote_frame]
    except Exception as exc:  # a corrupt log must not crash an analysis
        raise LabctlError(f"{path}: unreadable frame log ({type(exc).__name__}: {exc})") from exc
    batch = FrameBatch.from_messages(msgs)
    batch.time_s = batch.time_s - origin_s
    return batch


def signals_table(decoder: BatchDecoder, batch: FrameBatch) -> pd.DataFrame:
    """Decoded signals in long form: test_time_s, message, signal, value."""
    parts = []
    for mname, cols in decoder.decode(batch).items():
        t = cols.pop("time_s")
        for sname, values in cols.items():
            parts.append(pd.DataFrame({"test_time_s": t, "message": mname, "signal": sname,
                                       "value": np.asarray(values, dtype=float)}))
    if not parts:
        return pd.DataFrame({"test_time_s": [], "message": [], "signal": [], "value": []})
    df = pd.concat(parts, ignore_index=True).sort_values("test_time_s", kind="stable")
    df["message"] = df["message"].astype("category")
    df["signal"] = df["signal"].astype("category")
    return df.reset_index(drop=True)


def save_step_log(run_dir: str | Path, step_index: int, messages: list[Any], decoder: BatchDecoder,
                  smap: Any) -> Path:
    """Write a step's BLF log and signals table; keep the DBC and map beside them once."""
    folder = Path(run_dir) / CAN_DIR
    folder.mkdir(parents=True, exist_ok=True)
    blf = folder / f"step-{step_index:04d}.blf"
    write_blf(blf, messages)
    table = signals_table(decoder, FrameBatch.from_messages(messages))
    table.to_parquet(folder / f"step-{step_index:04d}-signals.parquet", index=False)
    dbc_copy = folder / smap.dbc_path.name
    if not dbc_copy.exists():
        shutil.copyfile(smap.dbc_path, dbc_copy)
    (folder / "signal_map.json").write_text(json.dumps(smap.describe(), indent=2))
    return blf


def load_run_map(run_dir: str | Path) -> Any:
    """The signal map stored with a run (to decode its logs without the station file)."""
    from labctl.can.signals import signal_map_from_settings

    folder = Path(run_dir) / CAN_DIR
    p = folder / "signal_map.json"
    if not p.is_file():
        raise LabctlError(f"{run_dir}: no CAN signal map (can/signal_map.json); was a bms step run?")
    try:
        spec = json.loads(read_regular_text(p))
    except (OSError, ValueError) as exc:  # a damaged run folder: say which file, no traceback
        raise LabctlError(f"{p}: unreadable CAN signal map ({exc}); expected the JSON a bms "
                          "step writes") from None
    if not isinstance(spec, dict):
        raise LabctlError(f"{p}: the CAN signal map must be a JSON object")
    return signal_map_from_settings(spec, folder)


def run_logs(run_dir: str | Path) -> list[Path]:
    return sorted((Path(run_dir) / CAN_DIR).glob("step-*.blf"))
