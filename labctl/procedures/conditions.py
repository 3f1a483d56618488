"""`repeat ... until:` conditions over measured results. A tiny grammar, never eval.

    <metric> <op> <number>[unit]
    <metric> <op> <N> % of first|max|min|previous
    ... or ...            (any one true ends the loop)

Metrics are computed over the StepResults of one iteration (`iteration_metrics`).
A condition whose metric is NaN (e.g. coulombic efficiency of an iteration that
charged nothing) or whose reference does not exist yet (`previous` in the first
iteration) is false.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from labctl.records import StepResult
from labctl.units import (
    CHARGE,
    ENERGY,
    NUMBER,
    RATIO,
    TEMPERATURE,
    TIME,
    VOLTAGE,
    UnitError,
    parse_quantity,
)

# metric -> kind of quantity its thresholds are written in
METRICS: dict[str, str] = {
    "discharge_capacity_ah": CHARGE,
    "charge_capacity_ah": CHARGE,
    "discharge_energy_wh": ENERGY,
    "charge_energy_wh": ENERGY,
    "coulombic_efficiency": RATIO,
    "energy_efficiency": RATIO,
    "max_temperature_c": TEMPERATURE,
    "end_temperature_c": TEMPERATURE,
    "end_voltage_v": VOLTAGE,
    "duration_s": TIME,
}
REFERENCES = ("first", "max", "min", "previous")

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_CLAUSE_RE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*(.*?)\s*$", re.DOTALL)
_RELATIVE_RE = re.compile(r"(.*?)\s*%\s*of\s+([A-Za-z]+)\s*$", re.IGNORECASE | re.DOTALL)
_OR_RE = re.compile(r"\bor\b", re.IGNORECASE)


@dataclass(frozen=True)
class MetricCondition:
    """A loop's `until` on a per-iteration metric (e.g. discharge capacity < 80 % of the first)."""

    metric: str
    op: str
    value: float  # SI threshold, or a fraction (0.8) when `reference` is set
    reference: str | None = None  # first, max, min, previous
    text: str = ""

    def holds(self, history: MetricHistory | Sequence[dict[str, float]]) -> bool:
        """True when the latest iteration in `history` meets the condition."""
        if not isinstance(history, MetricHistory):
            history = MetricHistory.of(history)
        if not history.count:
            return False
        x = history.latest.get(self.metric, math.nan)
        if self.reference is None:
            threshold = self.value
        else:
            ref = history.reference(self.reference, self.metric)
            threshold = self.value * ref
        if math.isnan(x) or math.isnan(threshold):
            return False
        return _OPS[self.op](x, threshold)


class MetricHistory:
    """First, previous, latest and running max/min of each metric: O(1) per iteration.

    (Keeping every iteration and scanning it each time would make a 10,000-cycle
    loop quadratic.)
    """

    def __init__(self) -> None:
        self.count = 0
        self.first: dict[str, float] = {}
        self.previous: dict[str, float] = {}
        self.latest: dict[str, float] = {}
        self.max: dict[str, float] = {}
        self.min: dict[str, float] = {}

    @classmethod
    def of(cls, iterations: Sequence[dict[str, float]]) -> MetricHistory:
        h = cls()
        for m in iterations:
            h.append(m)
        return h

    def append(self, metrics: dict[str, float]) -> None:
        self.count += 1
        if self.count == 1:
            self.first = dict(metrics)
        self.previous, self.latest = self.latest, dict(metrics)
        for name, v in metrics.items():
            if math.isnan(v):
                continue  # NaN never becomes a max or min
            self.max[name] = max(self.max.get(name, v), v)
            self.min[name] = min(self.min.get(name, v), v)

    def reference(self, which: str, metric: str) -> float:
        if which == "first":
            return self.first.get(metric, math.nan)
        if which == "previous":
            return self.previous.get(metric, math.nan) if self.count >= 2 else math.nan
        table = self.max if which == "max" else self.min
        return table.get(metric, math.nan)


class ConditionError(ValueError):
    def __init__(self, offset: int, reason: str):
        super().__init__(reason)
        self.offset = offset
        self.reason = reason


def parse_until(text: str) -> tuple[MetricCondition, ...]:
    """'discharge_capacity_ah < 80 % of first or max_temperature_c > 50 °C' -> conditions.

    Raises ConditionError with the 0-based offset of the bad part.
    """
    if not isinstance(text, str) or not text.strip():
        raise ConditionError(0, _usage("an until condition is text"))
    out = []
    pos = 0
    parts: list[tuple[str, int]] = []
    for m in _OR_RE.finditer(text):
        parts.append((text[pos : m.start()], pos))
        pos = m.end()
    parts.append((text[pos:], pos))
    for raw, offset in parts:
        out.append(_parse_clause(raw, offset))
    return tuple(out)


def _usage(prefix: str) -> str:
    return (
        f"{prefix}; write '<metric> <op> <value>' or "
        "'<metric> <op> <N> % of first|max|min|previous' "
        f"with op one of <, <=, >, >= and metric one of: {', '.join(METRICS)}"
    )


def _parse_clause(raw: str, offset: int) -> MetricCondition:
    lead = len(raw) - len(raw.lstrip())
    m = _CLAUSE_RE.fullmatch(raw)
    if not m:
        raise ConditionError(offset + lead, _usage(f"cannot read {raw.strip()!r}"))
    metric, op, rhs = m.group(1), m.group(2), m.group(3)
    if metric.lower() not in METRICS:
        raise ConditionError(
            offset + m.start(1),
            f"unknown metric {metric!r}; allowed: {', '.join(METRICS)}",
        )
    metric = metric.lower()
    rhs_offset = offset + m.start(3)
    if not rhs:
        raise ConditionError(rhs_offset, _usage(f"missing value after {op!r}"))
    rel = _RELATIVE_RE.fullmatch(rhs)
    if rel:
        ref = rel.group(2).lower()
        if ref not in REFERENCES:
            raise ConditionError(
                rhs_offset + rel.start(2),
                f"unknown reference {rel.group(2)!r}; allowed: {', '.join(REFERENCES)}",
            )
        try:
            pct = parse_quantity(rel.group(1), NUMBER)
        except UnitError as exc:
            raise ConditionError(rhs_offset + exc.offset, f"percentage: {exc.reason}") from None
        if pct.value < 0:
            raise ConditionError(rhs_offset, "a percentage must not be negative")
        return MetricCondition(metric, op, pct.value / 100.0, ref, raw.strip())
    kind = METRICS[metric]
    try:
        q = parse_quantity(rhs, (kind, NUMBER))
    except UnitError as exc:
        raise ConditionError(rhs_offset + exc.offset, f"{metric}: {exc.reason}") from None
    return MetricCondition(metric, op, q.value, None, raw.strip())


def _nan_sum(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return math.fsum(finite) if finite else (math.nan if values else 0.0)


def iteration_metrics(results: Sequence[StepResult]) -> dict[str, float]:
    """Metrics of one loop iteration from the results of the steps it ran."""
    charge = _nan_sum([r.charge_capacity_ah for r in results])
    discharge = _nan_sum([r.discharge_capacity_ah for r in results])
    charge_wh = _nan_sum([r.charge_energy_wh for r in results])
    discharge_wh = _nan_sum([r.discharge_energy_wh for r in results])
    temps = [r.max_temperature_c for r in results if not math.isnan(r.max_temperature_c)]
    last = results[-1] if results else None
    return {
        "charge_capacity_ah": charge,
        "discharge_capacity_ah": discharge,
        "charge_energy_wh": charge_wh,
        "discharge_energy_wh": discharge_wh,
        "coulombic_efficiency": discharge / charge if charge > 0 else math.nan,
        "energy_efficiency": discharge_wh / charge_wh if charge_wh > 0 else math.nan,
        "max_temperature_c": max(temps) if temps else math.nan,
        "end_temperature_c": last.end_temperature_c if last else math.nan,
        "end_voltage_v": last.end_voltage_v if last else math.nan,
        "duration_s": _nan_sum([r.duration_s for r in results]),
    }


def any_holds(
    conditions: Sequence[MetricCondition], history: MetricHistory | Sequence[dict[str, float]]
) -> bool:
    return any(c.holds(history) for c in conditions)
