"""What every importer hands over (`Parsed`), and how it becomes labctl's sample columns.

An importer reads a vendor file into `Parsed`: the file's own time, current, voltage,
step and cycle numbers and counters, already in SI units and labctl's sign
(positive current = charge), with a note for every conversion it applied.
`to_samples` then makes the timeseries columns and the steps the same way for
every format:

* `test_time_s` counts from the file's first record.
* Steps in execution order: a new step wherever the file's step number or cycle
  number changes (vendor step numbers repeat every cycle; labctl's step_index is
  1, 2, ... in the order they ran). Files without step numbers: wherever the
  direction of the current (charge / discharge / rest) changes.
* Capacity and energy columns count from 0 at each cycle start and never decrease:
  built from the increments of the vendor's own counters (which restart per step,
  per cycle or never, as the importer says), else by integrating current and power
  over time (trapezoid).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labctl.errors import LabctlError
from labctl.records import SAMPLE_COLUMNS
from labctl.store.imported import ImportedStep

# |current| below this fraction of the file's largest |current| counts as rest.
REST_FRACTION = 1e-3


class ImportFailure(LabctlError):
    """A file that cannot be imported: says where, what was expected, which formats exist."""


def fail(path: Any, where: str, message: str, fmt: str | None = None) -> ImportFailure:
    """An ImportFailure "<file>: <where>: <message>" plus the accepted formats."""
    from labctl.importers.registry import FORMAT_NAMES

    what = f" (as {fmt})" if fmt else ""
    loc = f": {where}" if where else ""
    message = " ".join(str(message).split())  # one line, whatever a library put in it
    return ImportFailure(f"{path}{loc}: {message}{what}. Accepted formats: "
                         f"{', '.join(FORMAT_NAMES)} (see docs/import.md)")


@dataclass
class Counter:
    """A vendor's cumulative counter (>= 0) and where it restarts from 0."""

    values: np.ndarray
    resets: str  # "step", "cycle", "never" (it may also restart wherever it falls)


@dataclass
class Parsed:
    """One vendor file's data in SI units and labctl's sign (see the module docstring)."""

    fmt: str
    time_s: np.ndarray
    current_a: np.ndarray
    voltage_v: np.ndarray
    step: np.ndarray | None = None  # vendor step numbers
    cycle: np.ndarray | None = None  # vendor cycle numbers, already 1-based
    unix_time_s: np.ndarray | None = None
    start_unix_s: float | None = None  # unix time of the first record (then + test time)
    temperature_c: np.ndarray | None = None
    charge_ah: Counter | None = None
    discharge_ah: Counter | None = None
    charge_wh: Counter | None = None
    discharge_wh: Counter | None = None
    step_labels: Any = None  # per row (numpy or pyarrow array), e.g. "CC_Chg"
    conversions: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    records: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    source_rows: int | None = None  # data records in the file (default: len(time_s))
    first_line: int | None = None  # text files: the line of the first data record


def record_at(index: int, first_line: int | None) -> str:
    """"data record N (line L)" for the 0-based record `index`."""
    line = f" (line {first_line + index})" if first_line else ""
    return f"data record {index + 1}{line}"


def _check_finite(path: Any, name: str, values: np.ndarray, fmt: str,
                  first_line: int | None = None) -> None:
    if np.isfinite(np.add.reduce(values, dtype=np.float64)):
        return  # one pass, no mask: a finite sum means every value is finite
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        raise fail(path, record_at(int(bad[0]), first_line), f"{name} is missing or not a number "
                   f"({len(bad)} such records); every record needs a finite {name}", fmt)


def as_ints(path: Any, name: str, values: Any, fmt: str, first_line: int | None = None
            ) -> np.ndarray:
    """Whole numbers (cycle, step) from a float column; a missing one names its record."""
    v = np.asarray(values, dtype=np.float64)
    _check_finite(path, name, v, fmt, first_line)
    return v.astype(np.int64)


def _direction(current: np.ndarray) -> np.ndarray:
    """+1 charging, -1 discharging, 0 resting, per record."""
    # two reductions instead of an |current| array (fresh pages cost as much as the math)
    scale = float(max(current.max(), -current.min())) if len(current) else 0.0
    thr = scale * REST_FRACTION
    return np.subtract(current > thr, current < -thr, dtype=np.int8)


def _step_kinds(direction: np.ndarray, step_start: np.ndarray) -> np.ndarray:
    """+1 / -1 / 0 per step: the direction of most of its records."""
    starts = np.flatnonzero(step_start)
    sums = np.add.reduceat(direction.astype(np.int64), starts) if len(starts) else starts
    sizes = np.diff(np.r_[starts, len(direction)])
    mean = sums / np.maximum(sizes, 1)
    return np.where(mean > 0.5, 1, np.where(mean < -0.5, -1, 0))


def _derive_cycles(direction: np.ndarray, step_start: np.ndarray) -> np.ndarray:
    """Cycle 1 from the start; a new cycle when a charging step follows a discharging one."""
    kinds = _step_kinds(direction, step_start)
    cycle_of_step = np.ones(len(kinds), dtype=np.int64)
    c, seen_discharge = 1, False
    for k, kind in enumerate(kinds.tolist()):
        if kind < 0:
            seen_discharge = True
        elif kind > 0 and seen_discharge:
            c += 1
            seen_discharge = False
        cycle_of_step[k] = c
    return cycle_of_step[np.cumsum(step_start) - 1]


def _increments(counter: Counter, boundary: dict[str, np.ndarray]) -> np.ndarray:
    """What the counter moved at each record (first record: its value)."""
    v = np.asarray(counter.values, dtype=np.float64)
    inc = np.empty_like(v)
    if len(v) == 0:
        return inc
    inc[0] = v[0]
    rest = inc[1:]
    np.subtract(v[1:], v[:-1], out=rest)  # in place: one array per counter, not four
    restart = rest < 0  # it fell: restarted from 0 (any counter)
    if counter.resets in boundary:
        restart |= boundary[counter.resets][1:]
    np.copyto(rest, v[1:], where=restart)
    return np.maximum(inc, 0.0, out=inc)


def _areas(time_s: np.ndarray, value: np.ndarray) -> np.ndarray:
    """The trapezoid integral of `value` over each interval, in hours (signed)."""
    area = np.add(value[1:], value[:-1])
    area *= 0.5
    area *= np.diff(time_s)
    area /= 3600.0
    return area


def _integrated(area: np.ndarray, sign: int) -> np.ndarray:
    """Per-record increments of the integral of max(sign*value, 0) dt from `_areas`."""
    inc = np.zeros(len(area) + 1)
    if sign > 0:
        np.maximum(area, 0.0, out=inc[1:])
    else:
        np.minimum(area, 0.0, out=inc[1:])
        np.negative(inc[1:], out=inc[1:])
        inc[1:] += 0.0  # -0.0 -> 0.0, as max(-area, 0) gives
    return inc


def _per_cycle(inc: np.ndarray, cycle_start: np.ndarray) -> np.ndarray:
    """Running total that restarts at each cycle start (the start record counts in)."""
    total = np.cumsum(inc)
    starts = np.flatnonzero(cycle_start)
    offsets = total[starts] - inc[starts]
    if len(starts) == 1 and offsets[0] == 0:
        return total
    total -= np.repeat(offsets, np.diff(np.r_[starts, len(inc)]))
    return total


CYCLE_RULES = ("file", "labctl")


def to_samples(parsed: Parsed, path: Any, cycles: str = "file"
               ) -> tuple[dict[str, np.ndarray], list[ImportedStep]]:
    """labctl's sample columns and execution-order steps from a Parsed file."""
    fmt = parsed.fmt
    t = np.asarray(parsed.time_s, dtype=np.float64)
    n = len(t)
    if n == 0:
        raise fail(path, "", "no data records found", fmt)
    cur = np.asarray(parsed.current_a, dtype=np.float64)
    volt = np.asarray(parsed.voltage_v, dtype=np.float64)
    for name, values in (("time", t), ("current", cur), ("voltage", volt)):
        if len(values) != n:
            raise fail(path, "", f"the {name} column has {len(values)} values for {n} records",
                       fmt)
        _check_finite(path, name, values, fmt, parsed.first_line)
    back = np.flatnonzero(np.diff(t) < 0)
    if len(back):
        raise fail(path, record_at(int(back[0]) + 1, parsed.first_line),
                   f"time goes backwards ({t[back[0]]:g} s, then {t[back[0] + 1]:g} s); "
                   "expected a non-decreasing test time", fmt)
    test_time = t - t[0]
    if t[0] != 0:
        parsed.conversions.append(f"test_time_s counted from the first record "
                                  f"(file time {t[0]:g} s)")

    direction = _direction(cur)
    if parsed.step is not None:
        step = np.asarray(parsed.step, dtype=np.int64)
        step_start = np.r_[True, step[1:] != step[:-1]]
        rule = "a new step wherever the file's step number or cycle number changes"
    else:
        step_start = np.r_[True, direction[1:] != direction[:-1]]
        rule = ("the file has no step numbers: a new step wherever the current's direction "
                "(charge / discharge / rest) or the cycle changes")
    if parsed.cycle is None:
        cycle = _derive_cycles(direction, step_start)
        parsed.conversions.append("cycle_index: the file has no cycle numbers; cycle 1 from the "
                                  "start, a new cycle when a charging step starts after a "
                                  "discharging step")
        counter_cycle_start = np.r_[True, cycle[1:] != cycle[:-1]]
    else:
        cycle = np.asarray(parsed.cycle, dtype=np.int64)
        # the vendor's cycle starts: where its counters that restart per cycle restart
        counter_cycle_start = np.r_[True, cycle[1:] != cycle[:-1]]
        if cycles == "labctl":
            # Vendors count cycles their own way (Neware per loop of the schedule, Arbin
            # when a charge follows a discharge, ...): one rule across cyclers compares them.
            step_start = step_start | counter_cycle_start
            n_file = len(np.unique(cycle))
            cycle = _derive_cycles(direction, step_start)
            parsed.conversions.append(
                f"cycle_index: labctl's rule (--cycles labctl), not the file's own cycle numbers "
                f"({n_file} cycles in the file): cycle 1 from the start, a new cycle when a "
                "charging step starts after a discharging step")
    cycle_start = np.r_[True, cycle[1:] != cycle[:-1]]
    step_start = step_start | cycle_start | counter_cycle_start
    parsed.conversions.append(f"step_index: 1, 2, ... in execution order; {rule}")
    starts = np.flatnonzero(step_start)
    # 1, 2, ... repeated over each step's rows (a cumsum of the flags costs 4x more)
    step_index = np.repeat(np.arange(1, len(starts) + 1, dtype=np.int64),
                           np.diff(np.r_[starts, n]))
    boundary = {"step": step_start, "cycle": counter_cycle_start}

    areas: dict[str, np.ndarray] = {}

    def column(counter: Counter | None, value: np.ndarray | None, sign: int, what: str
               ) -> np.ndarray:
        if counter is not None:
            if len(counter.values) != n:
                raise fail(path, "", f"the {what} column has {len(counter.values)} values for "
                           f"{n} records", fmt)
            _check_finite(path, what, np.asarray(counter.values, dtype=np.float64), fmt,
                          parsed.first_line)
            inc = _increments(counter, boundary)
        else:  # charge and discharge share one integral, split by sign
            key = "energy" if "energy" in what else "capacity"
            if key not in areas:
                assert value is not None
                areas[key] = _areas(test_time, value)
            inc = _integrated(areas[key], sign)
        return _per_cycle(inc, cycle_start)

    # V*I only where an energy counter is missing (integrated from it)
    power = cur * volt if parsed.charge_wh is None or parsed.discharge_wh is None else None
    samples = {
        "test_time_s": test_time,
        "unix_time_s": (np.asarray(parsed.unix_time_s, dtype=np.float64)
                        if parsed.unix_time_s is not None else
                        parsed.start_unix_s + test_time if parsed.start_unix_s is not None
                        else np.full(n, np.nan)),
        "step_index": step_index,
        "cycle_index": cycle,
        "voltage_v": volt,
        "current_a": cur,
        "temperature_c": (np.asarray(parsed.temperature_c, dtype=np.float64)
                          if parsed.temperature_c is not None else np.full(n, np.nan)),
        "charge_capacity_ah": column(parsed.charge_ah, cur, 1, "charge capacity"),
        "discharge_capacity_ah": column(parsed.discharge_ah, cur, -1, "discharge capacity"),
        "charge_energy_wh": column(parsed.charge_wh, power, 1, "charge energy"),
        "discharge_energy_wh": column(parsed.discharge_wh, power, -1, "discharge energy"),
    }
    missing = [what for what, c in (("charge capacity", parsed.charge_ah),
                                    ("discharge capacity", parsed.discharge_ah),
                                    ("charge energy", parsed.charge_wh),
                                    ("discharge energy", parsed.discharge_wh)) if c is None]
    if missing:
        parsed.conversions.append(f"{', '.join(missing)}: not in the file; integrated from "
                                  "current (and voltage) over test time (trapezoid)")
    if parsed.charge_ah is not None or parsed.charge_wh is not None:
        parsed.conversions.append("capacities/energies: the file's own counters, restarted "
                                  "from 0 at each cycle start (labctl counts per cycle)")
    for name, dtype in SAMPLE_COLUMNS.items():
        samples[name] = np.ascontiguousarray(samples[name], dtype=dtype)
    ends = np.r_[starts[1:], n]
    labels = parsed.step_labels
    if labels is not None:  # only each step's first label is needed
        labels = (labels.take(starts).to_pylist() if hasattr(labels, "take")
                  and not isinstance(labels, np.ndarray) else np.asarray(labels)[starts])
        labels = dict(zip(starts.tolist(), labels, strict=True))
    steps = []
    for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
        mean = float(np.mean(direction[lo:hi]))
        kind = "charge" if mean > 0.5 else "discharge" if mean < -0.5 else (
            "rest" if not np.any(direction[lo:hi]) else "mixed")
        label = str(labels[lo]).strip() if labels is not None else kind
        if parsed.step is not None:
            label += f" (file step {int(parsed.step[lo])})"
        steps.append(ImportedStep(lo, hi, kind, label))
    return samples, steps


def orient_current(current: np.ndarray, charge: np.ndarray | None, discharge: np.ndarray | None,
                   conversions: list[str], column: str) -> np.ndarray:
    """The current with positive = charge, judged from the file's own counters: the
    current while the charge counter grows must be positive (and negative while the
    discharge counter grows). A file whose charging current is negative is negated."""
    current = np.asarray(current, dtype=np.float64)
    votes = 0.0
    for counter, sign in ((charge, 1.0), (discharge, -1.0)):
        if counter is None or len(counter) < 2:
            continue
        c = np.asarray(counter, dtype=np.float64)
        grows = c[1:] > c[:-1]  # = diff > 0, one pass
        # sum(sign(I)) where the counter grows, masked instead of gathered (exact: +-1s)
        votes += sign * float(np.sum(np.sign(current[1:]), where=grows))
    if votes < 0:
        conversions.append(f"current: {column!r} is negative while the file's charge counter "
                           "grows (the vendor's sign): negated, so positive = charge")
        return -current
    conversions.append(f"current: {column!r} already positive while charging (kept)")
    return current


@functools.lru_cache(maxsize=4096)
def unit_of(header: str) -> tuple[str, str]:
    """("Current", "mA") from "Current(mA)", "Current (mA)", "Current / mA", "Current_mA"."""
    import re

    m = re.match(r"^(.*?)\s*(?:\(([^()]*)\)|/\s*([^/]+)|_(m?[AVW]h?|mAh|mWh|s|h|min))\s*$",
                 header.strip())
    if not m:
        return header.strip(), ""
    return m.group(1).strip(), (m.group(2) or m.group(3) or m.group(4) or "").strip()
