"""Export a run: `csv` (labctl's names), `parquet` (the three tables), `bdf` (Battery Data Format).

BDF names follow the Battery Data Format application ontology 1.3.0 (Battery
Data Alliance). Two points where BDF and labctl count differently:

* BDF's `Charging Capacity / Ah` (and the discharging / energy ones) count from
  the start of the test and never reset; labctl's columns reset at each cycle,
  which is BDF's `Cycle Charging Capacity / Ah`. The export writes both: ours
  unchanged under the Cycle names, and the running totals under the plain names.
* Our temperature is the cell's: BDF's `Surface Temperature / degC` (a surface
  temperature without channel number), not the ambient one.

CSV exports get a sidecar `<file>.json` with the source run, units and the sign
convention (positive current = charge, as in BDF).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from labctl.errors import LabctlError
from labctl.records import SAMPLE_COLUMNS
from labctl.store.atomic import atomic_path, atomic_write_json

FORMATS = ("csv", "parquet", "bdf")
BDF_VERSION = "1.3.0"
CURRENT_SIGN = "positive current = charge (into the cell), negative current = discharge"

# labctl column -> BDF preferred label, for columns copied as they are.
BDF_COLUMNS = {
    "test_time_s": "Test Time / s",
    "voltage_v": "Voltage / V",
    "current_a": "Current / A",
    "unix_time_s": "Unix Time / s",
    "cycle_index": "Cycle Count / 1",
    "step_index": "Step Count / 1",
    "temperature_c": "Surface Temperature / degC",
    "charge_capacity_ah": "Cycle Charging Capacity / Ah",
    "discharge_capacity_ah": "Cycle Discharging Capacity / Ah",
    "charge_energy_wh": "Cycle Charging Energy / Wh",
    "discharge_energy_wh": "Cycle Discharging Energy / Wh",
}
# BDF label -> the labctl per-cycle column whose running total since test start it is.
BDF_TOTALS = {
    "Charging Capacity / Ah": "charge_capacity_ah",
    "Discharging Capacity / Ah": "discharge_capacity_ah",
    "Charging Energy / Wh": "charge_energy_wh",
    "Discharging Energy / Wh": "discharge_energy_wh",
}
BDF_ORDER = ["Test Time / s", "Voltage / V", "Current / A", "Unix Time / s", "Cycle Count / 1",
             "Step Count / 1", "Surface Temperature / degC", *BDF_TOTALS,
             *list(BDF_COLUMNS.values())[7:]]

UNITS = {"test_time_s": "s", "unix_time_s": "s (UTC)", "step_index": "1", "cycle_index": "1",
         "voltage_v": "V", "current_a": "A", "temperature_c": "degC",
         "charge_capacity_ah": "Ah", "discharge_capacity_ah": "Ah", "charge_energy_wh": "Wh",
         "discharge_energy_wh": "Wh"}


def since_test_start(per_cycle: np.ndarray, cycle_index: np.ndarray) -> np.ndarray:
    """Running total since the test started, from a counter that restarts each cycle.

    At each change of cycle where the counter went down (it was reset), the
    previous cycle's last value is carried into an offset. A counter that did
    not reset at a cycle change is left as it is.
    """
    per_cycle = np.asarray(per_cycle, dtype=np.float64)
    cycle_index = np.asarray(cycle_index)
    if len(per_cycle) < 2:
        return per_cycle.copy()
    reset = (cycle_index[1:] != cycle_index[:-1]) & (per_cycle[1:] < per_cycle[:-1])
    carried = np.zeros(len(per_cycle))
    carried[1:] = np.where(reset, per_cycle[:-1], 0.0)
    return per_cycle + np.cumsum(carried)


def bdf_columns(ts: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The timeseries as BDF columns, in BDF_ORDER."""
    out: dict[str, np.ndarray] = {}
    for ours, label in BDF_COLUMNS.items():
        out[label] = np.asarray(ts[ours])
    for label, ours in BDF_TOTALS.items():
        out[label] = since_test_start(ts[ours], ts["cycle_index"])
    return {label: out[label] for label in BDF_ORDER}


def _write_csv(path: Path, columns: Mapping[str, np.ndarray]) -> None:
    # pyarrow writes floats in shortest round-trip form (exact on reading back) and
    # fast; NaN (a missing reading) becomes an empty field. The header line is
    # written by hand so the names are not quoted.
    arrays = [pa.array(np.asarray(c), from_pandas=True) for c in columns.values()]
    table = pa.Table.from_arrays(arrays, names=list(columns))
    header = ",".join(columns) + "\n"
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(header.encode("utf-8"))
        pacsv.write_csv(table, f, pacsv.WriteOptions(include_header=False))


def _source(run: Any) -> dict[str, Any]:
    meta = run.meta
    station = meta.get("station") if isinstance(meta.get("station"), dict) else {}
    return {"source_run": str(Path(run.path).resolve()), "run_id": meta.get("run_id"),
            "status": meta.get("status"), "procedure": meta.get("procedure"),
            "cell": meta.get("cell"), "station": station.get("name"),
            "instruments": station.get("instruments"),
            "started_unix_s": meta.get("started_unix_s"), "clock": meta.get("clock")}


def _sidecar(run: Any, out: Path, fmt: str, columns: dict[str, Any]) -> Path:
    info = {
        "format": fmt,
        **({"bdf_ontology_version": BDF_VERSION} if fmt == "bdf" else {}),
        "current_sign": CURRENT_SIGN,
        "temperature": "cell temperature (a sensor on the cell's surface on a real bench; "
                       "the model's cell temperature in simulation), degrees Celsius",
        "columns": columns,
        **_source(run),
    }
    path = out.with_name(out.name + ".json")
    atomic_write_json(path, info)
    return path


def _file_target(out: Path) -> None:
    if out.is_dir():
        raise LabctlError(f"{out}: is a folder; give a file name for this format")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LabctlError(f"{out.parent}: cannot create the folder ({exc.strerror})") from None


def export_run(run: Any, fmt: str, out: str | Path) -> Path:
    """Write `run` in format `fmt` ("csv", "parquet" or "bdf") to `out`; returns what was written.

    csv and bdf write one CSV file plus `<out>.json`; parquet writes a folder `out`
    holding timeseries.parquet, steps.parquet, cycles.parquet and run.json.
    """
    out = Path(out)
    if fmt not in FORMATS:
        raise LabctlError(f"unknown export format {fmt!r}; allowed: {', '.join(FORMATS)}")
    if fmt == "parquet":
        return _export_parquet(run, out)
    _file_target(out)
    ts = run.timeseries
    cols = {name: ts[name].to_numpy() for name in SAMPLE_COLUMNS}
    if fmt == "csv":
        _write_csv(out, cols)
        described = {name: {"unit": UNITS[name]} for name in SAMPLE_COLUMNS}
        described["charge_capacity_ah"]["note"] = "cumulative within the cycle, >= 0"
    else:
        _write_csv(out, bdf_columns(cols))
        described = {label: {"from": ours, "unit": UNITS[ours]}
                     for ours, label in BDF_COLUMNS.items()}
        for label, ours in BDF_TOTALS.items():
            described[label] = {"from": ours, "unit": UNITS[ours],
                                "note": "running total since test start (BDF); labctl's "
                                        "column restarts each cycle"}
        described = {label: described[label] for label in BDF_ORDER}
    _sidecar(run, out, fmt, described)
    return out


def _export_parquet(run: Any, out: Path) -> Path:
    if out.exists() and not out.is_dir():
        raise LabctlError(f"{out}: exists and is not a folder; the parquet export is a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LabctlError(f"{out}: cannot create the folder ({exc.strerror})") from None
    from labctl.store.tables import write_frame

    for name in ("timeseries", "steps", "cycles"):
        write_frame(out / f"{name}.parquet", getattr(run, name))
    with atomic_path(out / "run.json") as tmp:
        shutil.copyfile(Path(run.path) / "run.json", tmp)
    atomic_write_json(out / "export.json", {"current_sign": CURRENT_SIGN, **_source(run)})
    return out
