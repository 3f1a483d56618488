"""The `profile` step: follow a current or power profile (a drive cycle) from a CSV file.

    - profile: {file: dst.csv, repeat: 20, scale: 1.0, log: every 1 s}

Keys: file (required), column (default: the file's only value column), quantity
(current | power; must agree with the column's unit when given), scale (a
positive factor applied to every value, default 1), repeat (times the profile
is played back to back, default 1), sign (charge-positive, the labctl default,
or discharge-positive for published cycles that count discharge as positive),
log (logging rule, default the file's).

The CSV: a header, then one row per point. `time_s` (first row 0, strictly
increasing) and value columns whose name ends in a unit: `_a`, `_ma` (current),
`_c` (current as a C-rate: multiplied by the cell's capacity), `_w`, `_mw`,
`_kw` (power), `_e` (power as an E-rate, W per Wh of nominal energy: multiplied
by capacity x nominal voltage). Lines starting with `#` are comments. Each
row's value is held until the next row's time; the last row's value is held for
one more interval (as long as the one before it), so a 1 Hz file with rows at
0..359 s lasts 360 s and repeats seamlessly.

Where the file may be: `file` is relative to the procedure file. It must stay
inside the procedure file's folder tree (symbolic links followed), or inside a
`fixtures/profiles/` folder: the one of the current folder (or a parent) or of
the labctl checkout. A bare name that is not beside the procedure is looked up
in those profile folders, so `file: dst.csv` finds the shipped profiles.

The step runs as one `CURRENT_PROFILE` / `POWER_PROFILE` electrical step through
`run.run_electrical`, so the cell's limits and the cycler's ranges are checked
before the run (at the profile's largest charge and discharge value) and on every
sample while it runs; as for any charge or discharge, the step ends at the
cell's max voltage when charging and at its min voltage when discharging. The
record table `profiles` gets one row per executed profile step (file, sha256,
points, duration).
"""

from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import labctl
from labctl.capabilities.steps import ElectricalStep, LoggingPolicy, Mode, Profile, SourceRef
from labctl.errors import LabctlError, Problem, ValidationError
from labctl.units import NUMBER, ascii_float

KEYS = ("file", "column", "quantity", "scale", "repeat", "sign", "log")
TABLE = "profiles"
MAX_POINTS = 2_000_000  # a week at 1 Hz, repeats included; more is a mistake, not a cycle
MAX_FILE_BYTES = 50_000_000

# unit suffix -> (quantity, factor to A or W, per-cell scaling: None, "capacity", "energy")
UNITS: dict[str, tuple[str, float, str | None]] = {
    "a": ("current", 1.0, None),
    "ma": ("current", 1e-3, None),
    "c": ("current", 1.0, "capacity"),
    "w": ("power", 1.0, None),
    "mw": ("power", 1e-3, None),
    "kw": ("power", 1e3, None),
    "e": ("power", 1.0, "energy"),
}
UNIT_HELP = ("_a or _ma (current), _c (C-rate), _w, _mw or _kw (power), _e (E-rate, "
             "W per Wh of nominal energy)")


@dataclass(frozen=True)
class ProfileTable:
    """A profile file as read: times from 0 (s) and raw values in the column's unit."""

    path: Path
    column: str
    quantity: str  # current | power
    factor: float  # to A or W
    per_cell: str | None  # None, "capacity" or "energy"
    time_s: tuple[float, ...]
    values: tuple[float, ...]
    sha256: str

    @property
    def duration_s(self) -> float:
        return profile_duration(self.time_s)


def profile_duration(time_s: tuple[float, ...] | list[float]) -> float:
    """End of the last row's hold: last time plus the interval before it (1 s for one row)."""
    if len(time_s) < 2:
        return float(time_s[-1]) + 1.0 if time_s else 0.0
    return float(time_s[-1]) + (float(time_s[-1]) - float(time_s[-2]))


def unit_of(column: str) -> str | None:
    """The unit suffix of a column name (`current_c` -> 'c'), or None."""
    if "_" not in column:
        return None
    suffix = column.rsplit("_", 1)[1].lower()
    return suffix if suffix in UNITS else None


def read_profile_csv(path: str | Path, column: str | None = None) -> ProfileTable:
    """Read and validate a profile CSV; every problem located as file:line:column.

    Raises ValidationError listing all problems found (bad header, unknown unit,
    non-numeric or non-finite values, times not starting at 0 or not increasing).
    """
    path = Path(path)
    shown = str(path)
    from labctl.fileio import os_error_text, read_regular_bytes

    try:  # a FIFO or /dev/zero is refused for what it is, never read for ever
        data = read_regular_bytes(path, MAX_FILE_BYTES)
    except OSError as exc:
        raise LabctlError(f"{shown}: cannot read the profile ({os_error_text(exc)})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError([Problem(shown, None, None, "", "not UTF-8 text; a profile is a "
                                                             "CSV file")]) from None
    problems: list[Problem] = []

    def bad(line: int | None, col: int | None, fld: str, message: str) -> None:
        if len(problems) < 20:  # enough to fix a file; a wrong file would list thousands
            problems.append(Problem(shown, line, col, fld, message))

    rows = [(n, r) for n, r in enumerate(csv.reader(text.splitlines()), start=1)
            if r and not r[0].lstrip().startswith("#") and any(c.strip() for c in r)]
    if not rows:
        raise ValidationError([Problem(shown, None, None, "", "empty profile: expected a header "
                                                             "with time_s and a value column")])
    header_line, header = rows[0]
    names = [h.strip() for h in header]
    if "time_s" not in names:
        bad(header_line, 1, "header", f"no time_s column; the header is {', '.join(names)}; "
                                      "expected time_s and a value column such as current_a")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        bad(header_line, None, "header", f"duplicate column(s) {', '.join(dup)}")
    values_cols = [n for n in names if n != "time_s"]
    for k, n in enumerate(names):
        if n != "time_s" and unit_of(n) is None:
            bad(header_line, k + 1, n, f"column {n!r} has no known unit; name value columns "
                                       f"with a unit suffix: {UNIT_HELP}")
    if column is None:
        if len(values_cols) != 1:
            bad(header_line, None, "header",
                f"{len(values_cols)} value columns ({', '.join(values_cols) or 'none'}); "
                "say which one with `column:`")
    elif column not in names or column == "time_s":
        bad(header_line, None, "header", f"no column {column!r}; value columns: "
                                         f"{', '.join(values_cols) or 'none'}")
    if problems:
        raise ValidationError(problems)
    column = column or values_cols[0]
    t_col, v_col = names.index("time_s"), names.index(column)
    times: list[float] = []
    values: list[float] = []
    for line, row in rows[1:]:
        if len(row) != len(names):
            bad(line, None, "", f"{len(row)} fields, the header has {len(names)}")
            continue
        pair = []
        for col, name in ((t_col, "time_s"), (v_col, column)):
            raw = row[col].strip()
            try:
                x = ascii_float(raw)
            except ValueError:
                bad(line, col + 1, name, f"{raw!r} is not a number")
                x = math.nan
            else:
                if not math.isfinite(x):
                    bad(line, col + 1, name, f"{raw!r}: values must be finite numbers")
            pair.append(x)
        t, v = pair
        if times and math.isfinite(t) and math.isfinite(times[-1]) and not t > times[-1]:
            bad(line, t_col + 1, "time_s", f"time {t:g} s does not increase (the row before "
                                           f"is at {times[-1]:g} s); times must strictly increase")
        times.append(t)
        values.append(v)
    if not times:
        bad(header_line, None, "", "no data rows after the header")
    elif times[0] != 0:
        bad(rows[1][0], t_col + 1, "time_s", f"the first time must be 0 s, got {times[0]:g}")
    if len(times) > MAX_POINTS:
        bad(None, None, "", f"{len(times)} rows: a profile may have at most {MAX_POINTS}")
    if problems:
        raise ValidationError(problems)
    quantity, factor, per_cell = UNITS[unit_of(column) or ""]
    return ProfileTable(path, column, quantity, factor, per_cell, tuple(times), tuple(values),
                        hashlib.sha256(data).hexdigest())


def profile_folders() -> list[Path]:
    """fixtures/profiles in the working folder, then the labctl checkout's (never a parent
    folder: a shared ancestor is anybody's to write)."""
    dirs = [Path.cwd().resolve() / "fixtures" / "profiles",
            Path(labctl.__file__).resolve().parent.parent / "fixtures" / "profiles"]
    return [d for d in dirs if d.is_dir()]


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def resolve_profile(name: str, folder: Path) -> Path:
    """The profile file `name` given in a procedure in `folder`, under the rule in the docstring."""
    folder = folder.resolve()
    roots = [folder] + [d.resolve() for d in profile_folders()]
    candidates = [(folder / name).resolve()]
    if len(Path(name).parts) == 1:
        candidates += [(d / name).resolve() for d in roots[1:]]
    for path in candidates:
        if path.is_file():
            if not any(_inside(path, root) for root in roots):
                raise LabctlError(f"profile {name!r} resolves to {path}, outside the procedure's "
                                  f"folder {folder} and outside fixtures/profiles/; move or link "
                                  "it into one of them")
            return path
    looked = ", ".join(str(c) for c in dict.fromkeys(candidates))
    raise LabctlError(f"profile file {name!r} not found (looked at {looked})")


def scaled_profile(table: ProfileTable, *, capacity_ah: float, nominal_voltage_v: float,
                   scale: float = 1.0, repeat: int = 1, discharge_positive: bool = False
                   ) -> Profile:
    """The profile in A or W for a cell, played `repeat` times (charge positive)."""
    factor = table.factor * scale * (-1.0 if discharge_positive else 1.0)
    if table.per_cell == "capacity":
        factor *= capacity_ah
    elif table.per_cell == "energy":
        factor *= capacity_ah * nominal_voltage_v
    period = table.duration_s
    times: list[float] = []
    values: list[float] = []
    for k in range(repeat):
        times.extend(t + k * period for t in table.time_s)
        values.extend(v * factor + 0.0 for v in table.values)  # + 0.0: no negative zeros
    # The sentinel end point: the cycler ends the step at the profile's last time.
    times.append(repeat * period)
    values.append(0.0)
    name = table.path.name + (f" x{repeat}" if repeat > 1 else "")
    return Profile(time_s=tuple(times), value=tuple(values), name=name)


@dataclass(frozen=True)
class ProfileStep:
    electrical: ElectricalStep
    file: str
    sha256: str
    repeat: int
    text: str = "profile"
    source: SourceRef = field(default_factory=SourceRef)
    kind: str = "profile"
    roles: tuple[str, ...] = ("cycler",)

    @property
    def logging(self) -> LoggingPolicy:
        return self.electrical.logging

    def check(self, checker: Any) -> None:
        checker.electrical(self.electrical)

    def execute(self, run: Any) -> Any:
        prof = self.electrical.profile
        run.record(TABLE, {"file": [self.file], "sha256": [self.sha256],
                           "repeat": [self.repeat], "points": [len(prof.time_s) - 1],
                           "duration_s": [prof.time_s[-1]]})
        return run.run_electrical(self.electrical)


def compile_profile(spec: Any) -> ProfileStep | None:
    """`StepTypeInfo.compile` for `profile:`."""
    from labctl.procedures.grammar import apply_cell_rules

    if not spec.mapping(KEYS, required=("file",)):
        return None
    name = spec.text("file", required=True)
    column = spec.text("column")
    quantity = spec.choice("quantity", ("current", "power"))
    scale = spec.quantity("scale", NUMBER, 1.0, positive=True)
    repeat = spec.integer("repeat", 1)
    sign = spec.choice("sign", ("charge-positive", "discharge-positive"), "charge-positive")
    logging = spec.logging("log")
    if not spec.ok or name is None or scale is None or repeat is None:
        return None
    try:
        path = resolve_profile(name, spec.folder)
    except LabctlError as exc:
        spec.error("file", str(exc))
        return None
    table = read_profile_csv(path, column)  # ValidationError: the compiler reports it here
    if quantity is not None and quantity != table.quantity:
        spec.error("quantity", f"quantity {quantity} does not match column {table.column!r}, "
                               f"which holds a {table.quantity}")
        return None
    n_points = len(table.time_s) * repeat
    if n_points > MAX_POINTS:
        spec.error("repeat", f"{n_points} points with repeat {repeat}; at most {MAX_POINTS}")
        return None
    cell = spec.cell
    prof = scaled_profile(table, capacity_ah=cell.capacity_ah,
                          nominal_voltage_v=cell.nominal_voltage_v, scale=scale, repeat=repeat,
                          discharge_positive=sign == "discharge-positive")
    mode = Mode.CURRENT_PROFILE if table.quantity == "current" else Mode.POWER_PROFILE
    text = (f"profile {path.name}" + (f" x{repeat}" if repeat > 1 else "")
            + (f" scale {scale:g}" if scale != 1 else "") + f" ({table.quantity})")
    step = ElectricalStep(mode, profile=prof, logging=logging, text=text, source=spec.source())
    step = apply_cell_rules(step, cell)
    return ProfileStep(step, str(path), table.sha256, repeat, text=text, source=spec.source())


__all__ = ["ProfileStep", "ProfileTable", "compile_profile", "profile_duration",
           "read_profile_csv", "resolve_profile", "scaled_profile"]
