"""Hard safety limits and the vectorised check the engine runs on every sample."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SafetyLimits:
    """Limits that abort a run when any sample crosses them.

    Built from the cell file's limits plus tolerances, possibly tightened by the
    procedure's `safety:` section. Currents are magnitudes (both positive).
    """

    max_voltage_v: float = math.inf
    min_voltage_v: float = -math.inf
    max_charge_current_a: float = math.inf
    max_discharge_current_a: float = math.inf
    max_temperature_c: float = math.inf
    min_temperature_c: float = -math.inf
    # Cell limits an abuse procedure may cross (its `abuse: {allow: [...]}`); for these
    # the limit above is the procedure's own explicit value, not the cell's.
    abuse_allow: frozenset[str] = frozenset()

    def within(self, voltage_v: np.ndarray, current_a: np.ndarray,
               temperature_c: np.ndarray) -> bool:
        """True when every sample is inside the limits by the six reductions of the fast
        path (every batch of every run goes through here). A NaN voltage or current fails
        it; fmax/fmin skip NaN temperatures (a channel without a thermocouple reports NaN)."""
        return bool(
            _MAX(voltage_v) <= self.max_voltage_v
            and _MIN(voltage_v) >= self.min_voltage_v
            and _MAX(current_a) <= self.max_charge_current_a
            and -_MIN(current_a) <= self.max_discharge_current_a
            and not _FMAX(temperature_c) > self.max_temperature_c
            and not _FMIN(temperature_c) < self.min_temperature_c
        )

    def bounds_voltage_and_current(self) -> bool:
        """True when all four voltage and current limits are finite: then `within`
        passing also proves every voltage and current a finite number."""
        return all(math.isfinite(x) for x in (self.max_voltage_v, self.min_voltage_v,
                                              self.max_charge_current_a,
                                              self.max_discharge_current_a))

    def first_violation(
        self,
        voltage_v: np.ndarray,
        current_a: np.ndarray,
        temperature_c: np.ndarray,
    ) -> tuple[int, str] | None:
        """Index of the first sample outside the limits and the reason, or None."""
        if self.within(voltage_v, current_a, temperature_c):
            return None
        checks = (
            (voltage_v > self.max_voltage_v, voltage_v, "voltage", "V", ">", self.max_voltage_v),
            (voltage_v < self.min_voltage_v, voltage_v, "voltage", "V", "<", self.min_voltage_v),
            (
                current_a > self.max_charge_current_a,
                current_a,
                "charge current",
                "A",
                ">",
                self.max_charge_current_a,
            ),
            (
                -current_a > self.max_discharge_current_a,
                -current_a,
                "discharge current",
                "A",
                ">",
                self.max_discharge_current_a,
            ),
            (
                temperature_c > self.max_temperature_c,
                temperature_c,
                "temperature",
                "°C",
                ">",
                self.max_temperature_c,
            ),
            (
                temperature_c < self.min_temperature_c,
                temperature_c,
                "temperature",
                "°C",
                "<",
                self.min_temperature_c,
            ),
        )
        first: tuple[int, str] | None = None
        for mask, values, name, unit, op, limit in checks:
            if not mask.any():
                continue
            i = int(np.argmax(mask))
            if first is None or i < first[0]:
                first = (i, violation_text(name, float(values[i]), unit, op, limit))
        return first


def violation_text(name: str, value: float, unit: str, op: str, limit: float) -> str:
    """"safety: temperature 27.04 °C > 27 °C": a limit passed, as the engine and the
    simulator say it. A value that rounds to the limit (a simulated step ends at the
    crossing itself) reads "rose to" / "fell to" its limit, never "27 °C > 27 °C"."""
    shown, bound = f"{value:.4g}", f"{limit:.4g}"
    if shown == bound:
        verb = "rose" if op == ">" else "fell"
        return f"safety: {name} {verb} to its limit of {bound} {unit}"
    return f"safety: {name} {shown} {unit} {op} {bound} {unit}"


# The reductions of arr.max() / arr.min() without their Python wrappers.
_MAX, _MIN = np.maximum.reduce, np.minimum.reduce
_FMAX, _FMIN = np.fmax.reduce, np.fmin.reduce
