"""The station file's map from labctl's BMS roles to a DBC's messages and signals.

```yaml
  bms:
    driver: sim-bms
    dbc: ../fixtures/dbc/labctl-bms.dbc      # relative to the station file
    cells: 16
    signals:
      cell_voltage_v: "CellV{n:02d}"          # a template over the cells (n = 1..cells,
      cell_temperature_c: "CellT{n:02d}"      #   i = n - 1, m = module, k = cell in module)
      pack_current_a: {signal: PackCurrent, scale: -1}   # + = discharge on this bus
      max_cell_voltage_v: BMS_CellStats.MaxCellVoltage   # Message.Signal
      contactor_closed: {signal: MainRelayState, equals: 2}   # a flag from a state value
      ...
    counters: [Status_Counter, BMS_Limits.Counter, ...]   # rolling counters, one per message
    checksums: [Status_Checksum, {signal: VCU_Command.CRC8, algorithm: crc8, polynomial: 0x2F}]
    checksum_algorithm: sum8                  # the default: sum8 | xor8 | crc8 or a mapping
    cycle_times: {BMS_CellTempStats: 200 ms}  # where the DBC has no GenMsgCycleTime
```

Values are converted to labctl's units from the DBC signal's unit (mV -> V, % -> a
fraction 0..1, kPa -> MPa...), then `scale` and `offset` of the mapping apply
(labctl value = unit-converted DBC value x scale + offset). A signal whose unit does not
fit its role, a name the DBC lacks, two roles on one signal, a counter wider than 8 bits
or a checksum that is not one whole byte are reported at their line in the station file,
before anything runs (see `labctl.can.mapping`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labctl.can.checksum import ChecksumSpec, checksum
from labctl.can.roles import (  # noqa: F401  (re-exported: the names other modules import)
    ALL_ROLES,
    CELL_ROLES,
    COMMAND_ROLES,
    FAULT_ROLES,
    REQUIRED_ROLES,
    SCALAR_ROLES,
    UNITS,
)
from labctl.errors import LabctlError, Problem


@dataclass(frozen=True)
class SignalRef:
    """One role value: which signal of which message, and how to read it."""

    role: str
    message: str
    signal: str
    frame_id: int
    extended: bool
    factor: float = 1.0  # DBC physical value * factor = value in labctl's unit
    equals: int | None = None  # a flag that is true when the signal equals this value
    scale: float = 1.0  # the mapping's own sign/scale (e.g. -1: + = discharge on this bus)
    offset: float = 0.0  # ... and offset, in labctl's unit

    def to_labctl(self, x: np.ndarray | float) -> Any:
        if self.equals is not None:
            return np.asarray(np.rint(x) == self.equals)
        return np.asarray(x) * (self.factor * self.scale) + self.offset

    def to_dbc(self, x: float) -> float:
        if self.equals is not None:
            return float(self.equals) if x else 0.0
        return (float(x) - self.offset) / (self.factor * self.scale)


@dataclass
class SignalMap:
    """Roles -> DBC signals, plus the integrity signals and cycle times of each message."""

    db: Any  # cantools Database
    dbc_path: Path
    cells: int
    cells_per_module: int
    scalar: dict[str, SignalRef] = field(default_factory=dict)
    per_cell: dict[str, list[SignalRef]] = field(default_factory=dict)
    counters: dict[str, str] = field(default_factory=dict)  # message -> counter signal
    checksums: dict[str, str] = field(default_factory=dict)  # message -> checksum signal
    checksum_default: ChecksumSpec = field(default_factory=ChecksumSpec)
    checksum_specs: dict[str, ChecksumSpec] = field(default_factory=dict)  # per message
    cycle_times: dict[str, float] = field(default_factory=dict)  # message -> s (station file)

    # -- lookups ---------------------------------------------------------------------------------
    def has(self, role: str) -> bool:
        return role in self.scalar or role in self.per_cell

    def first(self, *roles: str) -> str | None:
        """The first of `roles` that is mapped (for a value a BMS may report one of several ways)."""
        return next((r for r in roles if self.has(r)), None)

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
        """Cycle time: the station file's `cycle_times`, else the DBC's GenMsgCycleTime."""
        if message in self.cycle_times:
            return self.cycle_times[message]
        cycle = self.message(message).cycle_time
        return cycle / 1000.0 if cycle else None

    def period_source(self, message: str) -> str:
        if message in self.cycle_times:
            return "station file cycle_times"
        return "DBC GenMsgCycleTime" if self.message(message).cycle_time else "none"

    def checksum_byte(self, message: str) -> int | None:
        name = self.checksums.get(message)
        if name is None:
            return None
        return byte_index(self.message(message).get_signal_by_name(name))

    def checksum_spec(self, message: str) -> ChecksumSpec:
        return self.checksum_specs.get(message, self.checksum_default)

    @property
    def checksum_algorithm(self) -> str:
        """The default algorithm's name (older callers)."""
        return self.checksum_default.algorithm

    # -- encoding (the simulated BMS and labctl's commands) ------------------------------------------
    def encode(self, message: str, values: dict[str, float], counter: int | None = None,
               fill: dict[str, float] | None = None) -> bytes:
        """Frame data of `message` from DBC-physical signal values; counter and checksum filled in.

        Signals not in `values` take their value from `fill` (else 0)."""
        msg = self.message(message)
        full = dict(fill) if fill else {s.name: 0.0 for s in msg.signals}
        full.update(values)
        cname = self.counters.get(message)
        if cname is not None and counter is not None:
            bits = msg.get_signal_by_name(cname).length
            full[cname] = counter % (1 << bits)
        data = bytearray(msg.encode(full, scaling=True, strict=False, padding=False))
        cs = self.checksums.get(message)
        if cs is not None:
            index = self.checksum_byte(message)
            data[index] = checksum(self.checksum_spec(message), data, index, msg.frame_id)
        return bytes(data)

    def describe(self) -> dict[str, Any]:
        """A JSON-able copy in the station file's form, stored with a run to decode its logs."""
        def ref(r: SignalRef) -> dict:
            d: dict[str, Any] = {"signal": f"{r.message}.{r.signal}"}
            if r.equals is not None:
                d["equals"] = r.equals
            if r.scale != 1.0:
                d["scale"] = r.scale
            if r.offset:
                d["offset"] = r.offset
            return d

        sig: dict[str, Any] = {k: ref(v) for k, v in self.scalar.items()}
        sig.update({k: [ref(r) for r in v] for k, v in self.per_cell.items()})
        sums = []
        for m, s in sorted(self.checksums.items()):
            if m in self.checksum_specs:
                sums.append({"signal": f"{m}.{s}", **self.checksum_specs[m].describe()})
            else:
                sums.append(f"{m}.{s}")
        return {"dbc": self.dbc_path.name, "cells": self.cells,
                "cells_per_module": self.cells_per_module, "signals": sig,
                "counters": [f"{m}.{s}" for m, s in sorted(self.counters.items())],
                "checksums": sums, "checksum_algorithm": self.checksum_default.describe(),
                "cycle_times": dict(sorted(self.cycle_times.items()))}


def byte_index(sig: Any) -> int | None:
    """The frame byte a one-byte, byte-aligned signal occupies (None if it is not one)."""
    if sig.length != 8:
        return None
    if sig.byte_order == "little_endian":
        return sig.start // 8 if sig.start % 8 == 0 else None
    return sig.start // 8 if sig.start % 8 == 7 else None


def build_signal_map(settings: dict, base: Path, where: Any) -> SignalMap:
    """Build the map from a bms binding's settings; raises ValidationError with located problems."""
    from labctl.can.mapping import build

    return build(settings, base, where)


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
