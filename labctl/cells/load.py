"""Cell files (YAML) -> CellSpec.

A cell file says what a cell is, what it must never be pushed past, and (optionally)
how to simulate it. Schema (SI units in the names; docs/cells.md has the long form):

    name: LFP 2.2 Ah                 # text, required
    chemistry: LFP                   # LFP | NMC | LTO | solid-state-bulk |
                                     # solid-state-thin-film | other
    capacity_ah: 2.2                 # 1e-7 .. 1e5; C-rates resolve against it
    nominal_voltage_v: 3.2           # between the voltage limits
    limits:                          # all six required
      max_voltage_v: 3.65
      min_voltage_v: 2.50            # < max_voltage_v, >= 0
      max_charge_current_a: 2.2      # magnitudes, > 0
      max_discharge_current_a: 6.6
      max_temperature_c: 60
      min_temperature_c: -20         # < max_temperature_c
    model:                           # optional: needed only to simulate the cell
      ocv_v: TABLE                   # open-circuit voltage, must not fall with SoC
      r0_ohm: TABLE                  # series resistance, > 0
      rc_pairs:                      # zero or more
        - {r_ohm: TABLE, tau_s: TABLE}   # > 0
      thermal: {heat_capacity_j_per_k: 45, heat_transfer_w_per_k: 0.1}   # > 0
      activation_energy_ev: 0.3      # >= 0, Arrhenius scaling of SoC-only resistances
      reference_temperature_c: 25    # where the tables were measured
      initial_soc: 0.5               # 0..1, where a simulation starts
      initial_temperature_c: 25
      ageing: {...}                  # optional: simulated ageing (cells/ageing_spec.py)
    datasheet: ...                   # optional free text, kept with the run
    notes: ...

A TABLE is a number (constant); {soc: [...], values: [...]}; {soc: [...],
temperature_c: [...], values: [[...], ...]} (one row per temperature); or
{csv: relative/path.csv, column: NAME}: a CSV in long format with columns `soc`,
optionally `temperature_c`, and the value column, relative to the cell file.
SoC lists increase strictly within [0, 1]; every number is finite.

Every problem is reported with the file, line, column and field, and what is allowed.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np

import labctl
from labctl.cells.spec import CellLimits, CellModel, CellSpec, RCPair, Table, ThermalModel
from labctl.errors import Problem, ValidationError
from labctl.fileio import os_error_text, read_regular_text
from labctl.units import ascii_float
from labctl.yamlio import LocatedDoc, PathKey, load_file

DEFAULT_CELL = "lfp-2p2ah"
MAX_TABLE_BYTES = 20_000_000
MIN_CAPACITY_AH, MAX_CAPACITY_AH = 1e-7, 1e5  # a cell's CSV table; real ones are kilobytes
CHEMISTRIES = ("LFP", "NMC", "LTO", "solid-state-bulk", "solid-state-thin-film", "other")
TOP_FIELDS = ("name", "chemistry", "capacity_ah", "nominal_voltage_v", "limits", "model",
              "datasheet", "notes", "impedance")
LIMIT_FIELDS = ("max_voltage_v", "min_voltage_v", "max_charge_current_a",
                "max_discharge_current_a", "max_temperature_c", "min_temperature_c")
MODEL_FIELDS = ("ocv_v", "r0_ohm", "rc_pairs", "thermal", "activation_energy_ev",
                "reference_temperature_c", "initial_soc", "initial_temperature_c", "ageing")
THERMAL_FIELDS = ("heat_capacity_j_per_k", "heat_transfer_w_per_k")
TABLE_FIELDS = ("soc", "values", "temperature_c")
CSV_FIELDS = ("csv", "column")
# Without a thermal section: an 18650-sized can in a chamber's moving air.
DEFAULT_THERMAL = {"heat_capacity_j_per_k": 45.0, "heat_transfer_w_per_k": 0.1}
_TABLE_FORMS = ("a number, {soc: [...], values: [...]}, {soc: [...], temperature_c: [...], "
                "values: [[...], ...]} or {csv: FILE, column: NAME}")


# -- finding cell files ----------------------------------------------------------------------


def _preset_dirs() -> list[Path]:
    """fixtures/cells in the working folder, then the labctl checkout; never a parent
    folder (a preset in a shared ancestor once replaced LFP's 3.65 V limit with 4.9 V)."""
    return [Path.cwd().resolve() / "fixtures" / "cells",
            Path(labctl.__file__).resolve().parent.parent / "fixtures" / "cells"]


def list_presets() -> list[str]:
    """Names of the preset cells that `load_cell` can find from here."""
    names: set[str] = set()
    for folder in _preset_dirs():
        if folder.is_dir():
            names.update(p.stem for p in folder.glob("*.yaml"))
    return sorted(names)


def resolve_cell(ref: str | Path) -> Path:
    """A path to a cell file, or a preset name found in the preset folders."""
    path = Path(ref)
    if path.suffix.lower() in (".yaml", ".yml") or path.is_file() or len(path.parts) > 1:
        return path
    for folder in _preset_dirs():
        candidate = folder / f"{ref}.yaml"
        if candidate.is_file():
            from labctl.notice import notice

            notice(f"cell preset {ref!s} from {candidate}")
            return candidate
    from labctl.suggest import did_you_mean

    presets = ", ".join(list_presets()) or "none found"
    raise ValidationError([Problem(None, None, None, "cell",
                                   f"unknown cell {str(ref)!r}: not a file, and not a preset"
                                   f"{did_you_mean(str(ref), list_presets())} (presets: "
                                   f"{presets}; or give the path to a cell file)")])


def load_cell(ref: str | Path) -> CellSpec:
    """Load a cell file (a path, or a preset name such as 'lfp-2p2ah')."""
    path = resolve_cell(ref)
    doc = load_file(path)
    return _Reader(doc, path.parent).cell(path)


# -- reading ---------------------------------------------------------------------------------


class _Reader:
    """Reads one document, collecting every problem before raising."""

    def __init__(self, doc: LocatedDoc, base: Path):
        self.doc = doc
        self.base = base
        self.problems: list[Problem] = []
        self.table_files: list[str] = []  # CSV files the tables came from

    def err(self, path: PathKey, message: str) -> None:
        self.problems.append(self.doc.problem(path, message))

    def mapping(self, value: Any, path: PathKey, allowed: tuple[str, ...], what: str) -> dict | None:
        if not isinstance(value, dict):
            self.err(path, f"must be a mapping with {what}")
            return None
        for key in value:
            if key not in allowed:
                self.err(path + (key,), f"unknown field {key!r}; allowed: {', '.join(allowed)}")
        return value

    def number(self, data: dict, key: str, path: PathKey, *, required: bool = True,
               default: float | None = None, minimum: float | None = None,
               positive: bool = False, unit: str = "") -> float | None:
        if key not in data or data[key] is None:
            if required:
                self.err(path + (key,), f"missing required field {key!r} (a number{unit})")
            return default
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self.err(path + (key,), f"must be a finite number{unit}, got {value!r}")
            return default
        if positive and value <= 0:
            self.err(path + (key,), f"must be > 0, got {value:g}")
            return default
        if minimum is not None and value < minimum:
            self.err(path + (key,), f"must be >= {minimum:g}, got {value:g}")
            return default
        return float(value)

    # -- the document ---------------------------------------------------------------------
    def cell(self, path: Path) -> CellSpec:
        data = self.doc.data
        if not isinstance(data, dict):
            raise ValidationError([self.doc.problem((), "a cell file is a mapping with fields "
                                                        + ", ".join(TOP_FIELDS))])
        self.mapping(data, (), TOP_FIELDS, "")
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            self.err(("name",), "missing required field 'name' (text)" if name is None
                     else f"must be text, got {name!r}")
        chemistry = self.chemistry(data)
        capacity = self.number(data, "capacity_ah", (), positive=True, unit=" of ampere-hours")
        if capacity is not None and not MIN_CAPACITY_AH <= capacity <= MAX_CAPACITY_AH:
            # 1e-300 Ah passed and failed at run time (C-rates of 1e-300 A, divisions by it)
            self.err(("capacity_ah",), f"must be from {MIN_CAPACITY_AH:g} Ah (a thin-film "
                     f"micro-cell) to {MAX_CAPACITY_AH:g} Ah, got {capacity:g}")
            capacity = None
        nominal = self.number(data, "nominal_voltage_v", (), positive=True, unit=" of volts")
        limits = self.limits(data.get("limits"))
        if limits and nominal is not None and not (
            limits.min_voltage_v <= nominal <= limits.max_voltage_v
        ):
            self.err(("nominal_voltage_v",), f"{nominal:g} V is outside the voltage limits "
                     f"{limits.min_voltage_v:g}..{limits.max_voltage_v:g} V")
        model = self.model(data["model"]) if data.get("model") is not None else None
        impedance = None
        if data.get("impedance") is not None:  # what a simulated potentiostat measures
            from labctl.cells.impedance_spec import read_impedance

            impedance = read_impedance(self, data["impedance"])
        if self.problems:
            raise ValidationError(self.problems)
        extra = {k: data[k] for k in ("datasheet", "notes") if k in data}
        if impedance is not None:
            extra["impedance"] = impedance  # labctl.cells.impedance_spec
        if self.table_files:  # so a run can keep copies beside its copy of the cell file
            extra["table_files"] = sorted(set(self.table_files))
        return CellSpec(name=name.strip(), chemistry=chemistry, capacity_ah=capacity,
                        nominal_voltage_v=nominal, limits=limits, model=model,
                        source=str(path), extra=extra)

    def chemistry(self, data: dict) -> str:
        value = data.get("chemistry")
        if value is None:
            self.err(("chemistry",), f"missing required field 'chemistry'; allowed: "
                     f"{', '.join(CHEMISTRIES)}")
            return "other"
        for known in CHEMISTRIES:
            if isinstance(value, str) and value.lower() == known.lower():
                return known
        self.err(("chemistry",), f"unknown chemistry {value!r}; allowed: {', '.join(CHEMISTRIES)}")
        return "other"

    def limits(self, value: Any) -> CellLimits | None:
        path = ("limits",)
        if value is None:
            self.err(path, "missing required section 'limits' with " + ", ".join(LIMIT_FIELDS))
            return None
        data = self.mapping(value, path, LIMIT_FIELDS, ", ".join(LIMIT_FIELDS))
        if data is None:
            return None
        v = {
            "max_voltage_v": self.number(data, "max_voltage_v", path, positive=True, unit=" of volts"),
            "min_voltage_v": self.number(data, "min_voltage_v", path, minimum=0.0, unit=" of volts"),
            "max_charge_current_a": self.number(data, "max_charge_current_a", path, positive=True,
                                                unit=" of amperes"),
            "max_discharge_current_a": self.number(data, "max_discharge_current_a", path,
                                                   positive=True, unit=" of amperes"),
            "max_temperature_c": self.number(data, "max_temperature_c", path, unit=" of °C"),
            "min_temperature_c": self.number(data, "min_temperature_c", path, unit=" of °C"),
        }
        if None in v.values():
            return None
        if v["min_voltage_v"] >= v["max_voltage_v"]:
            self.err(path + ("min_voltage_v",), f"must be below max_voltage_v "
                     f"({v['min_voltage_v']:g} V >= {v['max_voltage_v']:g} V)")
            return None
        if v["min_temperature_c"] >= v["max_temperature_c"]:
            self.err(path + ("min_temperature_c",), f"must be below max_temperature_c "
                     f"({v['min_temperature_c']:g} °C >= {v['max_temperature_c']:g} °C)")
            return None
        return CellLimits(**v)

    def model(self, value: Any) -> CellModel | None:
        path = ("model",)
        data = self.mapping(value, path, MODEL_FIELDS, "ocv_v, r0_ohm and optionally "
                            + ", ".join(MODEL_FIELDS[2:]))
        if data is None:
            return None
        ocv = self.table(data, "ocv_v", path, positive=False)
        if ocv is not None and np.any(np.diff(ocv.values, axis=-1) < 0):
            self.err(path + ("ocv_v",), "the OCV must not fall as SoC rises")
            ocv = None
        r0 = self.table(data, "r0_ohm", path, positive=True)
        pairs = self.rc_pairs(data.get("rc_pairs"), path + ("rc_pairs",))
        thermal = self.thermal(data.get("thermal"), path + ("thermal",))
        ea = self.number(data, "activation_energy_ev", path, required=False, default=0.0,
                         minimum=0.0)
        t_ref = self.number(data, "reference_temperature_c", path, required=False, default=25.0,
                            minimum=-273.15)
        soc0 = self.number(data, "initial_soc", path, required=False, default=0.5, minimum=0.0)
        if soc0 is not None and soc0 > 1.0:
            self.err(path + ("initial_soc",), f"must be within 0..1, got {soc0:g}")
        temp0 = self.number(data, "initial_temperature_c", path, required=False, default=25.0,
                            minimum=-273.15)
        ageing = None
        if data.get("ageing") is not None:  # how fast the simulated cell ages
            from labctl.cells.ageing_spec import read_ageing

            ageing = read_ageing(self, data["ageing"], path + ("ageing",))
            if ageing is None:
                return None
        if None in (ocv, r0, pairs, thermal, ea, t_ref, soc0, temp0):
            return None
        return CellModel(ocv, r0, tuple(pairs), thermal, activation_energy_ev=ea,
                         reference_temperature_c=t_ref, initial_soc=soc0,
                         initial_temperature_c=temp0, ageing=ageing)

    def rc_pairs(self, value: Any, path: PathKey) -> list[RCPair] | None:
        if value is None:
            return []
        if not isinstance(value, list):
            self.err(path, "must be a list of {r_ohm: TABLE, tau_s: TABLE}")
            return None
        pairs: list[RCPair] | None = []
        for k, item in enumerate(value):
            data = self.mapping(item, path + (k,), ("r_ohm", "tau_s"), "r_ohm and tau_s")
            if data is None:
                pairs = None
                continue
            r = self.table(data, "r_ohm", path + (k,), positive=True)
            tau = self.table(data, "tau_s", path + (k,), positive=True)
            if r is None or tau is None or pairs is None:
                pairs = None
            else:
                pairs.append(RCPair(r, tau))
        return pairs

    def thermal(self, value: Any, path: PathKey) -> ThermalModel | None:
        if value is None:
            return ThermalModel(**DEFAULT_THERMAL)
        data = self.mapping(value, path, THERMAL_FIELDS, ", ".join(THERMAL_FIELDS))
        if data is None:
            return None
        c = self.number(data, "heat_capacity_j_per_k", path, required=False, positive=True,
                        default=DEFAULT_THERMAL["heat_capacity_j_per_k"], unit=" of J/K")
        h = self.number(data, "heat_transfer_w_per_k", path, required=False, positive=True,
                        default=DEFAULT_THERMAL["heat_transfer_w_per_k"], unit=" of W/K")
        if c is None or h is None:
            return None
        return ThermalModel(c, h)

    # -- tables -------------------------------------------------------------------------
    def table(self, data: dict, key: str, parent: PathKey, positive: bool) -> Table | None:
        path = parent + (key,)
        if key not in data or data[key] is None:
            self.err(path, f"missing required field {key!r}: {_TABLE_FORMS}")
            return None
        value = data[key]
        if isinstance(value, bool) or isinstance(value, str):
            self.err(path, f"must be {_TABLE_FORMS}, got {value!r}")
            return None
        if isinstance(value, int | float):
            if not math.isfinite(value) or (positive and value <= 0):
                self.err(path, f"must be a finite number{' > 0' if positive else ''}, got {value!r}")
                return None
            return Table.constant(float(value))
        if not isinstance(value, dict):
            self.err(path, f"must be {_TABLE_FORMS}")
            return None
        if "csv" in value:
            self.mapping(value, path, CSV_FIELDS, "csv and column")
            return self.csv_table(value, path, positive)
        if self.mapping(value, path, TABLE_FIELDS, "soc, values and optionally temperature_c") is None:
            return None
        if "soc" not in value:
            self.err(path + ("soc",), "missing required field 'soc' (a list of SoC points, 0..1)")
            return None
        soc = self.number_list(value, "soc", path)
        temps = self.number_list(value, "temperature_c", path) if "temperature_c" in value else None
        if soc is None or ("temperature_c" in value and temps is None):
            return None
        if "values" not in value:
            self.err(path + ("values",), "missing required field 'values'")
            return None
        if temps is None:
            values = self.number_list(value, "values", path)
        else:
            rows = value["values"]
            if not isinstance(rows, list) or len(rows) != len(temps):
                self.err(path + ("values",), f"must be {len(temps)} rows (one per temperature_c), "
                         f"each of {len(soc)} numbers")
                return None
            values = []
            for j in range(len(rows)):
                got = self.number_list(rows, j, path + ("values",))
                if got is None:
                    return None
                if len(got) != len(soc):  # a ragged row would not make a 2-D array
                    self.err(path + ("values", j), f"has {len(got)} numbers; needs {len(soc)} "
                             f"(one per soc) in each row")
                    return None
                values.append(got)
        if values is None:
            return None
        return self.checked(np.asarray(soc, float), np.asarray(values, float),
                            None if temps is None else np.asarray(temps, float), path, positive)

    def number_list(self, data: Any, key: str | int, path: PathKey) -> list[float] | None:
        items = data[key]
        where = path + (key,)
        if not isinstance(items, list) or not items:
            self.err(where, f"must be a list of numbers, got {items!r}")
            return None
        for j, x in enumerate(items):
            if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
                self.err(where + (j,), f"must be a finite number, got {x!r}")
                return None
        return [float(x) for x in items]

    def checked(self, soc: np.ndarray, values: np.ndarray, temps: np.ndarray | None,
                path: PathKey, positive: bool, source: str | None = None) -> Table | None:
        """Shape, ordering and sign checks shared by inline and CSV tables."""
        def fail(field: str, message: str) -> None:
            where = path + ((field,) if field else ())
            self.err(where, message if source is None else f"{source}: {message}")

        if len(soc) < 2:
            fail("soc", "needs at least two SoC points (or give a single number)")
            return None
        if soc[0] < 0 or soc[-1] > 1 or np.any(np.diff(soc) <= 0):
            bad = int(np.argmax(np.diff(soc) <= 0)) + 1 if np.any(np.diff(soc) <= 0) else None
            detail = f" (point {bad}: {soc[bad]:g} after {soc[bad - 1]:g})" if bad else ""
            fail("soc", f"SoC must increase strictly within [0, 1]{detail}")
            return None
        expected = (len(soc),) if temps is None else (len(temps), len(soc))
        if values.shape != expected:
            fail("values", f"has shape {values.shape}; needs {expected} to match soc"
                 + ("" if temps is None else " and temperature_c"))
            return None
        if temps is not None and np.any(np.diff(temps) <= 0):
            fail("temperature_c", "must increase strictly")
            return None
        if positive and np.any(values <= 0):
            fail("values", "must all be > 0")
            return None
        return Table(soc, values, temps)

    def csv_table(self, value: dict, path: PathKey, positive: bool) -> Table | None:
        """A long-format CSV: soc, [temperature_c,] and the value column; one row per point."""
        import csv  # here: most cell files give their tables inline, and need no csv module

        name, column = value.get("csv"), value.get("column")
        if not isinstance(name, str) or not name:
            self.err(path + ("csv",), "must be the path of a CSV file, relative to the cell file")
            return None
        if not isinstance(column, str) or not column:
            self.err(path + ("column",), "missing required field 'column' (the value column's name)")
            return None
        file = self.base / name
        shown = str(file)
        if Path(name).is_absolute() or not file.resolve().is_relative_to(self.base.resolve()):
            self.err(path + ("csv",), f"{name!r} leaves the cell file's folder; a table file must "
                     f"be under {self.base}")
            return None
        self.table_files.append(shown)
        try:
            text = read_regular_text(file, MAX_TABLE_BYTES)
            rows = list(csv.reader(io.StringIO(text, newline="")))
        except OSError as exc:
            self.err(path + ("csv",), f"cannot read {shown}: {os_error_text(exc)}")
            return None
        except UnicodeDecodeError:
            self.err(path + ("csv",), f"{shown} is not UTF-8 text")
            return None
        except csv.Error as exc:  # e.g. a field over the csv module's 128 KiB limit
            self.err(path + ("csv",), f"{shown} is not a readable CSV table ({exc})")
            return None
        if not rows:
            self.err(path + ("csv",), f"{shown} is empty; needs a header: soc, [temperature_c,] {column}")
            return None
        header = [h.strip() for h in rows[0]]
        missing = [c for c in ("soc", column) if c not in header]
        if missing:
            # The header itself is not echoed: the file's content is not ours to print.
            self.problems.append(Problem(shown, 1, 1, column, f"missing column(s) {', '.join(missing)}; "
                                         f"the header (line 1) has {len(header)} column(s) and "
                                         "needs soc, [temperature_c,] and the value column"))
            return None
        cols = {"soc": header.index("soc"), "value": header.index(column)}
        if "temperature_c" in header:
            cols["temperature_c"] = header.index("temperature_c")
        data = []
        for line, row in enumerate(rows[1:], start=2):
            if not any(cell.strip() for cell in row):
                continue
            parsed = []
            for field, j in cols.items():
                text = row[j].strip() if j < len(row) else ""
                try:
                    x = ascii_float(text)
                except ValueError:
                    x = math.nan
                if not math.isfinite(x):
                    label = column if field == "value" else field
                    self.problems.append(Problem(shown, line, j + 1, label,
                                                 "is not a finite number"))
                    return None
                parsed.append(x)
            data.append(parsed)
        if not data:
            self.err(path + ("csv",), f"{shown} has no data rows")
            return None
        arr = np.array(data)
        if "temperature_c" not in cols:
            return self.checked(arr[:, 0], arr[:, 1], None, path, positive, shown)
        temps = np.unique(arr[:, 2])
        socs = np.unique(arr[:, 0])
        grid = np.full((len(temps), len(socs)), np.nan)
        for soc, v, t in arr:
            grid[np.searchsorted(temps, t), np.searchsorted(socs, soc)] = v
        if np.isnan(grid).any() or len(arr) != grid.size:
            self.err(path + ("csv",), f"{shown}: each temperature_c needs exactly one row per SoC "
                     f"({len(socs)} SoC x {len(temps)} temperatures = {grid.size} rows; "
                     f"found {len(arr)})")
            return None
        return self.checked(socs, grid, temps, path, positive, shown)
