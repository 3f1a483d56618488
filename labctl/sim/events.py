"""What can end a step: its `until` conditions and the safety limits, as watches.

A watch looks at one quantity of the true (noise-free) trajectory and says from
which sample on it holds; the cycler then finds the instant between samples.
Quantities: "v" (terminal voltage), "i" (signed current), "i_abs", "-i"
(discharge current as a positive number), "q" (charge moved in the step,
charge plus discharge) and "temp" (cell temperature).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from labctl.capabilities.cycler import EndKind
from labctl.capabilities.limits import SafetyLimits, violation_text
from labctl.capabilities.steps import EndCondition, Quantity

_QUANTITY_KEY = {
    Quantity.VOLTAGE: "v",
    Quantity.CURRENT: "i_abs",
    Quantity.CHARGE: "q",
    Quantity.TEMPERATURE: "temp",
}
_UNITS = {Quantity.VOLTAGE: "V", Quantity.CURRENT: "A", Quantity.CHARGE: "Ah",
          Quantity.TEMPERATURE: "°C"}


@dataclass(slots=True)
class Watch:
    """One thing that can end a simulated step: a quantity crossing a threshold."""

    key: str
    rising: bool  # holds when the value is >= (rising) or <= (falling) the threshold
    threshold: float
    kind: EndKind
    strict: bool = False  # safety limits hold only beyond the limit (> / <)
    condition_index: int | None = None
    condition: EndCondition | None = None
    label: str = ""  # safety: "voltage", "charge current", ...

    def margin(self, value: float) -> float:
        """>= 0 where the watch holds (> 0 for strict watches)."""
        m = value - self.threshold if self.rising else self.threshold - value
        return -1e-300 if self.strict and m == 0.0 else m

    def first(self, values: np.ndarray) -> int | None:
        """Index of the first sample where the watch holds, or None."""
        if self.rising:
            mask = values > self.threshold if self.strict else values >= self.threshold
        else:
            mask = values < self.threshold if self.strict else values <= self.threshold
        k = int(mask.argmax())
        return k if mask[k] else None

    def reason(self, value: float) -> str:
        if self.kind is EndKind.SAFETY:
            unit = "°C" if self.key == "temp" else ("A" if "i" in self.key else "V")
            return violation_text(self.label, value, unit, ">" if self.rising else "<",
                                  self.threshold)
        cond = self.condition
        assert cond is not None
        if cond.quantity is Quantity.CURRENT:
            verb = "rose" if self.rising else "fell"
            return f"current {verb} to {self.threshold:.4g} A"
        if cond.quantity is Quantity.CHARGE:
            return f"moved {self.threshold:.4g} Ah"
        text = f"reached {self.threshold:.4g} {_UNITS[cond.quantity]}"
        if cond.text and "limit" in cond.text:
            text += f" ({cond.text})"
        return text


def condition_watches(until: tuple[EndCondition, ...]) -> list[Watch]:
    out = []
    for index, cond in enumerate(until):
        if cond.op not in (">=", "<="):
            raise ValueError(f"end condition {cond.describe()!r}: op must be '>=' or '<='")
        out.append(Watch(_QUANTITY_KEY[cond.quantity], cond.op == ">=", float(cond.value),
                         EndKind.CONDITION, condition_index=index, condition=cond))
    return out


def safety_watches(limits: SafetyLimits) -> list[Watch]:
    candidates = (
        ("v", True, limits.max_voltage_v, "voltage"),
        ("v", False, limits.min_voltage_v, "voltage"),
        ("i", True, limits.max_charge_current_a, "charge current"),
        ("-i", True, limits.max_discharge_current_a, "discharge current"),
        ("temp", True, limits.max_temperature_c, "temperature"),
        ("temp", False, limits.min_temperature_c, "temperature"),
    )
    return [Watch(key, rising, float(value), EndKind.SAFETY, strict=True, label=label)
            for key, rising, value, label in candidates if math.isfinite(value)]


_BASE = {"i_abs": "i", "-i": "i"}


def values_for(key: str, values_of: Callable[[str], np.ndarray]) -> np.ndarray:
    if key == "i_abs":
        return np.abs(values_of("i"))
    if key == "-i":
        return -values_of("i")
    return values_of(key)


def first_firing(watches: list[Watch], values_of: Callable[[str], np.ndarray],
                 start: int = 0, known: dict | None = None) -> tuple[int | None, list[Watch]]:
    """The first index (>= start) where any watch holds, and every watch holding there.

    `values_of(key)` gives the array of "v", "i", "q" or "temp". Two reductions per
    quantity rule most watches out before any mask is built; `known` gives (min, max)
    of quantities already known (a constant current).
    """
    best_k: int | None = None
    firing: list[Watch] = []
    ranges: dict = dict(known) if known else {}
    # One (min, max) per quantity, with the reductions called directly: this runs several
    # times per batch, for every watch.
    for w in watches:
        key = w.key
        base = _BASE.get(key, key)
        r = ranges.get(base, _UNSET)
        if r is _UNSET:
            arr = values_of(base)[start:]
            r = ranges[base] = ((float(_MIN(arr)), float(_MAX(arr))) if len(arr) else None)
        if r is None:
            continue
        low, high = r
        if key == "-i":
            low, high = -high, -low
        elif key == "i_abs":
            low, high = (0.0 if low <= 0.0 <= high else (-high if high < 0.0 else low),
                         max(abs(low), abs(high)))
        if w.rising and (high < w.threshold or (w.strict and high == w.threshold)):
            continue
        if not w.rising and (low > w.threshold or (w.strict and low == w.threshold)):
            continue
        k = w.first(values_for(key, values_of)[start:])
        if k is None:
            continue
        k += start
        if best_k is None or k < best_k:
            best_k, firing = k, [w]
        elif k == best_k:
            firing.append(w)
    return best_k, firing


_UNSET = object()
_MIN, _MAX = np.minimum.reduce, np.maximum.reduce  # arr.min() / arr.max() without their wrappers
