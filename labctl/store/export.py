"""Export a run: csv (labctl names), parquet (the three tables), bdf (Battery Data Format)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from labctl.errors import LabctlError

FORMATS = ("csv", "parquet", "bdf")

# labctl column -> Battery Data Format column name.
BDF_COLUMNS = {
    "test_time_s": "Test Time / s",
    "voltage_v": "Voltage / V",
    "current_a": "Current / A",
    "unix_time_s": "Unix Time / s",
    "cycle_index": "Cycle Count / 1",
    "step_index": "Step Count / 1",
    "temperature_c": "Surface Temperature T1 / degC",
    "charge_capacity_ah": "Charging Capacity / Ah",
    "discharge_capacity_ah": "Discharging Capacity / Ah",
    "charge_energy_wh": "Charging Energy / Wh",
    "discharge_energy_wh": "Discharging Energy / Wh",
}


def _sidecar(run: Any, out: Path, fmt: str) -> None:
    info = {"source_run": str(run.path), "run_id": run.meta.get("run_id"), "format": fmt,
            "current_sign": "positive current = charge, negative = discharge",
            "temperature": "cell surface temperature, degrees Celsius",
            "capacities": "cumulative within each cycle, both >= 0"}
    out.with_name(out.name + ".json").write_text(json.dumps(info, indent=2))


def export_run(run: Any, fmt: str, out: Path) -> Path:
    out = Path(out)
    if fmt not in FORMATS:
        raise LabctlError(f"unknown export format {fmt!r}; allowed: {', '.join(FORMATS)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        out.mkdir(parents=True, exist_ok=True)
        run.timeseries.to_parquet(out / "timeseries.parquet", index=False)
        run.steps.to_parquet(out / "steps.parquet", index=False)
        run.cycles.to_parquet(out / "cycles.parquet", index=False)
        shutil.copy(run.path / "run.json", out / "run.json")
        return out
    ts = run.timeseries
    if fmt == "bdf":
        ts = ts.rename(columns=BDF_COLUMNS)[list(BDF_COLUMNS.values())]
    ts.to_csv(out, index=False)
    _sidecar(run, out, fmt)
    return out
