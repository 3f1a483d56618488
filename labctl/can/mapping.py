"""Building and checking a station file's signal map (see `labctl.can.signals`).

Every problem is collected with its place in the station file, so one `validate`
shows them all: unknown roles and signals (with similar names), units that do not fit,
flags that are not one bit (or lack `equals`), a `scale` of 0, two roles on one signal
(the simulator could write only one of them; a BMS with one over-current flag for both
directions maps it as `fault_over_current`), counters and checksums that cannot be
what they claim, checksum parameters out of range and cycle times of unknown messages.
"""

from __future__ import annotations

import difflib
import math
import string
from pathlib import Path
from typing import Any

from labctl.can.checksum import ALGORITHMS, ChecksumSpec
from labctl.can.roles import ALL_ROLES, CELL_ROLES, REQUIRED_ROLES, SCALAR_ROLES, UNITS
from labctl.can.signals import SignalMap, SignalRef, byte_index
from labctl.errors import LabctlError, Problem, ValidationError

_TEMPLATE_FIELDS = {"n", "i", "m", "k"}
_REF_KEYS = ("signal", "equals", "scale", "offset")
_CHECKSUM_KEYS = ("algorithm", "polynomial", "init", "final_xor", "include_id")


class _Builder:
    def __init__(self, settings: dict, base: Path, where: Any):
        self.s = settings
        self.base = base
        self.where = where  # (path tuple, message) -> Problem
        self.problems: list[Problem] = []
        self.db: Any = None
        self.index: dict[str, list[Any]] = {}  # signal name -> messages holding it

    def err(self, path: tuple, message: str) -> None:
        self.problems.append(self.where(path, message))

    def load_dbc(self) -> bool:
        from labctl.can.dbc import load_dbc

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
            self.db = load_dbc(path, label=repr(raw))
        except LabctlError as exc:
            self.err(("dbc",), str(exc))
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

    def find(self, path: tuple, name: Any, many: bool = False) -> list[tuple[Any, Any]] | None:
        """'Signal' or 'Message.Signal' -> [(message, signal)], or a located problem.

        A bare name held by several messages is an error unless `many` (then: all of them)."""
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
            return [(msg, sig)]
        holders = self.index.get(name, [])
        if not holders:
            near = difflib.get_close_matches(name, list(self.index), 3)
            self.err(path, f"the DBC {self.dbc_path.name} has no signal {name!r}"
                           + (f"; similar: {', '.join(near)}" if near else ""))
            return None
        if len(holders) > 1 and not many:
            self.err(path, f"signal {name!r} is in several messages "
                           f"({', '.join(m.name for m in holders)}); write Message.Signal")
            return None
        return [(m, m.get_signal_by_name(name)) for m in holders]

    def number(self, path: tuple, value: Any, what: str) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self.err(path, f"{what} must be a finite number, got {value!r}")
            return None
        return float(value)

    def ref(self, path: tuple, role: str, kind: str, entry: Any) -> SignalRef | None:
        equals = None
        scale, offset = 1.0, 0.0
        if isinstance(entry, dict):
            unknown = set(entry) - set(_REF_KEYS)
            if unknown:
                self.err(path, f"unknown key(s) {', '.join(sorted(unknown))}; allowed: "
                               f"{', '.join(_REF_KEYS)}")
            equals = entry.get("equals")
            if equals is not None and (isinstance(equals, bool) or not isinstance(equals, int)):
                self.err(path + ("equals",), f"equals must be a whole number, got {equals!r}")
                return None
            if "scale" in entry:
                scale = self.number(path + ("scale",), entry["scale"], "scale")
                if scale == 0.0:
                    self.err(path + ("scale",), "scale must not be 0 (use -1 to flip a sign)")
                    scale = None
            if "offset" in entry:
                offset = self.number(path + ("offset",), entry["offset"], "offset")
            if scale is None or offset is None:
                return None
            if kind == "flag" and ("scale" in entry or "offset" in entry):
                self.err(path, f"{role} is a flag: scale and offset are for values")
                return None
            entry = entry.get("signal")
        found = self.find(path, entry)
        if found is None:
            return None
        msg, sig = found[0]
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
                         factors[unit], None, scale, offset)

    def expand(self, path: tuple, template: Any, cells: int, per_module: int) -> list | None:
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

    def checksum_spec(self, path: tuple, raw: Any, base: ChecksumSpec | None) -> ChecksumSpec | None:
        """`sum8` or {algorithm, polynomial, init, final_xor, include_id} -> a ChecksumSpec."""
        if isinstance(raw, str):
            raw = {"algorithm": raw}
        if not isinstance(raw, dict):
            self.err(path, f"a checksum algorithm is one of {', '.join(ALGORITHMS)} or a mapping "
                           f"with {', '.join(_CHECKSUM_KEYS)}")
            return None
        unknown = sorted(set(raw) - set(_CHECKSUM_KEYS) - {"signal"})
        if unknown:
            self.err(path, f"unknown key(s) {', '.join(unknown)}; allowed: "
                           f"{', '.join(('signal', *_CHECKSUM_KEYS))}")
            return None
        algorithm = raw.get("algorithm", base.algorithm if base else "sum8")
        if algorithm not in ALGORITHMS:
            self.err(path + ("algorithm",), f"must be one of {', '.join(ALGORITHMS)}, got "
                                            f"{algorithm!r}")
            return None
        inherit = base if base is not None and base.algorithm == algorithm else ChecksumSpec(algorithm)
        values = {}
        for key in ("polynomial", "init", "final_xor"):
            v = raw.get(key, getattr(inherit, key))
            if isinstance(v, str):
                try:
                    v = int(v, 0)
                except ValueError:
                    pass
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 0xFF:
                self.err(path + (key,), f"{key} must be a byte, 0 to 255 (0x00 to 0xFF), got {v!r}")
                return None
            values[key] = v
        if algorithm != "crc8" and any(k in raw for k in ("polynomial", "init", "final_xor")):
            self.err(path, f"polynomial, init and final_xor are CRC parameters; {algorithm} has none")
            return None
        include = raw.get("include_id", inherit.include_id)
        if include is not None and not isinstance(include, bool):
            self.err(path + ("include_id",), f"include_id is true or false, got {include!r}")
            return None
        return ChecksumSpec(algorithm, include_id=include, **values)


def build(settings: dict, base: Path, where: Any) -> SignalMap:
    """Build the map from a bms binding's settings; raises ValidationError with located problems.

    `where(path, message) -> Problem` locates a key below the binding.
    """
    b = _Builder(settings, base, where)
    if not b.load_dbc():
        raise ValidationError(b.problems)
    cells = b.count("cells", 16)
    per_module = b.count("cells_per_module", 4)
    default = b.checksum_spec(("checksum_algorithm",), settings.get("checksum_algorithm", "sum8"),
                              None)
    raw = settings.get("signals")
    if not isinstance(raw, dict):
        b.err(("signals",), "signals maps labctl roles to DBC signals; roles: " + ", ".join(ALL_ROLES))
        raise ValidationError(b.problems)
    if cells is None or per_module is None:
        raise ValidationError(b.problems)
    smap = SignalMap(b.db, b.dbc_path, cells, per_module, checksum_default=default or ChecksumSpec())
    users: dict[tuple[str, str], list[tuple[str, tuple]]] = {}  # (message, signal) -> roles
    for role, entry in raw.items():
        path = ("signals", role)
        if role in SCALAR_ROLES:
            ref = b.ref(path, role, SCALAR_ROLES[role], entry)
            if ref is not None:
                smap.scalar[role] = ref
                users.setdefault((ref.message, ref.signal), []).append((role, path))
        elif role in CELL_ROLES:
            names = b.expand(path, entry, cells, per_module)
            if names is None:
                continue
            refs = [b.ref(path, role, CELL_ROLES[role], name) for name in names]
            if all(r is not None for r in refs):
                smap.per_cell[role] = refs  # type: ignore[assignment]
                for i, r in enumerate(refs):
                    users.setdefault((r.message, r.signal), []).append((f"{role}[cell {i + 1}]", path))
        else:
            near = difflib.get_close_matches(str(role), ALL_ROLES, 3)
            b.err(path, f"unknown role {role!r}"
                        + (f"; similar: {', '.join(near)}" if near else "")
                        + f"; allowed: {', '.join(ALL_ROLES)}")
    _shared_signals(b, users)
    for role in REQUIRED_ROLES:
        if role not in raw:
            b.err(("signals",), f"role {role!r} is not mapped; labctl needs it to validate a BMS")
    _integrity(b, smap, settings, default)
    _cycle_times(b, smap, settings.get("cycle_times"))
    if b.problems:
        raise ValidationError(b.problems)
    return smap


def _shared_signals(b: _Builder, users: dict) -> None:
    """Two roles on one signal: refused (a simulator could write only one; readers would guess)."""
    for (mname, sname), roles in users.items():
        if len(roles) < 2:
            continue
        names = [r for r, _ in roles]
        hint = ""
        if {"fault_over_current_charge", "fault_over_current_discharge"} <= set(names):
            hint = ("; a BMS with one over-current flag for both directions maps it once, as "
                    "fault_over_current (the protection steps of both directions then watch it)")
        b.err(roles[-1][1], f"{', '.join(names)} are all mapped to {mname}.{sname}; one signal "
                            f"carries one role{hint}")


def _integrity(b: _Builder, smap: SignalMap, settings: dict, default: ChecksumSpec | None) -> None:
    for key in ("counters", "checksums"):
        names = settings.get(key, []) or []
        if not isinstance(names, list):
            b.err((key,), f"{key} is a list of signal names ('Signal' held by every message that "
                          "has it, or 'Message.Signal')")
            continue
        shared: set[str] = set()  # messages given by a name many messages hold
        for j, entry in enumerate(names):
            spec = None
            name = entry
            if key == "checksums" and isinstance(entry, dict):
                name = entry.get("signal")
                spec = b.checksum_spec((key, j), entry, default)
                if spec is None:
                    continue
            found = b.find((key, j), name, many=True)
            for msg, sig in found or ():
                target = smap.counters if key == "counters" else smap.checksums
                problem = _counter_ok(sig) if key == "counters" else _checksum_ok(sig)
                # `[CRC8, {signal: VCU.CRC8, polynomial: 0x2F}]`: the one message's own entry
                # refines what the shared name gave it
                refines = (msg.name in shared and len(found) == 1
                           and target.get(msg.name) == sig.name)
                if problem:
                    b.err((key, j), f"{msg.name}.{sig.name}: {problem}")
                elif msg.name in target and not refines:
                    b.err((key, j), f"message {msg.name} already has {key[:-1]} {target[msg.name]}")
                else:
                    target[msg.name] = sig.name
                    if len(found) > 1:
                        shared.add(msg.name)
                    else:
                        shared.discard(msg.name)
                    if spec is not None:
                        smap.checksum_specs[msg.name] = spec


def _cycle_times(b: _Builder, smap: SignalMap, raw: Any) -> None:
    from labctl.units import TIME, UnitError, parse_quantity

    if raw is None:
        return
    if not isinstance(raw, dict):
        b.err(("cycle_times",), "cycle_times maps a message name to its cycle time "
                                "({BMS_Status: 100 ms})")
        return
    names = [m.name for m in b.db.messages]
    for name, value in raw.items():
        path = ("cycle_times", name)
        if name not in names:
            near = difflib.get_close_matches(str(name), names, 3)
            b.err(path, f"the DBC {b.dbc_path.name} has no message {name!r}"
                        + (f"; similar: {', '.join(near)}" if near else ""))
            continue
        try:
            if isinstance(value, bool):
                raise UnitError("not a time")
            seconds = float(value) if isinstance(value, int | float) else \
                parse_quantity(str(value), TIME, allow_bare=True).value
        except (UnitError, ValueError):
            b.err(path, f"a cycle time such as '100 ms' (a bare number is seconds), got {value!r}")
            continue
        if not 0.0005 <= seconds <= 60.0 or not math.isfinite(seconds):
            b.err(path, f"cycle time {seconds:g} s is outside 0.5 ms .. 60 s")
            continue
        smap.cycle_times[name] = seconds


def _counter_ok(sig: Any) -> str | None:
    if sig.is_signed or not 2 <= sig.length <= 8:
        return f"a rolling counter must be unsigned, 2 to 8 bits (it has {sig.length})"
    return None


def _checksum_ok(sig: Any) -> str | None:
    if byte_index(sig) is None:
        return "a checksum must be one whole, byte-aligned byte (8 bits)"
    return None
