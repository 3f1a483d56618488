"""Units parsing shared by procedures, cell files and station files.

Text like "3.65 V", "500 mA", "C/20", "30 minutes" or "45 °C" becomes a number in
SI units (seconds, volts, amperes, watts, ampere-hours, watt-hours, °C) plus its
kind. C-rates stay C-rates (multiples of the capacity) until a caller that knows
the cell turns them into amperes with `ParsedQuantity.to_si(capacity_ah)`.

Errors are `UnitError`s (a `ValidationError`) carrying `offset`, the 0-based
position of the offending token in the text, so that a caller who knows where the
text stood in a file can point at the exact column.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from labctl.errors import Problem, ValidationError

# Kinds of quantity. "c_rate" values are in C (multiples of the capacity per hour).
VOLTAGE = "voltage"
CURRENT = "current"
C_RATE = "c_rate"
POWER = "power"
TIME = "time"
CHARGE = "charge"
ENERGY = "energy"
TEMPERATURE = "temperature"
RATIO = "ratio"  # dimensionless; "%" divides by 100
NUMBER = "number"  # a bare number, no unit
FREQUENCY = "frequency"  # Hz
PRESSURE = "pressure"  # MPa (labctl's pressure unit: pressure_mpa)
RESISTANCE = "resistance"  # ohm
LENGTH = "length"  # m
TEMPERATURE_RATE = "temperature_rate"  # °C/min (as chamber ramp rates are quoted)

# Unit spelling (lower case, spaces removed) -> (kind, factor to SI, canonical spelling).
_UNITS: dict[str, tuple[str, float, str]] = {}
# Every spelling as written here (for "did you mean" on an unknown unit).
_SPELLINGS: list[str] = []


def _add(kind: str, factor: float, canonical: str, *spellings: str) -> None:
    for s in (canonical, *spellings):
        _UNITS[s.lower().replace(" ", "")] = (kind, factor, canonical)
        _SPELLINGS.append(s)


_add(VOLTAGE, 1.0, "V", "volt", "volts")
_add(VOLTAGE, 1e-3, "mV", "millivolt", "millivolts")
_add(CURRENT, 1.0, "A", "amp", "amps", "ampere", "amperes")
_add(CURRENT, 1e-3, "mA", "milliamp", "milliamps")
_add(C_RATE, 1.0, "C")
_add(POWER, 1.0, "W", "watt", "watts")
_add(POWER, 1e-3, "mW")
_add(POWER, 1e3, "kW")
_add(TIME, 1.0, "s", "sec", "secs", "second", "seconds")
_add(TIME, 1e-3, "ms")
_add(TIME, 60.0, "min", "mins", "minute", "minutes")
_add(TIME, 3600.0, "h", "hr", "hrs", "hour", "hours")
_add(TIME, 86400.0, "day", "days")
_add(CHARGE, 1.0, "Ah")
_add(CHARGE, 1e-3, "mAh")
_add(ENERGY, 1.0, "Wh")
_add(ENERGY, 1e-3, "mWh")
_add(ENERGY, 1e3, "kWh")
_add(TEMPERATURE, 1.0, "°C", "degC", "deg C", "℃", "celsius")
_add(RATIO, 0.01, "%")
_add(FREQUENCY, 1.0, "Hz", "hertz")
_add(FREQUENCY, 1e-3, "mHz")
_add(FREQUENCY, 1e3, "kHz")
_UNITS["megahz"] = (FREQUENCY, 1e6, "MHz")
_SPELLINGS.append("MHz")
# Units whose lowercase spellings collide: the exact spelling picks the entry.
_CASE_SENSITIVE: dict[str, dict[str, str]] = {"mhz": {"MHz": "megahz", "mHz": "mhz"}}
_add(PRESSURE, 1.0, "MPa")
_add(PRESSURE, 1e-3, "kPa")
_add(PRESSURE, 1e-6, "Pa")
_add(PRESSURE, 1e3, "GPa")
_add(PRESSURE, 0.1, "bar")
_add(PRESSURE, 6.894757e-3, "psi")
_add(RESISTANCE, 1.0, "ohm", "ohms", "Ω")
_add(RESISTANCE, 1e-3, "mohm", "mΩ")
_add(RESISTANCE, 1e3, "kohm", "kΩ")
_add(LENGTH, 1.0, "m")
_add(LENGTH, 1e-2, "cm")
_add(LENGTH, 1e-3, "mm")
_add(LENGTH, 1e-6, "µm", "um", "micron", "microns")
_add(TEMPERATURE_RATE, 1.0, "°C/min", "degC/min", "K/min", "C/min")
_add(TEMPERATURE_RATE, 60.0, "°C/s", "degC/s", "K/s")
_add(TEMPERATURE_RATE, 1.0 / 60.0, "°C/h", "degC/h", "K/h")

# What to list when a unit is wrong, per kind.
ALLOWED_TEXT: dict[str, str] = {
    VOLTAGE: "V, mV",
    CURRENT: "A, mA, C-rate like 1C or C/20",
    C_RATE: "C-rate like 1C, 0.5C or C/20",
    POWER: "W, mW, kW",
    TIME: "s, ms, min, h, day (also sec, second(s), minute(s), hr, hour(s), days)",
    CHARGE: "Ah, mAh",
    ENERGY: "Wh, mWh, kWh",
    TEMPERATURE: "°C or degC",
    RATIO: "a plain number or a percentage like 95 %",
    NUMBER: "a plain number",
    FREQUENCY: "Hz, mHz, kHz, MHz",
    PRESSURE: "MPa, kPa, Pa, GPa, bar, psi",
    RESISTANCE: "ohm, mohm, kohm",
    LENGTH: "m, cm, mm, µm",
    TEMPERATURE_RATE: "°C/min, °C/s, °C/h (also K/min, degC/min)",
}

KIND_NAMES: dict[str, str] = {
    VOLTAGE: "a voltage",
    CURRENT: "a current",
    C_RATE: "a C-rate",
    POWER: "a power",
    TIME: "a time",
    CHARGE: "a charge",
    ENERGY: "an energy",
    TEMPERATURE: "a temperature",
    RATIO: "a ratio",
    NUMBER: "a number",
    FREQUENCY: "a frequency",
    PRESSURE: "a pressure",
    RESISTANCE: "a resistance",
    LENGTH: "a length",
    TEMPERATURE_RATE: "a temperature rate",
}

# ASCII digits only: `\d` (and float()) also take Arabic-Indic, full-width and other
# Unicode digits, which look like other numbers (or like nothing) in an editor.
_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_NUMBER_RE = re.compile(_NUMBER)
_C_OVER_RE = re.compile(r"[cC]\s*/\s*(" + _NUMBER + r")\s*$")
_NONFINITE_RE = re.compile(r"[+-]?(nan|inf|infinity)\b", re.IGNORECASE)


# Symbols whose first letter is an SI prefix that changes meaning with its case
# (m = milli, M = mega): "1 MA" is a megaampere, never 1 mA. These must be written with
# the prefix's case as here; the rest of a unit is read case-insensitively.
_PREFIX_CASE = {s.lower(): s for s in ("mV", "mA", "mW", "mAh", "mWh", "mHz", "MHz", "MPa",
                                       "mohm", "mΩ", "ms", "mm")}
_PREFIX_NAMES = {"m": "milli", "M": "mega"}


def _prefix_case_problem(unit_text: str) -> str | None:
    """Why `unit_text` (spaces removed) must not be read as the unit it matches
    case-insensitively: its SI prefix letter has the other case. None when fine."""
    want = _PREFIX_CASE.get(unit_text.lower())
    if want is None or unit_text[0] == want[0]:
        return None
    written = _PREFIX_NAMES.get(unit_text[0], unit_text[0])
    meant = _PREFIX_NAMES.get(want[0], want[0])
    return (f"unit {unit_text!r}: the prefix '{unit_text[0]}' means {written}, and no "
            f"{written} unit is known here; did you mean {want!r} ({meant})? Units are "
            "case-sensitive where SI prefixes differ (m = milli, M = mega)")


def _unicode_digits(text: str) -> int | None:
    """Offset of the first non-ASCII digit in `text` (e.g. '٣' or '３'), or None."""
    for i, ch in enumerate(text):
        if ch.isdigit() and not ("0" <= ch <= "9"):
            return i
    return None


class UnitError(ValidationError):
    """Text that is not a quantity of the expected kind; `offset` is 0-based in the text."""

    def __init__(self, reason: str, offset: int = 0):
        self.reason = reason
        self.offset = offset
        super().__init__([Problem(None, None, offset + 1, "", reason)])


@dataclass(frozen=True)
class ParsedQuantity:
    """A number with its kind, in SI (C-rates in C)."""

    value: float
    kind: str
    unit: str  # canonical spelling of the unit as written ("" for a bare number)
    text: str  # the text it came from, stripped

    def to_si(self, capacity_ah: float | None = None) -> float:
        """The value in SI; a C-rate becomes amperes (needs `capacity_ah`)."""
        if self.kind == C_RATE:
            if capacity_ah is None:
                raise UnitError(f"{self.text!r} is a C-rate; a cell capacity is needed to use it")
            return self.value * capacity_ah
        return self.value


def _kinds_label(kinds: Iterable[str]) -> str:
    names = [KIND_NAMES[k] for k in kinds if k != C_RATE or CURRENT not in kinds]
    return " or ".join(names)


def allowed_units(kinds: Iterable[str]) -> str:
    """Human list of the units accepted for `kinds`."""
    kinds = list(kinds)
    parts = [ALLOWED_TEXT[k] for k in kinds if not (k == C_RATE and CURRENT in kinds)]
    return "; ".join(parts)


def ascii_float(text: str) -> float:
    """float(text), but ValueError for anything but ASCII: float() also reads Arabic-Indic,
    full-width and other Unicode digits, which a table's reader would not see as numbers."""
    if not text.isascii():
        raise ValueError(f"{text!r}: write numbers with the digits 0-9")
    return float(text)


def parse_number(text: str) -> float:
    """A plain finite number; raises UnitError otherwise."""
    q = parse_quantity(text, NUMBER)
    return q.value


def parse_quantity(
    text: str,
    kinds: str | Iterable[str] | None = None,
    *,
    allow_bare: bool = False,
    what: str | None = None,
    allowed: str | None = None,
) -> ParsedQuantity:
    """Parse "3.65 V", "C/20", "30 min" ... into a ParsedQuantity.

    `kinds` restricts what is accepted (a single kind or several); None accepts
    any known unit. A bare number is accepted only when `allow_bare` is true or
    NUMBER is among the kinds (its kind is then NUMBER; the caller decides what
    unit it means). Non-finite values are always refused.
    """
    if isinstance(kinds, str):
        kinds = (kinds,)
    wanted = tuple(kinds) if kinds is not None else None
    if wanted is not None and CURRENT in wanted and C_RATE not in wanted:
        wanted = wanted + (C_RATE,)
    if not isinstance(text, str):
        raise UnitError(f"expected text like '3.65 V', got {type(text).__name__}")
    lead = len(text) - len(text.lstrip())
    body = text.strip()
    what = what or (_kinds_label(wanted) if wanted else "a quantity")
    allowed = allowed or (allowed_units(wanted) if wanted else "a number with a unit")
    if not body:
        raise UnitError(f"missing value: expected {what} ({allowed})", lead)
    bad_digit = _unicode_digits(body)
    if bad_digit is not None:
        raise UnitError(f"{body[bad_digit]!r} (U+{ord(body[bad_digit]):04X}) is not an ASCII "
                        f"digit; write numbers with 0-9", lead + bad_digit)

    m = _C_OVER_RE.fullmatch(body)
    if m:  # "C/20"
        divisor = float(m.group(1))
        if not math.isfinite(divisor) or divisor <= 0:
            raise UnitError(f"bad C-rate {body!r}: the divisor must be a positive number", lead)
        return _check_kind(
            ParsedQuantity(1.0 / divisor, C_RATE, "C", body), wanted, lead, what, allowed
        )

    if _NONFINITE_RE.match(body):
        raise UnitError(f"{body!r} is not a finite number; expected {what} ({allowed})", lead)
    m = _NUMBER_RE.match(body)
    if not m:
        raise UnitError(f"expected a number at {body!r}; expected {what} ({allowed})", lead)
    number_text = m.group(0)
    rest = body[m.end() :]
    if rest.startswith(",") and rest[1:2].isdigit():
        raise UnitError(f"{body!r}: use a decimal point, not a comma", lead + m.end())
    value = float(number_text)
    if not math.isfinite(value):
        raise UnitError(f"{number_text!r} is too large a number", lead)
    unit_offset = lead + m.end() + (len(rest) - len(rest.lstrip()))
    unit_text = rest.strip()
    if not unit_text:
        if allow_bare or wanted is None or NUMBER in wanted or RATIO in wanted:
            kind = RATIO if (wanted and RATIO in wanted and NUMBER not in wanted) else NUMBER
            return ParsedQuantity(value, kind, "", body)
        raise UnitError(
            f"missing unit after {number_text} for {what}; allowed: {allowed}", unit_offset
        )
    key = unit_text.lower().replace(" ", "")
    if key in _CASE_SENSITIVE:  # mHz vs MHz differ only by case: the prefix letter decides
        by_prefix = {s[0]: k for s, k in _CASE_SENSITIVE[key].items()}
        key = by_prefix.get(unit_text.replace(" ", "")[0], key)
    elif key in _UNITS:
        case_problem = _prefix_case_problem(unit_text.replace(" ", ""))
        if case_problem is not None:
            raise UnitError(case_problem, unit_offset)
    if key not in _UNITS:
        from labctl.suggest import did_you_mean

        hint = did_you_mean(unit_text, _SPELLINGS, n=2)
        if wanted is None:
            raise UnitError(f"unknown unit {unit_text!r}{hint}", unit_offset)
        raise UnitError(f"unknown unit {unit_text!r} for {what}{hint}; allowed: {allowed}",
                        unit_offset)
    kind, factor, canonical = _UNITS[key]
    q = ParsedQuantity(value * factor, kind, canonical, body)
    return _check_kind(q, wanted, unit_offset, what, allowed)


def _check_kind(
    q: ParsedQuantity, wanted: tuple[str, ...] | None, offset: int, what: str, allowed: str
) -> ParsedQuantity:
    if wanted is None or q.kind in wanted:
        return q
    raise UnitError(
        f"{q.text!r} is {KIND_NAMES[q.kind]}, expected {what}; allowed: {allowed}", offset
    )


def _positive(q: ParsedQuantity, what: str) -> float:
    if q.value <= 0:
        raise UnitError(f"{what} must be greater than zero, got {q.text!r}")
    return q.value


def parse_voltage_v(text: str) -> float:
    """'3.65 V' or '3650 mV' -> 3.65."""
    return parse_quantity(text, VOLTAGE).value


def parse_current_a(text: str, capacity_ah: float | None = None) -> float:
    """'2 A', '500 mA', '1C', 'C/20' (needs capacity_ah) -> amperes."""
    return parse_quantity(text, (CURRENT, C_RATE)).to_si(capacity_ah)


def parse_power_w(text: str) -> float:
    return parse_quantity(text, POWER).value


def parse_duration_s(text: str | float | int) -> float:
    """'30 min', '1 hour', '10 s' -> seconds; a bare number means seconds. Must be > 0."""
    if isinstance(text, bool):
        raise UnitError("expected a duration like '30 min', got true/false")
    if isinstance(text, (int, float)):
        text = repr(float(text))
        q = parse_quantity(text, TIME, allow_bare=True)
    else:
        q = parse_quantity(text, TIME, allow_bare=True)
    return _positive(q, "a duration")


def parse_charge_ah(text: str) -> float:
    return parse_quantity(text, CHARGE).value


def parse_energy_wh(text: str) -> float:
    return parse_quantity(text, ENERGY).value


def parse_temperature_c(text: str) -> float:
    """'45 °C' or '45 degC' -> 45.0 (a bare 'C' is a C-rate, not a temperature)."""
    return parse_quantity(text, TEMPERATURE).value


def unit_kind(unit: str) -> str | None:
    """The kind of a unit spelling ('mV' -> 'voltage'), or None if unknown."""
    hit = _UNITS.get(unit.lower().replace(" ", ""))
    return hit[0] if hit else None


def unit_factor(unit: str) -> float:
    """Factor from `unit` to SI ('mV' -> 0.001); KeyError-free: unknown units raise UnitError."""
    hit = _UNITS.get(unit.lower().replace(" ", ""))
    if hit is None:
        raise UnitError(f"unknown unit {unit!r}")
    return hit[1]


def format_number(value: float | int) -> str:
    """Short text for a number: 1.0 -> '1', 0.05 -> '0.05', 1/3 -> '0.333333333333'.

    Twelve significant digits: far below any instrument's resolution, and short
    enough to read in a step's text.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if math.isfinite(value) and float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{float(value):.12g}"
