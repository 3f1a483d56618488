"""What a plan says: totals, steps folded per loop, cycles, margins, warnings.

Built from the planner's walk (`walk.WalkOutcome`): simulated step results, and
blocks of iterations that were counted rather than simulated (each block's
iteration is multiplied by its count).
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from labctl.plan.bounds import Ceilings, _implied, disk_bytes, journal_bytes_per_sample
from labctl.plan.iterations import Block
from labctl.plan.walk import Extreme, WalkOutcome
from labctl.records import StepResult

WARN_DURATION_S = 30 * 86400.0  # without a max_duration, a plan longer than this is flagged
_SUMS = ("duration_s", "n_samples", "charge_capacity_ah", "discharge_capacity_ah",
         "charge_energy_wh", "discharge_energy_wh")


@dataclass
class StepFold:
    """One step of the procedure (one place in the file), over all its executions."""

    path: str
    text: str
    kind: str
    count: float = 0.0
    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(_SUMS, 0.0))
    min_duration_s: float = math.inf
    max_duration_s: float = -math.inf
    max_temperature_c: float = math.nan
    end_reasons: Counter = field(default_factory=Counter)

    def add(self, r: StepResult, times: float) -> None:
        self.count += times
        for k in _SUMS:
            v = getattr(r, k)
            if not math.isnan(v):
                self.sums[k] += v * times
        self.min_duration_s = min(self.min_duration_s, r.duration_s)
        self.max_duration_s = max(self.max_duration_s, r.duration_s)
        self.max_temperature_c = _nanmax(self.max_temperature_c, r.max_temperature_c)
        # "safety: voltage 4.3 V > 4.25 V" already names its kind
        prefix = f"{r.end_kind}: "
        key = r.end_reason if r.end_reason.startswith(prefix) else prefix + r.end_reason
        self.end_reasons[key] += times

    def as_dict(self) -> dict[str, Any]:
        n = self.count or 1.0
        return {
            "path": self.path, "text": self.text, "kind": self.kind, "count": _int(self.count),
            "duration_s": self.sums["duration_s"] / n,
            "min_duration_s": self.min_duration_s, "max_duration_s": self.max_duration_s,
            "total_duration_s": self.sums["duration_s"],
            "end_reasons": {k: _int(v) for k, v in self.end_reasons.most_common()},
            "charge_capacity_ah": self.sums["charge_capacity_ah"] / n,
            "discharge_capacity_ah": self.sums["discharge_capacity_ah"] / n,
            "charge_energy_wh": self.sums["charge_energy_wh"] / n,
            "discharge_energy_wh": self.sums["discharge_energy_wh"] / n,
            "max_temperature_c": _none_if_nan(self.max_temperature_c),
            "n_samples": _int(self.sums["n_samples"]),
        }


def _nanmax(a: float, b: float) -> float:
    if math.isnan(a):
        return b
    return a if math.isnan(b) else max(a, b)


def _int(x: float) -> int | float:
    return int(x) if x < 2**53 else float(x)  # JSON: exact below 2**53


def _none_if_nan(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _walk_entries(entries: list, times: float, visit) -> None:
    for e in entries:
        if isinstance(e, Block):
            _walk_entries(e.entries, times * e.times, visit)
        else:
            visit(e, times)


def fold_steps(entries: list) -> list[StepFold]:
    folds: dict[tuple[str, str], StepFold] = {}

    def visit(r: StepResult, times: float) -> None:
        # by place and text: every step of a Python procedure has the place "python"
        f = folds.get((r.path, r.text))
        if f is None:
            f = folds[(r.path, r.text)] = StepFold(r.path, r.text, r.kind)
        f.add(r, times)

    # A block's iteration was simulated once (its results are in the walk as themselves)
    # and the block stands for `times` more.
    _walk_entries(entries, 1.0, visit)
    return list(folds.values())


def cycle_rows(entries: list) -> list[dict[str, Any]]:
    """Per cycle: capacity, energy, efficiencies, duration. Counted blocks give one row
    per cycle of the repeated iteration, with `repeats` (the cycles it stands for)."""
    rows: dict[tuple, dict[str, Any]] = {}
    order: list[tuple] = []

    def row(key: tuple, first: int, repeats: float, every: int) -> dict[str, Any]:
        r = rows.get(key)
        if r is None:
            r = rows[key] = {"cycle_index": first, "repeats": repeats, "every": every,
                             **dict.fromkeys(_SUMS, 0.0)}
            order.append(key)
        return r

    def add(entries: list, mapping, repeats: float, every: int, tag: tuple,
            scale: float) -> None:
        for e in entries:
            if isinstance(e, Block) and e.cycles == 0:
                # iterations inside one cycle (a loop with cycle: false): they add to it
                add(e.entries, mapping, repeats, every, tag, scale * e.times)
            elif isinstance(e, Block):
                # Repetition k of the iteration has its cycles k x e.cycles later; rows show
                # the first counted repetition's. Steps that continued the cycle open when
                # the iteration began go to the last cycle of a repetition (the one they
                # continue): as many of them, so every sum stays exact.
                def shifted(c: int, e: Block = e, outer=mapping) -> int:
                    if e.continues and c == e.start_cycle:
                        c += e.cycles
                    return outer(c + e.cycles)

                add(e.entries, shifted, repeats * e.times, e.cycles if repeats == 1 else 0,
                    tag + (id(e),), scale)
            else:
                c = mapping(e.cycle_index)
                r = row(tag + (c,), c, repeats, every)
                for k in _SUMS:
                    v = getattr(e, k)
                    if not math.isnan(v):
                        r[k] += v * scale

    add(entries, lambda c: c, 1, 1, (), 1.0)
    order = _merge_covered(rows, order)
    complete = _complete_cycles(entries)
    out = []
    for key in order:
        r = rows[key]
        charge, discharge = r["charge_capacity_ah"], r["discharge_capacity_ah"]
        cwh, dwh = r["charge_energy_wh"], r["discharge_energy_wh"]
        # As a run's summary: efficiencies of complete cycles only (a first charge from
        # wherever the cell was would read ~200 %). A counted row repeats an iteration that
        # followed one just like it, so it is complete when its template is.
        whole = r["repeats"] != 1 or r["cycle_index"] in complete
        r["complete"] = whole
        r["coulombic_efficiency"] = discharge / charge if charge > 0 and whole else None
        r["energy_efficiency"] = dwh / cwh if cwh > 0 and whole else None
        r["repeats"] = _int(r["repeats"])
        r["n_samples"] = _int(r["n_samples"])
        out.append(r)
    return out


def _complete_cycles(entries: list) -> set[int]:
    """The simulated cycles that are complete (store/run_summary.py `complete_cycles`)."""
    from labctl.store.run_summary import complete_cycles

    simulated = [e for e in entries if not isinstance(e, Block)]  # in the order they ran
    keys = ("cycle_index", "charge_capacity_ah", "discharge_capacity_ah", "end_kind",
            "end_voltage_v")
    return set(complete_cycles({k: [getattr(e, k) for e in simulated] for k in keys}))


def _merge_covered(rows: dict[tuple, dict[str, Any]], order: list[tuple]) -> list[tuple]:
    """A single cycle's row (steps continuing a cycle that a counted row stands for) goes
    into that row, weighted by 1/repeats so that every total stays exact."""
    counted = [rows[k] for k in order if rows[k]["repeats"] != 1 and rows[k]["every"]]
    kept = []
    for key in order:
        r = rows[key]
        home = None
        if r["repeats"] == 1:
            for b in counted:
                step, first = b["every"], b["cycle_index"]
                k, rest = divmod(r["cycle_index"] - first, step)
                if rest == 0 and 0 <= k < b["repeats"]:
                    home = b
                    break
        if home is None:
            kept.append(key)
            continue
        for name in _SUMS:
            home[name] += r[name] / home["repeats"]
    return kept


def _results(entries: list) -> list[StepResult]:
    out: list[StepResult] = []
    _walk_entries(entries, 1.0, lambda r, t: out.append(r))
    return out


# -- margins -------------------------------------------------------------------------------

_MARGINS = (
    # name, extreme key, limit attribute, sign of the extreme, unit
    ("max_voltage", "max_voltage_v", "max_voltage_v", 1.0, "V"),
    ("min_voltage", "min_voltage_v", "min_voltage_v", -1.0, "V"),
    ("charge_current", "charge_current_a", "max_charge_current_a", 1.0, "A"),
    ("discharge_current", "discharge_current_a", "max_discharge_current_a", 1.0, "A"),
    ("max_temperature", "max_temperature_c", "max_temperature_c", 1.0, "°C"),
    ("min_temperature", "min_temperature_c", "min_temperature_c", -1.0, "°C"),
)


_TRIPPED = re.compile(r"safety: (?:cell )?(charge current|discharge current|voltage|"
                      r"temperature) (?:.*? (>|<)=? |(rose|fell) to )")


def tripped_limit(reason: str) -> str | None:
    """The margin (`_MARGINS` name) a step's safety end passed, from its reason
    ("safety: temperature 27.04 °C > 27 °C", "safety: voltage fell to its limit of 2.7 V")."""
    m = _TRIPPED.match(reason)
    if m is None:
        return None
    quantity, op, verb = m.groups()
    if "current" in quantity:
        return quantity.replace(" ", "_")
    upper = op == ">" or verb == "rose"
    return f"{'max' if upper else 'min'}_{quantity}"


def margins(extremes: dict[str, Extreme], safety: Any,
            tripped: frozenset[str] = frozenset()) -> dict[str, dict[str, Any]]:
    """The smallest distance to each safety limit over the whole plan, and where.

    `tripped`: the limits a step ended on. The simulator ends a step at the crossing
    itself, where the sampled value may sit a hair inside the limit: their margin is 0
    ("reached"), as the run stops there. A current that never flows in a direction is 0 A
    in it (not a negative "closest" value)."""
    out: dict[str, dict[str, Any]] = {}
    for name, key, attr, sign, unit in _MARGINS:
        e = extremes.get(key)
        limit = float(getattr(safety, attr))
        if e is None or not math.isfinite(e.value) or not math.isfinite(limit):
            continue
        value = sign * e.value
        if name.endswith("_current"):
            value = max(value, 0.0)
        margin = (limit - value) if sign > 0 else (value - limit)
        reached = name in tripped
        if reached:
            margin = min(margin, 0.0)
        out[name] = {"limit": limit, "value": value, "margin": margin, "unit": unit,
                     "reached": reached, "step_index": e.step_index, "path": e.path,
                     "text": e.text, "iteration": list(e.iteration),
                     "test_time_s": e.test_time_s}
    return out


# -- warnings ---------------------------------------------------------------------------------

# A lithium-ion cell's self-discharge, ~1-5 % of its capacity a month at room temperature
# (~14-70 uA per Ah), is the current a voltage hold levels off at: the cell keeps taking it.
# Below this many amperes per Ah of capacity a hold's `until` current is not reached in
# practice. The simulated cell has no self-discharge, so the plan warns from the text.
FLOAT_CURRENT_A_PER_AH = 1e-5


def float_current_warnings(folds: list[StepFold], steps_by_path: dict[str, Any],
                           capacity_ah: float) -> list[str]:
    """Holds to a current below a real cell's self-discharge: they would not end on it."""
    from labctl.capabilities.steps import ElectricalStep, Mode, Quantity

    floor = FLOAT_CURRENT_A_PER_AH * capacity_ah
    out = []
    for f in folds:
        step = steps_by_path.get(f.path)
        if not isinstance(step, ElectricalStep) or step.mode is not Mode.VOLTAGE:
            continue
        for cond in step.until:
            if cond.quantity is Quantity.CURRENT and cond.op == "<=" and cond.value < floor:
                out.append(f"{f.path} {f.text!r}: a real cell's hold current levels off at its "
                           f"self-discharge, about {floor:.2g} A for {capacity_ah:g} Ah, above "
                           f"{cond.value:.3g} A: the hold would run until its time limit or "
                           "the channel's maximum step time (the simulated cell has no "
                           "self-discharge; the plan's duration for it is too short)")
    return out


def step_warnings(folds: list[StepFold], steps_by_path: dict[str, Any]) -> list[str]:
    """Steps that end on a safety limit, on their time limit instead of their `until`, or
    whose `until` the model never reaches."""
    out = []
    for f in folds:
        step = steps_by_path.get(f.path)
        # the cell's own voltage limits are added to every step as implied conditions
        own_until = [c for c in getattr(step, "until", ()) if not _implied(c)]
        for reason, n in f.end_reasons.items():
            kind, _, why = reason.partition(": ")
            where = f"{f.path} {f.text!r}"
            times = "" if f.count <= 1 else f" ({_int(n)} of {_int(f.count)} times)"
            if kind == "safety":
                out.append(f"{where} ends on a safety limit{times}: {why}")
            elif kind == "condition" and "cell limit" in why:
                if n == 1 and f.count > 1 and ".steps[" in f.path:
                    # Once in a loop: the pulse or profile the loop repeats "until empty",
                    # cut by the cell's limit to end it (GITT, drive cycles). Not a warning.
                    continue
                out.append(f"{where} ends on the cell's limit instead of its own end{times}: "
                           f"{why}")
            elif kind == "limit":
                out.append(f"{where}: the model never reaches its until{times}; only the "
                           f"channel's limit ends it: {why}")
            elif kind == "time" and own_until and "counted" not in why:
                out.append(f"{where} ends on its time limit instead of its until{times}")
    return out


@dataclass
class PlanReport:
    procedure: str
    cell: str
    station: str
    status: str
    reason: str
    duration_s: float
    n_samples: float
    n_steps: float
    disk_bytes: float
    steps: list[dict[str, Any]]
    cycles: list[dict[str, Any]]
    max_temperature_c: float | None
    margins: dict[str, dict[str, Any]]
    warnings: list[str]
    notes: list[str]
    approximate: bool
    max_duration_s: float | None
    refusal: str | None  # why validate/run refuse it (None = within the ceilings)
    planning_wall_s: float
    started_unix_s: float
    elsewhere_bytes: float = 0.0  # records and frame logs (in disk_bytes already)
    journal_bytes_per_sample: float | None = None  # packed, of the simulated samples

    @property
    def expected_end_unix_s(self) -> float:
        return self.started_unix_s + min(self.run_duration_s, 1e12)

    @property
    def run_duration_s(self) -> float:
        """How long the run would last: max_duration stops it if the plan is longer."""
        if self.max_duration_s is not None:
            return min(self.duration_s, self.max_duration_s)
        return self.duration_s

    @property
    def run_samples(self) -> float:
        """Samples the run records: those of the plan, in proportion when max_duration
        stops it early."""
        if self.duration_s > self.run_duration_s > 0:
            return self.n_samples * self.run_duration_s / self.duration_s
        return self.n_samples

    @property
    def run_disk_bytes(self) -> float:
        """Bytes the run leaves, in proportion when max_duration stops it early."""
        if self.duration_s > self.run_duration_s > 0:
            share = self.run_duration_s / self.duration_s
            return disk_bytes(self.run_samples, self.n_steps * share,
                              self.elsewhere_bytes * share, self.journal_bytes_per_sample)
        return self.disk_bytes

    def as_dict(self) -> dict[str, Any]:
        end = expected_end(self)
        return {
            "procedure": self.procedure, "cell": self.cell, "station": self.station,
            "status": self.status, "reason": self.reason,
            "duration_s": self.duration_s, "run_duration_s": self.run_duration_s,
            "expected_end": end, "max_duration_s": self.max_duration_s,
            "n_samples": _int(self.n_samples), "n_steps": _int(self.n_steps),
            "disk_bytes": _int(self.disk_bytes),
            "run_samples": _int(self.run_samples), "run_disk_bytes": _int(self.run_disk_bytes),
            "max_temperature_c": self.max_temperature_c,
            "margins": self.margins, "steps": self.steps, "cycles": self.cycles,
            "warnings": self.warnings, "notes": self.notes, "approximate": self.approximate,
            "refused": self.refusal, "planning_wall_s": self.planning_wall_s,
        }


def build_report(outcome: WalkOutcome, *, proc: Any, cell: Any, station: Any,
                 ceilings: Ceilings, started_unix_s: float) -> PlanReport:
    from labctl.procedures.tree import leaves

    folds = fold_steps(outcome.entries)
    n_samples = sum(f.sums["n_samples"] for f in folds)
    n_steps = sum(f.count for f in folds)
    tree = proc.extra.get("tree")
    steps_by_path = {leaf.path: leaf.step for leaf in leaves(tree)} if tree is not None else {}
    warnings = step_warnings(folds, steps_by_path) + float_current_warnings(
        folds, steps_by_path, float(cell.capacity_ah))
    if outcome.status in ("aborted", "faulted"):
        warnings.insert(0, f"the run would stop {outcome.status}: {outcome.reason}")
    elif outcome.status in ("refused", "truncated"):
        warnings.insert(0, outcome.reason)
    limit = proc.max_duration_s
    if limit is not None and outcome.duration_s > limit:
        warnings.append(f"the procedure needs {human_duration(outcome.duration_s)}, longer than "
                        f"its max_duration ({human_duration(limit)}): the run will be stopped "
                        "then")
    elif limit is None and outcome.duration_s > WARN_DURATION_S:
        warnings.append(f"the procedure would run {human_duration(outcome.duration_s)} "
                        f"({outcome.duration_s:,.0f} s), longer than 30 days "
                        f"({WARN_DURATION_S:,.0f} s), and declares no max_duration")
    temps = [f.max_temperature_c for f in folds if not math.isnan(f.max_temperature_c)]
    status, reason = outcome.status, outcome.reason
    if limit is not None and outcome.duration_s > limit and status == "completed":
        # as the engine ends it (engine/runner.py): stopped, not completed
        status, reason = "aborted", (f"the run passes its maximum duration of "
                                     f"{human_duration(limit)} ({limit:,.0f} s)")
    # Records and frame logs of the simulated steps; steps counted rather than simulated
    # are taken to log as much each (what a skipped loop iteration repeats).
    elsewhere = outcome.elsewhere_bytes * (n_steps / outcome.simulated_steps
                                           if outcome.simulated_steps else 1.0)
    per_sample = journal_bytes_per_sample(station, outcome.journal_bytes_per_sample)
    report = PlanReport(
        procedure=proc.name, cell=cell.name, station=station.name,
        status=status, reason=reason, duration_s=outcome.duration_s,
        n_samples=n_samples, n_steps=n_steps,
        disk_bytes=disk_bytes(n_samples, n_steps, elsewhere, per_sample),
        elsewhere_bytes=elsewhere, journal_bytes_per_sample=per_sample,
        steps=[f.as_dict() for f in folds], cycles=cycle_rows(outcome.entries),
        max_temperature_c=max(temps) if temps else None,
        margins=margins(outcome.extremes, proc.safety, frozenset(filter(None, (
            tripped_limit(reason) for f in folds for reason in f.end_reasons)))),
        warnings=warnings,
        notes=list(outcome.notes), approximate=outcome.approximate, max_duration_s=limit,
        refusal=None, planning_wall_s=outcome.wall_s, started_unix_s=started_unix_s)
    report.refusal = ceilings.refusal(report)
    return report


def unplanned_report(prep: Any, ceilings: Ceilings, why: str, duration_s: float,
                     n_samples: float, refused: str | None = None) -> PlanReport:
    """What validate and run know of a procedure that cannot be planned (a cell without a
    model): no estimate, only the lower bounds of its duration and samples from its text
    (plan/bounds.py `text_lower_bounds`), which the ceilings are checked on."""
    proc = prep.procedure
    per_sample = journal_bytes_per_sample(prep.station, None)
    report = PlanReport(
        procedure=proc.name, cell=prep.cell.name, station=prep.station.name,
        status="refused" if refused else "unplanned", reason=refused or why,
        duration_s=duration_s, n_samples=n_samples, n_steps=0.0,
        disk_bytes=disk_bytes(n_samples, 0.0, 0.0, per_sample),
        journal_bytes_per_sample=per_sample,
        steps=[], cycles=[], max_temperature_c=None,
        margins={}, warnings=[], notes=[why], approximate=True,
        max_duration_s=proc.max_duration_s, refusal=None, planning_wall_s=0.0,
        started_unix_s=time.time())
    report.refusal = ceilings.refusal(report)
    return report


def estimate_json(report: PlanReport) -> dict[str, Any]:
    """`labctl validate --json`'s estimate: the run's duration, samples and disk (what
    max_duration leaves of the plan, as `run_*` in `labctl plan --json`); null figures and
    `unplanned` (why) when the procedure cannot be planned for this cell."""
    unplanned = report.status == "unplanned"
    # status: completed, aborted, faulted (how the planned run ends), truncated (planning
    # stopped after its time budget: the figures are lower bounds) or unplanned
    return {"status": report.status, "reason": report.reason,
            "duration_s": None if unplanned else report.run_duration_s,
            "n_samples": None if unplanned else _int(report.run_samples),
            "disk_bytes": None if unplanned else _int(report.run_disk_bytes),
            "approximate": report.approximate, "warnings": report.warnings,
            "unplanned": report.reason if unplanned else None}


def expected_end(report: PlanReport) -> str | None:
    """When the run would end if started now, in local time with its offset (ISO 8601)."""
    from datetime import datetime

    if report.run_duration_s >= 1e11:  # past the year 5000: no calendar date
        return None
    return datetime.fromtimestamp(report.expected_end_unix_s).astimezone().isoformat(
        timespec="seconds")


def human_duration(seconds: float) -> str:
    """3 h 20 min, 12.5 days, 3.2e+15 years: a duration as a person reads it."""
    if not math.isfinite(seconds):
        return "forever"
    if seconds < 60:
        return f"{seconds:.3g} s"
    if seconds < 3600:
        m, s = divmod(round(seconds), 60)
        return f"{m} min {s} s" if s else f"{m} min"
    if seconds < 2 * 86400:
        h, m = divmod(round(seconds / 60), 60)
        return f"{h} h {m} min" if m else f"{h} h"
    if seconds < 365.25 * 86400:
        return f"{seconds / 86400:.1f} days"
    years = seconds / (365.25 * 86400)
    return f"{years:.3g} years" if years < 1e6 else f"{years:.2e} years"


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000:
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} EB"


# Where validate's estimate line sends the reader for the warnings; the console puts its
# own words in its place (console/app.py), so it is named once, here.
WARNINGS_WHERE = "(labctl plan shows them)"


def one_line(report: PlanReport) -> str:
    """The estimate `labctl validate` prints after "ok"."""
    if report.status == "unplanned":
        text = "estimate: none (the cell file has no model to simulate; labctl plan says why)"
        if report.run_duration_s > 0:
            text += f"; at least {human_duration(report.run_duration_s)} (its timed rests alone)"
        return text
    n = report.run_samples
    samples = f"{n:,.0f}" if n < 1e12 else f"{n:.3g}"
    more = "more than " if report.status == "truncated" else ""
    text = (f"estimate: {more}{human_duration(report.run_duration_s)}, {more}{samples} "
            f"samples, {more}{human_bytes(report.run_disk_bytes)} on disk")
    if report.status == "truncated":
        text += " (planning stopped early: labctl plan gives the whole estimate)"
    if report.approximate:
        text += " (approximate)"
    if report.warnings:
        text += f"; {len(report.warnings)} warning{'s' if len(report.warnings) > 1 else ''} " \
                + WARNINGS_WHERE
    return text
