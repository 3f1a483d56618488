"""Settings of the `sim-bms` driver (the parts that are not the CAN signal map).

Numbers are SI (V, A, °C, MPa, s) or text with units ("4.25 V", "500 ms"). Every
protection has `threshold`, `delay`, `recovery` (the level the value must return
past) and `recovery_delay`. Unset protections get defaults from the pack's cell
limits; pressure protections exist only when the pack has a stack pressure.
`current_limits` gives the BMS's allowed charge and discharge currents (the values it
reports as max_charge_current_a / max_discharge_current_a) as tables over temperature and
SoC; without one, the cell's current limits inside its temperature range.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labctl.cells.spec import CellSpec
from labctl.errors import LabctlError
from labctl.units import CURRENT, PRESSURE, TEMPERATURE, TIME, VOLTAGE, UnitError, parse_quantity

TOPOLOGIES = ("centralized", "modular", "master-slave", "distributed")
# Measurement latency from the sensing node to the protecting master (seconds).
DEFAULT_LATENCY_S = {"centralized": 0.0, "modular": 0.01, "master-slave": 0.02, "distributed": 0.03}

# name -> (fault role, direction, unit kind)
PROTECTIONS: dict[str, tuple[str, str, str]] = {
    "over_voltage": ("fault_over_voltage", "over", VOLTAGE),
    "under_voltage": ("fault_under_voltage", "under", VOLTAGE),
    "over_current_charge": ("fault_over_current_charge", "over", CURRENT),
    "over_current_discharge": ("fault_over_current_discharge", "over", CURRENT),
    "over_temperature": ("fault_over_temperature", "over", TEMPERATURE),
    "under_temperature": ("fault_under_temperature", "under", TEMPERATURE),
    "over_pressure": ("fault_pressure", "over", PRESSURE),
    "under_pressure": ("fault_pressure", "under", PRESSURE),
}
_PROT_KEYS = ("threshold", "delay", "recovery", "recovery_delay")
_BAL_KEYS = ("mode", "window", "window_v", "current_a", "start_v", "stop_v", "period_s",
             "efficiency", "enable")
_SOC_KEYS = ("current_gain_error", "current_offset_a", "rest_current_a", "rest_time_s",
             "initial_soc", "period_s", "voltage_std_v")
SOC_METHODS = ("coulomb_ocv", "ekf")
_SENSOR_KEYS = ("open_wire_v", "plausibility_v", "delay", "recovery_delay", "cell_offsets")
_LIMIT_KEYS = ("temperature_c", "soc", "current_a")
_PACK_KEYS = ("cell", "initial_soc", "ambient_c", "stack_pressure_mpa", "spread", "seed")


@dataclass(frozen=True)
class ProtectionConfig:
    name: str
    fault_role: str
    direction: str  # "over": trips at value >= threshold; "under": at value <= threshold
    threshold: float
    delay_s: float
    recovery: float
    recovery_delay_s: float


@dataclass(frozen=True)
class BalancingConfig:
    mode: str = "passive"  # passive | active | off
    window: str = "any"  # top | bottom | any: where in the SoC range balancing may run
    window_v: float | None = None  # top: max cell >= window_v; bottom: min cell <= window_v
    current_a: float = 0.1  # bleed current (passive) or transfer current (active)
    start_v: float = 0.010  # a cell this far above the lowest (passive) / the mean (active) starts
    stop_v: float = 0.005  # ... and stops once within this
    period_s: float = 1.0  # how often the decision is made
    efficiency: float = 0.85  # active: the share of the energy taken that reaches the low cells
    enable: str = "command"  # command (cmd_balancing_enable) | always


@dataclass(frozen=True)
class SocConfig:
    current_gain_error: float = 0.0
    current_offset_a: float = 0.0
    rest_current_a: float = 0.05
    rest_time_s: float = 600.0
    initial_soc: float | None = None  # stored SoC at power-up (None: from the OCV)
    period_s: float = 0.1  # ekf: how often the filter runs (current averaged in between)
    voltage_std_v: float = 2e-3  # ekf: cell-voltage measurement noise it assumes


@dataclass(frozen=True)
class SensorConfig:
    open_wire_v: float = 1.0  # a reading below this is an open sense wire
    plausibility_v: float = 0.1  # |pack voltage - sum of cells| above this is a sensor fault
    delay_s: float = 0.5
    recovery_delay_s: float = 1.0  # the flag stays this long after the condition went away
    # a miscalibrated measurement channel: (cell number, offset V) added to what the BMS reads
    cell_offsets_v: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class CurrentLimitTable:
    """The allowed current (A, a magnitude) over temperature (rows) and SoC (columns).

    Bilinear interpolation inside the table, the edge values outside it (a table that must
    forbid current beyond its range ends in rows of 0)."""

    temperature_c: tuple[float, ...]
    soc: tuple[float, ...]
    current_a: tuple[tuple[float, ...], ...]

    def __call__(self, temperature_c: float, soc: float) -> float:
        # plain Python: called for every status frame, where numpy's per-call cost dominates
        i, wi = _bracket(self.temperature_c, temperature_c)
        j, wj = _bracket(self.soc, soc)
        rows = self.current_a

        def at(r: int) -> float:
            row = rows[r]
            return row[j] if wj == 0.0 else row[j] + wj * (row[j + 1] - row[j])

        return at(i) if wi == 0.0 else at(i) + wi * (at(i + 1) - at(i))


def _bracket(xs: tuple[float, ...], x: float) -> tuple[int, float]:
    """(index, weight): x lies at xs[index] + weight * (xs[index + 1] - xs[index]); edges held."""
    if x <= xs[0] or len(xs) == 1:
        return 0, 0.0
    if x >= xs[-1]:
        return len(xs) - 1, 0.0
    k = bisect.bisect_right(xs, x) - 1
    return k, (x - xs[k]) / (xs[k + 1] - xs[k])


@dataclass(frozen=True)
class PackConfig:
    cell: CellSpec
    initial_soc: float = 0.5
    ambient_c: float = 25.0
    stack_pressure_mpa: float | None = None
    capacity_spread: float = 0.0  # relative standard deviation
    resistance_spread: float = 0.0
    soc_spread: float = 0.0  # absolute standard deviation of SoC
    seed: int = 0


@dataclass(frozen=True)
class BmsConfig:
    pack: PackConfig
    cells: int
    cells_per_module: int
    topology: str = "centralized"
    latency_s: float = 0.0
    tick_s: float = 0.01
    jitter_s: float = 0.0
    command_timeout_s: float = 0.5
    slave_timeout_s: float = 0.5
    protections: tuple[ProtectionConfig, ...] = ()
    balancing: BalancingConfig = field(default_factory=BalancingConfig)
    soc: SocConfig = field(default_factory=SocConfig)
    soc_method: str = "coulomb_ocv"
    sensor: SensorConfig = field(default_factory=SensorConfig)
    charge_limit: CurrentLimitTable | None = None
    discharge_limit: CurrentLimitTable | None = None

    def protection(self, name: str) -> ProtectionConfig | None:
        return next((p for p in self.protections if p.name == name), None)


def _cell_offsets(value: Any, cells: int, where: str) -> tuple[tuple[int, float], ...]:
    """{3: 8 mV, ...}: cell number (1..cells) -> offset of the BMS's reading of that cell."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise LabctlError(f"{where}: a mapping of cell number to offset, e.g. {{3: 8 mV}}")
    out = []
    for cell, offset in value.items():
        if isinstance(cell, str) and cell.isascii() and cell.isdigit():  # station keys are text
            cell = int(cell)
        if isinstance(cell, bool) or not isinstance(cell, int) or not 1 <= cell <= cells:
            raise LabctlError(f"{where}: cell {cell!r} is not a cell number from 1 to {cells}")
        out.append((cell, _q(offset, VOLTAGE, f"{where}.{cell}")))
    return tuple(out)


def _q(value: Any, kind: str, where: str) -> float:
    if isinstance(value, bool):
        raise LabctlError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    try:
        return parse_quantity(str(value), kind, allow_bare=True).value
    except UnitError as exc:
        raise LabctlError(f"{where}: {exc}") from None


def _mapping(value: Any, allowed: tuple[str, ...], where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise LabctlError(f"{where}: expected a mapping with keys {', '.join(allowed)}")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise LabctlError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    return value


def _default_protections(cell: CellSpec, pressure: float | None) -> dict[str, dict]:
    lim = cell.limits
    out = {
        "over_voltage": dict(threshold=lim.max_voltage_v + 0.05, delay=1.0,
                             recovery=lim.max_voltage_v - 0.05, recovery_delay=1.0),
        "under_voltage": dict(threshold=lim.min_voltage_v - 0.05, delay=1.0,
                              recovery=lim.min_voltage_v + 0.1, recovery_delay=1.0),
        "over_current_charge": dict(threshold=2 * lim.max_charge_current_a, delay=0.5,
                                    recovery=lim.max_charge_current_a, recovery_delay=1.0),
        "over_current_discharge": dict(threshold=2 * lim.max_discharge_current_a, delay=0.5,
                                       recovery=lim.max_discharge_current_a, recovery_delay=1.0),
        "over_temperature": dict(threshold=lim.max_temperature_c, delay=1.0,
                                 recovery=lim.max_temperature_c - 5, recovery_delay=2.0),
        "under_temperature": dict(threshold=lim.min_temperature_c, delay=1.0,
                                  recovery=lim.min_temperature_c + 5, recovery_delay=2.0),
    }
    if pressure is not None:
        out["over_pressure"] = dict(threshold=2 * pressure, delay=1.0, recovery=1.8 * pressure,
                                    recovery_delay=1.0)
        out["under_pressure"] = dict(threshold=0.5 * pressure, delay=1.0, recovery=0.6 * pressure,
                                     recovery_delay=1.0)
    return out


def _default_limit(cell: CellSpec, current_a: float) -> CurrentLimitTable:
    """Flat at the cell's limit inside its temperature range, 0 one degree beyond it."""
    lo, hi = cell.limits.min_temperature_c, cell.limits.max_temperature_c
    return CurrentLimitTable((lo - 1.0, lo, hi, hi + 1.0), (0.0, 1.0),
                             ((0.0, 0.0), (current_a, current_a), (current_a, current_a), (0.0, 0.0)))


def _limit_table(raw: Any, where: str) -> CurrentLimitTable:
    t = _mapping(raw, _LIMIT_KEYS, where)
    missing = [k for k in _LIMIT_KEYS if k not in t]
    if missing:
        raise LabctlError(f"{where}: needs {', '.join(missing)} (a table: temperature_c rows, "
                          "soc columns, current_a[row][column])")
    try:
        temps = tuple(_q(x, TEMPERATURE, where + ".temperature_c") for x in t["temperature_c"])
        socs = tuple(_q(x, "ratio", where + ".soc") for x in t["soc"])
        table = tuple(tuple(_q(x, CURRENT, where + ".current_a") for x in row)
                      for row in t["current_a"])
    except TypeError:
        raise LabctlError(f"{where}: temperature_c and soc are lists, current_a a list of rows") from None
    if (not temps or not socs or any(b <= a for a, b in zip(temps, temps[1:], strict=False))
            or any(b <= a for a, b in zip(socs, socs[1:], strict=False))):
        raise LabctlError(f"{where}: temperature_c and soc must be increasing, non-empty lists")
    if len(table) != len(temps) or any(len(row) != len(socs) for row in table):
        raise LabctlError(f"{where}: current_a needs {len(temps)} rows (one per temperature) of "
                          f"{len(socs)} values (one per SoC)")
    if any(not np.isfinite(x) or x < 0 for row in table for x in row):
        raise LabctlError(f"{where}: currents are magnitudes, finite and >= 0 A")
    return CurrentLimitTable(temps, socs, table)


def parse_config(s: dict, cell: CellSpec, cells: int, cells_per_module: int, label: str = "bms"
                 ) -> BmsConfig:
    """BmsConfig from the driver settings; LabctlError naming the setting when wrong."""
    pk = _mapping(s.get("pack"), _PACK_KEYS, f"{label}.pack")
    spread = _mapping(pk.get("spread"), ("capacity", "resistance", "soc"), f"{label}.pack.spread")
    pressure = pk.get("stack_pressure_mpa")
    pack = PackConfig(
        cell=cell,
        initial_soc=_q(pk.get("initial_soc", cell.model.initial_soc if cell.model else 0.5),
                       "ratio", f"{label}.pack.initial_soc"),
        ambient_c=_q(pk.get("ambient_c", 25.0), TEMPERATURE, f"{label}.pack.ambient_c"),
        stack_pressure_mpa=None if pressure is None else _q(pressure, PRESSURE,
                                                            f"{label}.pack.stack_pressure_mpa"),
        capacity_spread=float(spread.get("capacity", 0.0)),
        resistance_spread=float(spread.get("resistance", 0.0)),
        soc_spread=float(spread.get("soc", 0.0)),
        seed=int(pk.get("seed", 0)),
    )
    if not 0.0 <= pack.initial_soc <= 1.0:
        raise LabctlError(f"{label}.pack.initial_soc must be between 0 and 1 (or 0..100 %)")
    topology = s.get("topology", "centralized")
    if topology not in TOPOLOGIES:
        raise LabctlError(f"{label}.topology must be one of {', '.join(TOPOLOGIES)}, got {topology!r}")
    raw_prot = _mapping(s.get("protections"), tuple(PROTECTIONS), f"{label}.protections")
    merged = _default_protections(cell, pack.stack_pressure_mpa)
    for name, value in raw_prot.items():
        merged[name] = {**merged.get(name, {}), **_mapping(value, _PROT_KEYS,
                                                           f"{label}.protections.{name}")}
    prots = []
    for name, p in merged.items():
        role, direction, kind = PROTECTIONS[name]
        where = f"{label}.protections.{name}"
        missing = [k for k in ("threshold", "recovery") if k not in p]
        if missing:
            raise LabctlError(f"{where}: needs {', '.join(missing)}")
        prot = ProtectionConfig(name, role, direction, _q(p["threshold"], kind, where + ".threshold"),
                                _q(p.get("delay", 1.0), TIME, where + ".delay"),
                                _q(p["recovery"], kind, where + ".recovery"),
                                _q(p.get("recovery_delay", 1.0), TIME, where + ".recovery_delay"))
        bad = prot.recovery > prot.threshold if direction == "over" else prot.recovery < prot.threshold
        if bad or prot.delay_s < 0 or prot.recovery_delay_s < 0:
            raise LabctlError(f"{where}: recovery must be on the safe side of the threshold and "
                              "delays >= 0")
        prots.append(prot)
    b = _mapping(s.get("balancing"), _BAL_KEYS, f"{label}.balancing")
    bal = BalancingConfig(
        mode=str(b.get("mode", "passive")), window=str(b.get("window", "any")),
        window_v=None if b.get("window_v") is None else _q(b["window_v"], VOLTAGE, "window_v"),
        current_a=_q(b.get("current_a", 0.1), CURRENT, f"{label}.balancing.current_a"),
        start_v=_q(b.get("start_v", 0.010), VOLTAGE, f"{label}.balancing.start_v"),
        stop_v=_q(b.get("stop_v", 0.005), VOLTAGE, f"{label}.balancing.stop_v"),
        period_s=_q(b.get("period_s", 1.0), TIME, f"{label}.balancing.period_s"),
        efficiency=float(b.get("efficiency", 0.85)), enable=str(b.get("enable", "command")))
    if bal.mode not in ("passive", "active", "off") or bal.window not in ("top", "bottom", "any") \
            or bal.enable not in ("command", "always"):
        raise LabctlError(f"{label}.balancing: mode passive|active|off, window top|bottom|any, "
                          "enable command|always")
    if bal.stop_v > bal.start_v:
        raise LabctlError(f"{label}.balancing: stop_v must not exceed start_v")
    so = _mapping(s.get("soc"), _SOC_KEYS, f"{label}.soc")
    soc = SocConfig(float(so.get("current_gain_error", 0.0)),
                    _q(so.get("current_offset_a", 0.0), CURRENT, f"{label}.soc.current_offset_a"),
                    _q(so.get("rest_current_a", 0.05), CURRENT, f"{label}.soc.rest_current_a"),
                    _q(so.get("rest_time_s", 600.0), TIME, f"{label}.soc.rest_time_s"),
                    None if so.get("initial_soc") is None else
                    _q(so["initial_soc"], "ratio", f"{label}.soc.initial_soc"),
                    _q(so.get("period_s", 0.1), TIME, f"{label}.soc.period_s"),
                    _q(so.get("voltage_std_v", 2e-3), VOLTAGE, f"{label}.soc.voltage_std_v"))
    method = str(s.get("soc_method", "coulomb_ocv"))
    if method not in SOC_METHODS:
        raise LabctlError(f"{label}.soc_method must be one of {', '.join(SOC_METHODS)}, got {method!r}")
    if soc.initial_soc is not None and not 0.0 <= soc.initial_soc <= 1.0:
        raise LabctlError(f"{label}.soc.initial_soc must be between 0 and 1 (or 0..100 %)")
    if soc.period_s <= 0 or soc.voltage_std_v <= 0:
        raise LabctlError(f"{label}.soc.period_s and voltage_std_v must be > 0")
    se = _mapping(s.get("sensor"), _SENSOR_KEYS, f"{label}.sensor")
    sensor = SensorConfig(_q(se.get("open_wire_v", 1.0), VOLTAGE, f"{label}.sensor.open_wire_v"),
                          _q(se.get("plausibility_v", 0.1), VOLTAGE,
                             f"{label}.sensor.plausibility_v"),
                          _q(se.get("delay", 0.5), TIME, f"{label}.sensor.delay"),
                          _q(se.get("recovery_delay", 1.0), TIME, f"{label}.sensor.recovery_delay"),
                          _cell_offsets(se.get("cell_offsets"), cells, f"{label}.sensor.cell_offsets"))
    lim = _mapping(s.get("current_limits"), ("charge", "discharge"), f"{label}.current_limits")
    charge = (_limit_table(lim["charge"], f"{label}.current_limits.charge") if "charge" in lim
              else _default_limit(cell, cell.limits.max_charge_current_a))
    discharge = (_limit_table(lim["discharge"], f"{label}.current_limits.discharge")
                 if "discharge" in lim else _default_limit(cell, cell.limits.max_discharge_current_a))
    latency = s.get("latency_s")
    tick = _q(s.get("tick_s", 0.01), TIME, f"{label}.tick_s")
    if not 0.0005 <= tick <= 0.1:
        raise LabctlError(f"{label}.tick_s must be between 0.5 ms and 100 ms")
    return BmsConfig(
        pack=pack, cells=cells, cells_per_module=cells_per_module, topology=topology,
        latency_s=DEFAULT_LATENCY_S[topology] if latency is None else _q(latency, TIME, "latency_s"),
        tick_s=tick, jitter_s=_q(s.get("jitter_s", 0.0), TIME, f"{label}.jitter_s"),
        command_timeout_s=_q(s.get("command_timeout_s", 0.5), TIME, f"{label}.command_timeout_s"),
        slave_timeout_s=_q(s.get("slave_timeout_s", 0.5), TIME, f"{label}.slave_timeout_s"),
        protections=tuple(prots), balancing=bal, soc=soc, soc_method=method, sensor=sensor,
        charge_limit=charge, discharge_limit=discharge)
