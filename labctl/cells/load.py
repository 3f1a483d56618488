"""Cell files (YAML) -> CellSpec. See docs/cells.md for the schema."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

import labctl
from labctl.cells.spec import CellLimits, CellModel, CellSpec, RCPair, Table, ThermalModel
from labctl.errors import Problem, ValidationError
from labctl.yamlio import LocatedDoc, load_file

DEFAULT_CELL = "lfp-2p2ah"
CHEMISTRIES = ("LFP", "NMC", "LTO", "solid-state-bulk", "solid-state-thin-film", "other")
TOP = {"name", "chemistry", "capacity_ah", "nominal_voltage_v", "limits", "model", "datasheet", "notes"}
LIMITS = ("max_voltage_v", "min_voltage_v", "max_charge_current_a", "max_discharge_current_a",
          "max_temperature_c", "min_temperature_c")
MODEL = {"ocv_v", "r0_ohm", "rc_pairs", "thermal", "activation_energy_ev", "reference_temperature_c",
         "initial_soc", "initial_temperature_c"}


def _preset_dirs() -> list[Path]:
    here = Path.cwd().resolve()
    dirs = [p / "fixtures" / "cells" for p in (here, *here.parents)]
    dirs.append(Path(labctl.__file__).resolve().parent.parent / "fixtures" / "cells")
    return dirs


def list_presets() -> list[str]:
    for d in _preset_dirs():
        if d.is_dir():
            return sorted(p.stem for p in d.glob("*.yaml"))
    return []


def resolve(ref: str | Path) -> Path:
    p = Path(ref)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    for d in _preset_dirs():
        candidate = d / f"{ref}.yaml"
        if candidate.is_file():
            return candidate
    raise ValidationError([Problem(str(ref), None, None, "", "no such cell file or preset; presets: "
                                   + (", ".join(list_presets()) or "none found"))])


class _Reader:
    def __init__(self, doc: LocatedDoc, base: Path):
        self.doc, self.base, self.problems = doc, base, []

    def err(self, path, msg):
        self.problems.append(self.doc.problem(path, msg))

    def number(self, data, key, path, positive=False, required=True, default=None):
        if key not in data:
            if required:
                self.err(path, f"missing required field '{key}'")
            return default
        v = data[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            self.err(path + (key,), f"must be a finite number, got {v!r}")
            return default
        if positive and v <= 0:
            self.err(path + (key,), f"must be > 0, got {v}")
            return default
        return float(v)

    def unknown(self, data, allowed, path):
        for k in data:
            if k not in allowed:
                self.err(path + (k,), f"unknown field {k!r}; allowed: {', '.join(sorted(allowed))}")

    def table(self, value, path, positive=False) -> Table | None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if positive and value <= 0:
                self.err(path, f"must be > 0, got {value}")
                return None
            return Table.constant(float(value))
        if not isinstance(value, dict):
            self.err(path, "a number, {soc: [...], values: [...]}, or {csv: FILE, column: NAME}")
            return None
        if "csv" in value:
            return self.csv_table(value, path, positive)
        self.unknown(value, {"soc", "values", "temperature_c"}, path)
        try:
            soc = np.asarray(value.get("soc"), dtype=float)
            vals = np.asarray(value.get("values"), dtype=float)
            temps = None if value.get("temperature_c") is None else np.asarray(value["temperature_c"], float)
        except (TypeError, ValueError):
            self.err(path, "soc, values and temperature_c must be lists of numbers")
            return None
        return self.check_table(soc, vals, temps, path, positive)

    def check_table(self, soc, vals, temps, path, positive):
        if soc.ndim != 1 or len(soc) < 2:
            self.err(path + ("soc",), "needs at least two SoC points")
            return None
        if not np.all(np.isfinite(soc)) or soc[0] < 0 or soc[-1] > 1 or np.any(np.diff(soc) <= 0):
            self.err(path + ("soc",), "SoC must be strictly increasing within [0, 1]")
            return None
        expect = (len(soc),) if temps is None else (len(temps), len(soc))
        if vals.shape != expect:
            self.err(path + ("values",), f"shape {vals.shape} does not match soc/temperature_c {expect}")
            return None
        if temps is not None and np.any(np.diff(temps) <= 0):
            self.err(path + ("temperature_c",), "must be strictly increasing")
            return None
        if not np.all(np.isfinite(vals)) or (positive and np.any(vals <= 0)):
            self.err(path + ("values",), "values must be finite" + (" and > 0" if positive else ""))
            return None
        return Table(soc, vals, temps)

    def csv_table(self, value, path, positive):
        file = self.base / str(value["csv"])
        column = value.get("column")
        try:
            rows = list(csv.DictReader(file.open(newline="")))
        except OSError as exc:
            self.err(path + ("csv",), f"cannot read {file}: {exc.strerror}")
            return None
        if not rows or "soc" not in rows[0] or column not in rows[0]:
            self.err(path + ("csv",), f"{file}: needs columns soc, [temperature_c,] {column}")
            return None
        data = []
        for n, row in enumerate(rows, start=2):
            try:
                data.append((float(row.get("temperature_c") or "nan"), float(row["soc"]), float(row[column])))
            except (TypeError, ValueError):
                self.problems.append(Problem(str(file), n, None, column, f"row is not numeric: {row}"))
                return None
        arr = np.array(data)
        if np.all(np.isnan(arr[:, 0])):
            order = np.argsort(arr[:, 1])
            return self.check_table(arr[order, 1], arr[order, 2], None, path, positive)
        temps = np.unique(arr[:, 0])
        socs = np.unique(arr[:, 1])
        grid = np.full((len(temps), len(socs)), np.nan)
        for t, s, v in arr:
            grid[np.searchsorted(temps, t), np.searchsorted(socs, s)] = v
        return self.check_table(socs, grid, temps, path, positive)


def load_cell(ref: str | Path) -> CellSpec:
    path = resolve(ref)
    doc = load_file(path)
    r = _Reader(doc, path.parent)
    d = doc.data
    if not isinstance(d, dict):
        raise ValidationError([doc.problem((), "a cell file is a mapping (name, chemistry, capacity_ah, limits, ...)")])
    r.unknown(d, TOP, ())
    chem = d.get("chemistry", "other")
    if chem not in CHEMISTRIES:
        r.err(("chemistry",), f"unknown chemistry {chem!r}; allowed: {', '.join(CHEMISTRIES)}")
    cap = r.number(d, "capacity_ah", (), positive=True)
    nominal = r.number(d, "nominal_voltage_v", (), positive=True)
    lim = d.get("limits")
    limits = None
    if not isinstance(lim, dict):
        r.err(("limits",), "missing required section 'limits' with " + ", ".join(LIMITS))
    else:
        r.unknown(lim, set(LIMITS), ("limits",))
        vals = {k: r.number(lim, k, ("limits",)) for k in LIMITS}
        if None not in vals.values():
            if vals["min_voltage_v"] >= vals["max_voltage_v"]:
                r.err(("limits", "min_voltage_v"), "must be below max_voltage_v")
            if vals["min_temperature_c"] >= vals["max_temperature_c"]:
                r.err(("limits", "min_temperature_c"), "must be below max_temperature_c")
            for k in ("max_charge_current_a", "max_discharge_current_a"):
                if vals[k] <= 0:
                    r.err(("limits", k), "must be > 0")
            limits = CellLimits(**vals)
    model = None
    m = d.get("model")
    if m is not None:
        if not isinstance(m, dict):
            r.err(("model",), "must be a mapping")
        else:
            r.unknown(m, MODEL, ("model",))
            ocv = r.table(m.get("ocv_v"), ("model", "ocv_v")) if "ocv_v" in m else r.err(("model",), "missing ocv_v")
            r0 = r.table(m.get("r0_ohm"), ("model", "r0_ohm"), positive=True) if "r0_ohm" in m else r.err(("model",), "missing r0_ohm")
            pairs = []
            for k, pair in enumerate(m.get("rc_pairs") or []):
                if not isinstance(pair, dict):
                    r.err(("model", "rc_pairs", k), "each pair is {r_ohm: ..., tau_s: ...}")
                    continue
                r.unknown(pair, {"r_ohm", "tau_s"}, ("model", "rc_pairs", k))
                rr = r.table(pair.get("r_ohm"), ("model", "rc_pairs", k, "r_ohm"), positive=True)
                tt = r.table(pair.get("tau_s"), ("model", "rc_pairs", k, "tau_s"), positive=True)
                if rr is not None and tt is not None:
                    pairs.append(RCPair(rr, tt))
            th = m.get("thermal") or {}
            r.unknown(th, {"heat_capacity_j_per_k", "heat_transfer_w_per_k"}, ("model", "thermal"))
            thermal = ThermalModel(
                r.number(th, "heat_capacity_j_per_k", ("model", "thermal"), positive=True, required=False, default=40.0),
                r.number(th, "heat_transfer_w_per_k", ("model", "thermal"), positive=True, required=False, default=0.05))
            if ocv is not None and r0 is not None:
                model = CellModel(
                    ocv, r0, tuple(pairs), thermal,
                    activation_energy_ev=r.number(m, "activation_energy_ev", ("model",), required=False, default=0.0),
                    reference_temperature_c=r.number(m, "reference_temperature_c", ("model",), required=False, default=25.0),
                    initial_soc=r.number(m, "initial_soc", ("model",), required=False, default=0.5),
                    initial_temperature_c=r.number(m, "initial_temperature_c", ("model",), required=False, default=25.0))
    if r.problems:
        raise ValidationError(r.problems)
    return CellSpec(name=str(d.get("name", path.stem)), chemistry=chem, capacity_ah=cap,
                    nominal_voltage_v=nominal, limits=limits, model=model, source=str(path),
                    extra={k: d[k] for k in ("datasheet", "notes") if k in d})
