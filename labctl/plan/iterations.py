"""Loop iterations the planner does not simulate: when two are alike, how far to skip.

`Block` is one simulated iteration standing for `times` more. Iterations are compared
by their step results (`signature_of`, `same`: equal to a relative 1e-6) and by the
bench's state (`labctl.plan.twin.twin_state`); an ageing cell is compared without its
ageing, which `age_by` then advances by as much per skipped iteration as the last
simulated one aged it (`stride_length` says how many may be skipped).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from labctl.records import StepResult

# Iterations that change by less than STRIDE_CHANGE (relative) over a stride are not all
# simulated: after two simulated ones, up to MAX_STRIDE are taken like the last.
STRIDE_CHANGE = 2e-3
MAX_STRIDE = 9
# A rough plan (the ceilings check before `labctl run`, which needs orders of magnitude,
# not per-mille) strides much further.
ROUGH_STRIDE_CHANGE = 0.1
ROUGH_MAX_STRIDE = 1000
STRIDE_STATE_TOL = 5e-3  # SoC, RC volts, kelvin: the cell is back where it was


@dataclass
class Block:
    """One loop iteration's steps standing for `times` further iterations not simulated."""

    entries: list  # the iteration's StepResults and Blocks, as simulated
    times: int
    duration_s: float  # of one iteration, gaps included
    cycles: int  # cycle indices one iteration advances
    start_cycle: int  # the cycle index in force when the iteration began
    continues: bool  # its first steps continued that cycle (before starting new ones)
    path: str
    exact: bool  # True: iterations repeat identically; False: assumed (approximate)


def ageing_of(station: Any) -> dict[str, dict[str, float]]:
    """Each simulated cell's ageing counters (additive: cycles, days, throughput)."""
    out = {}
    for role, inst in station.instruments.items():
        get = getattr(inst, "get_state", None)
        if get is None or not hasattr(inst, "set_state"):
            continue
        try:
            age = get().get("ageing")
        except Exception:  # no usable state: nothing to age
            continue
        if isinstance(age, dict):
            out[role] = {k: float(v) for k, v in age.items()}
    return out


def age_by(station: Any, per_iteration: dict, times: int) -> None:
    for role, step in per_iteration.items():
        inst = station.instruments[role]
        state = inst.get_state()
        state["ageing"] = {k: max(0.0, v + times * step.get(k, 0.0))
                           for k, v in state["ageing"].items()}
        inst.set_state(state)


def drift(a: Any, b: Any) -> float:
    """The largest relative difference between two signatures' numbers (inf when their
    shapes, texts or end reasons differ)."""
    if isinstance(a, tuple) and isinstance(b, tuple):
        if len(a) != len(b):
            return math.inf
        return max((drift(x, y) for x, y in zip(a, b, strict=True)), default=0.0)
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        if math.isnan(a) or math.isnan(b):
            return 0.0 if math.isnan(a) and math.isnan(b) else math.inf
        scale = max(abs(a), abs(b))
        return abs(a - b) / scale if scale > 1e-9 else 0.0
    return 0.0 if a == b else math.inf


def without_ageing(state: tuple) -> tuple:
    return tuple(entry[:2] for entry in state)


def stride_length(now: tuple, before: tuple, left: int, most_change: float = STRIDE_CHANGE,
            most: int = MAX_STRIDE) -> int:
    """How many iterations to take like the last one: 0 unless the last two iterations
    ended alike and the cell is back in the same state (only its ageing moved)."""
    if left < 2 or now[2] == before[2]:  # the cell does not age: exact repetition or nothing
        return 0
    if not same(without_ageing(now[0]), without_ageing(before[0]), STRIDE_STATE_TOL):
        return 0
    change = drift(signature_of(now[1]), signature_of(before[1]))
    if change > most_change:
        return 0
    k = most if change == 0 else int(most_change / change)
    return max(0, min(most, k, left - 1))


def as_count(x: float) -> int | float:
    return int(x) if x < 2**53 else float(x)


def count_steps(entries: list) -> int:
    n = 0
    for e in entries:
        n += (count_steps(e.entries) * (1 + e.times)) if isinstance(e, Block) else 1
    return n


RESULT_NUMBERS = ("duration_s", "n_samples", "charge_capacity_ah", "discharge_capacity_ah",
                   "charge_energy_wh", "discharge_energy_wh", "end_voltage_v",
                   "max_temperature_c", "end_temperature_c")


def signature_of(entries: list) -> tuple:
    out = []
    for e in entries:
        if isinstance(e, Block):
            out.append(("block", e.times, signature_of(e.entries)))
        else:
            out.append((e.text, e.end_kind, e.end_reason,
                        tuple(getattr(e, k) for k in RESULT_NUMBERS)))
    return tuple(out)


def same(a: Any, b: Any, abs_tol: float = 1e-9) -> bool:
    """Equal, numbers to a relative 1e-6 (and `abs_tol`): what a report could show."""
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(same(x, y, abs_tol) for x, y in zip(a, b, strict=True))
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= abs_tol + 1e-6 * max(abs(a), abs(b))
    return a == b


def scaled(results: list, times: int) -> StepResult | None:
    """One result standing for `times` repetitions of an iteration's results (for the
    `until` metrics of the loops around): sums scaled, extremes and ends as they were."""
    if not results:
        return None

    def total(name: str) -> float:
        return times * math.fsum(getattr(r, name) for r in results
                                 if not math.isnan(getattr(r, name)))

    temps = [r.max_temperature_c for r in results if not math.isnan(r.max_temperature_c)]
    return replace(results[-1], duration_s=total("duration_s"),
                   n_samples=as_count(total("n_samples")),
                   charge_capacity_ah=total("charge_capacity_ah"),
                   discharge_capacity_ah=total("discharge_capacity_ah"),
                   charge_energy_wh=total("charge_energy_wh"),
                   discharge_energy_wh=total("discharge_energy_wh"),
                   max_temperature_c=max(temps) if temps else math.nan)
