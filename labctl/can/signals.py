"""The station file's map from labctl's BMS roles to a DBC's messages and signals.

```yaml
  bms:
    driver: sim-bms
    dbc: ../fixtures/dbc/labctl-bms.dbc      # relative to the station file
    cells: 16
    signals:
      cell_voltage_v: "CellV{n:02d}"          # a template over the cells (n = 1..cells,
      cell_temperature_c: "CellT{n:02d}"      #   i = n - 1, m = module, k = cell in module)
      pack_current_a: PackCurrent             # a signal name, or Message.Signal
      contactor_closed: {signal: MainRelayState, equals: 2}   # a flag from a state value
      ...
    counters: [Status_Counter, ...]           # rolling counters, one per message
    checksums: [Status_Checksum, ...]         # one byte each
    checksum_algorithm: sum8                  # sum8 | xor8 | crc8
```

Values are converted to labctl's units from the DBC signal's unit (mV -> V, % -> a
fraction 0..1, kPa -> MPa...); a signal whose unit does not fit its role, a name
the DBC lacks, a counter wider than 8 bits or a checksum that is not one whole
byte are reported at their line in the station file, before anything runs.
"""

from __future__ import annotations

import difflib
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labctl.can.checksum import ALGORITHMS, checksum
from labctl.errors import LabctlError, Problem, ValidationError

# Roles with one value (kind = what unit family the DBC signal must have).
SCALAR_ROLES: dict[str, str] = {
    "pack_voltage_v": "voltage",
    "pack_current_a": "current",
    "soc": "fraction",
    "contactor_closed": "flag",
    "stack_pressure_mpa": "pressure",
    "fault_over_voltage": "flag",
    "fault_under_voltage": "flag",
    "fault_over_current_charge": "flag",
    "fault_over_current_discharge": "flag",
    "fault_over_temperature": "flag",
    "fault_under_temperature": "flag",
    "fault_pressure": "flag",
    "fault_sensor": "flag",
    "fault_comm": "flag",
    "cmd_contactor_close": "flag",
    "cmd_balancing_enable": "flag",
}
# Roles with one value per cell.
CELL_ROLES: dict[str, str] = {
    "cell_voltage_v": "voltage",
    "cell_temperature_c": "temperature",
    "balancing": "flag",
}
COMMAND_ROLES = ("cmd_contactor_close", "cmd_balancing_enable")
REQUIRED_ROLES = ("cell_voltage_v", "pack_current_a", "contactor_closed", "cmd_contactor_close")
FAULT_ROLES = tuple(r for r in SCALAR_ROLES if r.startswith("fault_"))

# DBC unit -> factor to labctl's unit, per kind.
UNITS: dict[str, dict[str, float]] = {
    "voltage": {"V": 1.0, "mV": 1e-3, "kV": 1e3},
    "current": {"A": 1.0, "mA": 1e-3, "kA": 1e3},
    "temperature": {"degC": 1.0, "°C": 1.0, "C": 1.0, "deg C": 1.0, "Cel": 1.0},
    "pressure": {"MPa": 1.0, "kPa": 1e-3, "bar": 0.1, "Pa": 1e-6},
    "fraction": {"%": 0.01, "": 1.0, "1": 1.0},
}
_TEMPLATE_FIELDS = {"n", "i", "m", "k"}
_MAP_KEYS = ("dbc", "cells", "cells_per_module", "signals", "counters", "checksums",
             "checksum_algorithm")


@dataclass(frozen=True)
class SignalRef:
    """One role value: which signal of which message, and how to read it."""

    role: str
    message: str
    signal: str
    frame_id: int
    extended: bool
    factor: float = 1.0  # DBC physical value * factor = labctl value
    equals: int | None = None  # a flag that is true when the signal equals this value

    def to_labctl(self, x: np.ndarray | float) -> Any:
        if self.equals is not None:
            return np.asarray(np.rint(x) == self.equals)
        return np.asarray(x) * self.factor

    def to_dbc(self, x: float) -> float:
        if self.equals is not None:
            return float(self.equals) if x else 0.0
        return float(x) / self.factor


@dataclass
class SignalMap:
    """Roles -> DBC signals, plus the integrity signals of each message."""

    db: Any  # cantools Database
    dbc_path: Path
    cells: int
    cells_per_module: int
    scalar: dict[str, SignalRef] = field(default_factory=dict)
    per_cell: dict[str, list[SignalRef]] = field(default_factory=dict)
    counters: dict[str, str] = field(default_factory=dict)  # message -> counter signal
    checksums: dict[str, str] = field(default_factory=dict)  # message -> checksum signal
    checksum_algorithm: str = "sum8"

    # -- lookups ---------------------------------------------------------------------------------
    def has(self, role: str) -> bool:
        return role in self.scalar or role in self.per_cell

    def refs(self, role: str) -> list[SignalRef]:
        if role in self.scalar:
            return [self.scalar[role]]
        return list(self.per_cell.get(role, []))

    def message(self, name: str) -> Any:
        return self.db.get_message_by_name(name)

    def all_refs(self) -> list[SignalRef]:
        out = list(self.scalar.values())
        for refs in self.per_cell.values():
            out.extend(refs)
        return out

    def command_messages(self) -> list[str]:
        """Messages labctl sends (they carry command roles)."""
        return sorted({r.message for r in self.all_refs() if r.role in COMMAND_ROLES})

    def device_messages(self) -> list[str]:
        """Messages the BMS sends: every message carrying a mapped non-command role."""
        cmd = set(self.command_messages())
        return sorted({r.message for r in self.all_refs()} - cmd,
                      key=lambda n: self.message(n).frame_id)

    def period_s(self, message: str) -> float | None:
        cycle = self.message(message).cycle_time
        return cycle / 1000.0 if cycle else None

    def checksum_byte(self, message: str) -> int | None:
        name = self.checksums.get(message)
        if name is None:
            return None
        return _byte_index(self.message(message).get_signal_by_name(name))

    # -- encoding (the simulated BMS and labctl's commands) ------------------------------------------
    def encode(self, message: str, values: dict[str, float], counter: int | None = None) -> bytes:
        """Frame data of `message` from DBC-physical signal values; counter and checksum filled in."""
        msg = self.message(message)
        full = {s.name: 0.0 for s in msg.signals}
        full.update(values)
        cname = self.counters.get(message)
        if cname is not None and counter is not None:
            bits = msg.get_signal_by_name(cname).length
            full[cname] = counter % (1 << bits)
        data = bytearray(msg.encode(full, scaling=True, strict=False, padding=False))
        cs = self.checksums.get(message)
        if cs is not None:
            index = self.checksum_byte(message)
            data[index] = checksum(self.checksum_algorithm, data, index, msg.frame_id)
        return bytes(data)

    def describe(self) -> dict[str, Any]:
        """A JSON-able copy, stored with a run so its logs can be decoded later."""
        def ref(r: SignalRef) -> dict:
            d: dict[str, Any] = {"signal": f"{r.message}.{r.signal}"}
            if r.equals is not None:
                d["equals"] = r.equals
            return d

        sig: dict[str, Any] = {k: ref(v) for k, v in self.scalar.items()}
        sig.update({k: [ref(r) for r in v] for k, v in self.per_cell.items()})
        return {"dbc": self.dbc_path.name, "cells": self.cells,
                "cells_per_module": self.cells_per_module, "signals": sig,
                "counters": [f"{m}.{s}" for m, s in sorted(self.counters.items())],
                "checksums": [f"{m}.{s}" for m, s in sorted(self.checksums.items())],
                "checksum_algorithm": self.checksum_algorithm}


def _byte_index(sig) -> int | None:
    """The frame byte a one-byte, byte-aligned signal occupies (None if it is not one)."""
    if sig.length != 8:
        return None
    if sig.byte_order == "little_endian":
        return sig.start // 8 if sig.start % 8 == 0 else None
    return sig.start // 8 if sig.start % 8 == 7 else None


# ------------------------------------------------------------------------------------------------
# Loading and checking


class _Builder:
    def __init__(self, settings: dict, base: Path, where: Any):
        self.s = settings
        self.base = base
        self.where = where  # (path tuple) -> Problem factory
        self.problems: list[Problem] = []
        self.db: Any = None
        self.index: dict[str, list[Any]] = {}  # signal name -> messages holding it

    def err(self, path: tuple, message: str) -> None:
        self.problems.append(self.where(path, message))

    def load_dbc(self) -> bool:
        import cantools

        raw = self.s.get("dbc")
        if not isinstance(raw, str) or not raw.strip():
            self.err(("dbc",), "the bms binding needs 'dbc: FILE' (a DBC file, relative to the "
                               "station file)")
            return False
        path = (self.base / raw).resolve()
        if not path.is_file():
            self.err(("dbc",), f"DBC file {raw!r} not found (looked at {path})")
            return False
        try:
            self.db = cantools.database.load_file(str(path), database_format="dbc", strict=True)
        except Exception as exc:  # cantools raises several types for a bad file
            self.err(("dbc",), f"DBC file {raw!r} cannot be read: {exc}")
            return False
        self.dbc_path = path
        for m in self.db.messages:
            for s in m.signals:
                self.index.setdefault(s.name, []).append(m)
        return True

    def count(self, key: str, default: int | None) -> int | None:
        raw = self.s.get(key, default)
        if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= 1024:
            self.err((key,), f"{key} must be a whole number from 1 to 1024, got {raw!r}")
            return None
        return raw

    def find(self, path: tuple, name: Any) -> tuple[Any, Any] | None:
        """'Signal' or 'Message.Signal' -> (message, signal), or a located problem."""
        if not isinstance(name, str) or not name.strip():
            self.err(path, f"expected a signal name ('Signal' or 'Message.Signal'), got {name!r}")
            return None
        name = name.strip()
        if "." in name:
            mname, sname = name.split(".", 1)
            try:
                msg = self.db.get_message_by_name(mname)
            except KeyError:
                near = difflib.get_close_matches(mname, [m.name for m in self.db.messages], 3)
                self.err(path, f"the DBC {self.dbc_path.name} has no message {mname!r}"
                               + (f"; similar: {', '.join(near)}" if near else ""))
                return None
            sig = next((s for s in msg.signals if s.name == sname), None)
            if sig is None:
                self.err(path, f"message {mname} of {self.dbc_path.name} has no signal {sname!r}; "
                               f"it has: {', '.join(s.name for s in msg.signals)}")
                return None
            return msg, sig
        holders = self.index.get(name, [])
        if not holders:
            near = difflib.get_close_matches(name, list(self.index), 3)
            self.err(path, f"the DBC {self.dbc_path.name} has no signal {name!r}"
                           + (f"; similar: {', '.join(near)}" if near else ""))
            return None
        if len(holders) > 1:
            self.err(path, f"signal {name!r} is in several messages "
                           f"({', '.join(m.name for m in holders)}); write Message.Signal")
            return None
        msg = holders[0]
        return msg, msg.get_signal_by_name(name)

    def ref(self, path: tuple, role: str, kind: str, entry: Any) -> SignalRef | None:
        equals = None
        if isinstance(entry, dict):
            unknown = set(entry) - {"signal", "equals"}
            if unknown:
                self.err(path, f"unknown key(s) {', '.join(sorted(unknown))}; allowed: signal, equals")
            equals = entry.get("equals")
            if equals is not None and (isinstance(equals, bool) or not isinstance(equals, int)):
                self.err(path + ("equals",), f"equals must be a whole number, got {equals!r}")
                return None
            entry = entry.get("signal")
        found = self.find(path, entry)
        if found is None:
            return None
        msg, sig = found
        unit = (sig.unit or "").strip()
        where = f"signal {msg.name}.{sig.name}"
        if kind == "flag":
            if equals is None and sig.length != 1:
                self.err(path, f"{role} is a flag but {where} has {sig.length} bits; map a 1-bit "
                               "signal or give {signal: ..., equals: VALUE}")
                return None
            if equals is not None and not 0 <= equals < (1 << sig.length):
                self.err(path, f"equals {equals} does not fit the {sig.length} bits of {where}")
                return None
            return SignalRef(role, msg.name, sig.name, msg.frame_id, bool(msg.is_extended_frame),
                             1.0, equals)
        if equals is not None:
            self.err(path, f"'equals' is only for flags; {role} is a {kind}")
            return None
        factors = UNITS[kind]
        if unit not in factors:
            allowed = ", ".join(repr(u) for u in factors)
            self.err(path, f"{role} needs a {kind} signal, but {where} has unit {unit!r}; "
                           f"allowed units: {allowed}")
            return None
        return SignalRef(role, msg.name, sig.name, msg.frame_id, bool(msg.is_extended_frame),
                         factors[unit])

    def expand(self, path: tuple, template: Any, cells: int, per_module: int) -> list[str] | None:
        if isinstance(template, list):
            if len(template) != cells:
                self.err(path, f"lists one signal per cell: {cells} expected, got {len(template)}")
                return None
            return template
        if not isinstance(template, str):
            self.err(path, "expected a template such as 'CellV{n:02d}' or a list of signal names")
            return None
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        except ValueError as exc:
            self.err(path, f"bad template {template!r}: {exc}")
            return None
        bad = [f for f in fields if f not in _TEMPLATE_FIELDS]
        if bad or not fields:
            self.err(path, f"template {template!r} must use {{n}} (cell 1..{cells}), {{i}} (0-based), "
                           "{m} (module) or {k} (cell in module), with a format such as {n:02d}; "
                           f"found {', '.join(map(repr, bad)) or 'none'}")
            return None
        names = []
        for i in range(cells):
            try:
                names.append(template.format(n=i + 1, i=i, m=i // per_module + 1,
                                             k=i % per_module + 1))
            except (ValueError, IndexError, KeyError) as exc:
                self.err(path, f"bad template {template!r}: {exc}")
                return None
        return names


def build_signal_map(settings: dict, base: Path, where: Any) -> SignalMap:
    """Build the map from a bms binding's settings; raises ValidationError with located problems.

    `where(path, message) -> Problem` locates a key below the binding.
    """
    b = _Builder(settings, base, where)
    if not b.load_dbc():
        raise ValidationError(b.problems)
    cells = b.count("cells", 16)
    per_module = b.count("cells_per_module", 4)
    algorithm = settings.get("checksum_algorithm", "sum8")
    if algorithm not in ALGORITHMS:
        b.err(("checksum_algorithm",), f"must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
    raw = settings.get("signals")
    if not isinstance(raw, dict):
        b.err(("signals",), "signals maps labctl roles to DBC signals; roles: "
                            + ", ".join([*CELL_ROLES, *SCALAR_ROLES]))
        raise ValidationError(b.problems)
    if cells is None or per_module is None:
        raise ValidationError(b.problems)
    smap = SignalMap(b.db, b.dbc_path, cells, per_module,
                     checksum_algorithm=algorithm if algorithm in ALGORITHMS else "sum8")
    for role, entry in raw.items():
        path = ("signals", role)
        if role in SCALAR_ROLES:
            ref = b.ref(path, role, SCALAR_ROLES[role], entry)
            if ref is not None:
                smap.scalar[role] = ref
        elif role in CELL_ROLES:
            names = b.expand(path, entry, cells, per_module)
            if names is None:
                continue
            refs = [b.ref(path, role, CELL_ROLES[role], name) for name in names]
            if all(r is not None for r in refs):
                smap.per_cell[role] = refs  # type: ignore[assignment]
        else:
            b.err(path, f"unknown role {role!r}; allowed: {', '.join([*CELL_ROLES, *SCALAR_ROLES])}")
    for role in REQUIRED_ROLES:
        if role not in raw:
            b.err(("signals",), f"role {role!r} is not mapped; labctl needs it to validate a BMS")
    for key, target, check in (("counters", smap.counters, _counter_ok),
                               ("checksums", smap.checksums, _checksum_ok)):
        names = settings.get(key, []) or []
        if not isinstance(names, list):
            b.err((key,), f"{key} is a list of signal names (one per message)")
            continue
        for j, name in enumerate(names):
            found = b.find((key, j), name)
            if found is None:
                continue
            msg, sig = found
            problem = check(sig)
            if problem:
                b.err((key, j), f"{msg.name}.{sig.name}: {problem}")
            elif msg.name in target:
                b.err((key, j), f"message {msg.name} already has {key[:-1]} {target[msg.name]}")
            else:
                target[msg.name] = sig.name
    if b.problems:
        raise ValidationError(b.problems)
    return smap


def _counter_ok(sig) -> str | None:
    if sig.is_signed or not 2 <= sig.length <= 8:
        return f"a rolling counter must be unsigned, 2 to 8 bits (it has {sig.length})"
    return None


def _checksum_ok(sig) -> str | None:
    if _byte_index(sig) is None:
        return "a checksum must be one whole, byte-aligned byte (8 bits)"
    return None


# ------------------------------------------------------------------------------------------------
# From a station file


_CACHE: dict[tuple, SignalMap] = {}


def signal_map_for_station(station_file: str | Path, role: str = "bms") -> SignalMap:
    """The signal map of the `role` binding of a station file (problems located in that file)."""
    from labctl.yamlio import load_file

    path = Path(station_file)
    key = (str(path.resolve()), path.stat().st_mtime_ns, role)
    if key in _CACHE:
        return _CACHE[key]
    doc = load_file(path)
    binding = (doc.data or {}).get("instruments", {}).get(role)
    if not isinstance(binding, dict):
        raise LabctlError(f"{path}: no '{role}:' instrument")
    prefix = ("instruments", role)
    smap = build_signal_map(binding, path.resolve().parent,
                            lambda p, message: doc.problem(prefix + tuple(p), message))
    _CACHE[key] = smap
    return smap


def signal_map_from_settings(settings: dict, base: Path, label: str = "bms") -> SignalMap:
    """Without a file to point into (a Python caller): problems name the setting only."""
    from labctl.yamlio import format_path

    return build_signal_map(settings, base, lambda p, message: Problem(
        None, None, None, format_path((label, *p)), message))
