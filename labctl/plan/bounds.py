"""The ceilings a procedure must stay under to be run, and the disk-space estimate.

`labctl validate` and `labctl run` refuse (exit 2, with the plan's estimate) a
procedure whose plan

- runs longer than DURATION_CEILING_S (one year) and declares no `max_duration`
  (with one, the run stops then, so the duration is bounded);
- would record more than SAMPLE_CEILING samples within the time it runs
  (a `max_duration` does not lift this: the disk must hold them);
- logs any step faster than MIN_LOG_PERIOD_S (1 ms), whatever its length.

`labctl plan` shows the same verdict and its reasons but exits 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

DURATION_CEILING_S = 365.0 * 86400.0
SAMPLE_CEILING = 500_000_000  # ~56 GB of journal and tables
MIN_LOG_PERIOD_S = 1e-3
MAX_STEP_S = 30 * 86400.0  # the simulated channel's own cap on a step nothing else ends

# Measured on simulated runs (journal.bin + Parquet tables, labctl 0.x): a sample is its
# journal bytes plus ~32 bytes of compressed timeseries; a step adds its events and its
# rows (~1.9 kB); inputs, metadata and empty tables ~20 kB. Within ~20 %. A sample's
# journal bytes are what the plan's simulated blocks pack to (store/journal_packing.py:
# ~24-50 bytes by the step); without a plan, the most a row can take; in real time, a
# record a sample.
JOURNAL_ROW_BYTES = 80
TABLE_BYTES_PER_SAMPLE = 32
# A run in real time hands its samples to the journal a few at a time (a driver's batch
# every 0.2 s at most, drivers/software_loop.py), too few for packing to pay: each a
# record of its own at worst, a 13-byte header, a 4-byte row count and the 80-byte row.
REALTIME_JOURNAL_BYTES_PER_SAMPLE = 97

BYTES_PER_STEP = 1900
BYTES_FIXED = 20_000
# What steps log besides samples, measured the same way: a record table's rows (an ARC
# step's thermal table) are their JSON in the journal plus ~a third of that as Parquet in
# RUN/records/ (ARC, DSC: 1.32-1.33 x); a CAN frame (BMS steps) ~33 bytes in RUN/can/ (BLF,
# decoded signals, DBC and map: 690,643 bytes for 20,964 frames).
RECORD_BYTES_PER_JSON_BYTE = 1.33
BYTES_PER_CAN_FRAME = 33
# An instrument snapshot journalled after a batch: one a step is in BYTES_PER_STEP; a step
# that runs the cycler in many short pieces (an overcharge, every 5 s) journals one each
# (585-853 bytes measured).
BYTES_PER_EXTRA_SNAPSHOT = 700


def journal_bytes_per_sample(station: Any, simulated: float | None) -> float | None:
    """The journal bytes a sample takes in a run on `station`: what the twin's blocks pack
    to (`simulated`) where the run goes in virtual time, as the twin does; the bound of a
    record per sample where it goes in real time."""
    if getattr(station, "clock", "virtual") == "realtime":
        return REALTIME_JOURNAL_BYTES_PER_SAMPLE
    return simulated


def disk_bytes(n_samples: float, n_steps: float, elsewhere_bytes: float = 0.0,
               sample_journal_bytes: float | None = None) -> float:
    """Bytes a run with this many samples and steps (and `elsewhere_bytes` of records and
    frame logs) leaves in its run folder."""
    per_sample = TABLE_BYTES_PER_SAMPLE + (JOURNAL_ROW_BYTES if sample_journal_bytes is None
                                           else sample_journal_bytes)
    return min(1e308, BYTES_FIXED + per_sample * n_samples + BYTES_PER_STEP * n_steps
               + elsewhere_bytes)


@dataclass(frozen=True)
class Ceilings:
    """The bounds a run must stay under to start (duration, samples, logging period)."""

    duration_s: float = DURATION_CEILING_S
    samples: float = SAMPLE_CEILING
    min_log_period_s: float = MIN_LOG_PERIOD_S

    def horizon_s(self, max_duration_s: float | None) -> float:
        """How far the planner simulates before it counts: a little past whichever
        bound decides (past the ceiling nothing changes the verdict)."""
        return 1.01 * max(self.duration_s, max_duration_s or 0.0)

    def near(self, report: Any, within: float = 0.2) -> bool:
        """True when a rough plan is too close to a ceiling to decide (either way)."""
        def close(value: float, ceiling: float) -> bool:
            return abs(value - ceiling) <= within * ceiling

        return ((report.max_duration_s is None and close(report.duration_s, self.duration_s))
                or close(report.run_samples, self.samples))

    def refusal(self, report: Any) -> str | None:
        """Why a run of this plan is refused, or None."""
        from labctl.plan.report import human_duration

        if report.status == "refused":  # a step logged faster than the shortest period
            return report.reason
        # Without a model only lower bounds are known (plan/report.py unplanned_report).
        least = "at least " if report.status == "unplanned" else ""
        if report.max_duration_s is None and report.duration_s > self.duration_s:
            return (f"it would run {least}{human_duration(report.duration_s)}, longer than the "
                    f"{human_duration(self.duration_s)} labctl runs without a max_duration; "
                    "declare 'max_duration:' in the procedure to bound it")
        samples = report.run_samples  # a max_duration stops the run, and its samples
        if samples > self.samples:
            return (f"it would record {least}{samples:.3g} samples, more than the {self.samples:,.0f} "
                    "a run may; log less often")
        return None


def too_fast_logging(tree: Any, ceilings: Ceilings) -> str | None:
    """The first step logged faster than the shortest period allowed, as a refusal."""
    if tree is None:
        return None
    from labctl.procedures.tree import leaves

    for leaf in leaves(tree):
        logging = getattr(leaf.step, "logging", None)
        period = getattr(logging, "period_s", None)
        if period is not None and period < ceilings.min_log_period_s:
            source = getattr(leaf.step, "source", None)
            line = getattr(source, "line", None)
            at = f" (line {line}, column {source.column})" if line and source.column else \
                (f" (line {line})" if line else "")
            return (f"{leaf.path}{at} {leaf.step.text!r} logs every {period:g} s; the shortest "
                    f"logging period is {ceilings.min_log_period_s * 1000:g} ms")
    return None


def _sum_over_tree(tree: Any, leaf_bound: Any, times_of: Any) -> tuple[float, float]:
    """(duration, samples) summed over a compiled tree: `leaf_bound(step)` gives a leaf's,
    `times_of(repeat)` how many times a loop's body counts."""
    from labctl.procedures.tree import Leaf

    def bound(nodes: tuple) -> tuple[float, float]:
        total_t = total_n = 0.0
        for node in nodes:
            if isinstance(node, Leaf):
                t, n = leaf_bound(node.step)
            else:
                t, n = bound(node.body)
                times = times_of(node)
                t, n = t * times, n * times
            total_t += t
            total_n += n
        return total_t, total_n

    return bound(tree)


def static_bounds(tree: Any) -> tuple[float, float]:
    """Upper bounds of (duration, samples) from the procedure's text alone: every timed
    step runs its time, every other electrical step the channel's maximum step time.
    A chamber step lasts at most its timeout. Infinite when unknown (plugin step types,
    Python procedures)."""
    if tree is None:
        return math.inf, math.inf
    from labctl.capabilities.steps import ChamberStep, ElectricalStep

    def leaf_bound(step: Any) -> tuple[float, float]:
        if isinstance(step, ChamberStep):
            t = step.timeout_s if step.wait else 0.0
            return t, t / step.logging.period_s + 1.0
        if not isinstance(step, ElectricalStep):
            return math.inf, math.inf
        t = step.duration_s if step.duration_s is not None else MAX_STEP_S
        if step.profile is not None and step.duration_s is None:
            t = max(t, float(step.profile.time_s[-1]))
        extra = 1.0 + (t / 0.1 if (step.logging.delta_v or step.logging.delta_i) else 0)
        return t, t / step.logging.period_s + extra

    return _sum_over_tree(tree, leaf_bound,
                          lambda loop: loop.cap if loop.count is None else min(loop.count, loop.cap))


def text_lower_bounds(tree: Any) -> tuple[float, float]:
    """Lower bounds of (duration, samples) from the procedure's text alone, for when it
    cannot be simulated (a cell file without a model): only timed rests without an `until`
    of their own count (nothing but the time ends them), and a loop with an `until` counts
    once (it may stop after its first iteration). Zero for Python procedures."""
    if tree is None:
        return 0.0, 0.0
    from labctl.capabilities.steps import ElectricalStep, Mode

    def leaf_bound(step: Any) -> tuple[float, float]:
        if (isinstance(step, ElectricalStep) and step.mode is Mode.REST
                and step.duration_s is not None and all(_implied(c) for c in step.until)):
            return step.duration_s, step.duration_s / step.logging.period_s + 1.0
        return 0.0, 0.0

    return _sum_over_tree(tree, leaf_bound, lambda loop: 1 if loop.until or loop.count is None
                          else min(loop.count, loop.cap))


def _implied(condition: Any) -> bool:
    """A condition the compiler adds to every step (the cell's voltage limits)."""
    return str(getattr(condition, "text", "")).startswith("cell limit")
