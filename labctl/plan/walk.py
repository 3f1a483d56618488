"""Run a compiled procedure on the twin station, fast: the engine without storage.

Each leaf step goes through the real engine (`Engine._run_planned`: the same step
checks, the same simulated channel, the same safety checks of every sample, the
same cycle counting), with a journal and a run folder that keep nothing. Only
the walk over the procedure's tree is this module's own, because it must be able
to *skip* iterations, which the engine's plan generator cannot:

- after an iteration of a `repeat` that left the bench exactly as the one before
  (same step results, same cell state) and whose `until` did not hold, every
  later iteration would be the same again, so the remaining ones are counted,
  not simulated (`Block(exact=True)`): a `repeat: 1000000000000` costs what two
  iterations cost;
- once the simulated time passes the planning horizon (the refusal ceiling, or
  `max_duration` when that is longer), the remaining iterations are assumed like
  the last one (`Block(exact=False)`, an approximation the report states);
- a timed step that would pass the horizon or make more samples than the budget
  is not simulated at all: its duration and sample count come from its time.

Python procedures have no tree: their generator is followed step by step until
the horizon.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from labctl.capabilities.cycler import EndKind
from labctl.engine.observer import RunObserver
from labctl.engine.runner import Engine
from labctl.errors import LabctlError, SafetyError
from labctl.plan.bounds import (
    BYTES_PER_CAN_FRAME,
    BYTES_PER_EXTRA_SNAPSHOT,
    RECORD_BYTES_PER_JSON_BYTE,
)
from labctl.plan.iterations import (
    MAX_STRIDE,
    ROUGH_MAX_STRIDE,
    ROUGH_STRIDE_CHANGE,
    STRIDE_CHANGE,
    Block,
    age_by,
    ageing_of,
    as_count,
    count_steps,
    same,
    scaled,
    signature_of,
    stride_length,
)
from labctl.plan.twin import twin_state
from labctl.procedures.conditions import MetricHistory, any_holds, iteration_metrics
from labctl.procedures.model import CompiledProcedure, PlannedStep
from labctl.procedures.tree import Leaf, Repeat
from labctl.records import StepResult

_STOPPING = (EndKind.SAFETY.value, EndKind.ABORTED.value, EndKind.FAULT.value)
SAMPLE_BUDGET = 50_000_000  # samples the planner simulates at most (beyond: counted)
STEP_BUDGET = 300_000  # steps the planner simulates at most (beyond: assumed like the last)
MAX_CLOCK_JUMP_S = 1e9  # longer skips are counted beside the clock (float precision)


@dataclass
class Extreme:
    """The largest value of a quantity met so far, and where."""

    value: float = -math.inf
    test_time_s: float = math.nan
    step_index: int = 0
    path: str = ""
    text: str = ""
    iteration: tuple[int, ...] = ()


@dataclass
class WalkOutcome:
    entries: list
    status: str  # completed | aborted | faulted | refused | truncated
    reason: str
    duration_s: float
    extremes: dict[str, Extreme]
    messages: list[tuple[float, str, str]]
    notes: list[str] = field(default_factory=list)
    approximate: bool = False
    wall_s: float = 0.0
    elsewhere_bytes: float = 0.0  # records and frame logs of the simulated steps
    simulated_steps: int = 0
    journal_bytes_per_sample: float | None = None  # of the simulated samples (None: none)


class _Nothing:
    """A journal that keeps nothing: record events (an ARC step's thermal table) only go
    to the observer, for the temperatures and the disk space they stand for."""

    def __init__(self, observer: ExtremesObserver) -> None:
        self.observer = observer

    def append_event(self, event: dict) -> None:
        if event.get("type") == "record":
            self.observer.record_event(event)

    def append_samples(self, columns: dict, unix_origin_s: float | None = None) -> None:
        self.observer.journaled(columns, unix_origin_s)

    def sync(self) -> None: ...

    def close(self) -> None: ...


class _NoRunDir:
    path = Path("/nonexistent/labctl-plan")  # never written: the planning engine overrides

    def append_log(self, line: str) -> None: ...


class _NoInbox:
    def poll(self, force: bool = False) -> None: ...


class ExtremesObserver(RunObserver):
    """Keeps the extreme voltage, currents and temperatures and where they happened."""

    KEYS = ("max_voltage_v", "min_voltage_v", "charge_current_a", "discharge_current_a",
            "max_temperature_c", "min_temperature_c")

    def __init__(self, engine_ref: list) -> None:
        self.extremes = {k: Extreme() for k in self.KEYS}
        self.where: tuple[int, str, str, tuple[int, ...]] = (0, "", "", ())
        self.n_samples = 0
        self.elsewhere_bytes = 0.0  # records and frame logs, on disk
        self.journal_bytes = 0  # the simulated samples' journal records, as the run packs them
        self.journal_rows = 0
        self.record_max_c: dict[int, float] = {}  # step -> hottest cell reading in its records
        self.snapshots_in_step = 0
        self.sample_budget = SAMPLE_BUDGET
        self._engine = engine_ref

    def step_started(self, step_index: int, cycle_index: int, planned: PlannedStep) -> None:
        self.where = (step_index, planned.path, planned.step.text, planned.iteration)
        self.snapshots_in_step = 0

    def snapshot(self) -> None:
        """The run would journal the instrument's state here (after a batch)."""
        self.snapshots_in_step += 1
        if self.snapshots_in_step > 1:  # the first is in the per-step bytes
            self.elsewhere_bytes += BYTES_PER_EXTRA_SNAPSHOT

    def samples(self, columns: dict[str, np.ndarray]) -> None:
        t = columns["test_time_s"]
        if not len(t):
            return
        self.n_samples += len(t)
        extremes = self.extremes
        # Each quantity as "larger is closer to a limit"; the sign is undone in the report.
        for name, low, high in (("voltage_v", "min_voltage_v", "max_voltage_v"),
                                ("current_a", "discharge_current_a", "charge_current_a"),
                                ("temperature_c", "min_temperature_c", "max_temperature_c")):
            values = columns[name]
            top, bottom = _FMAX(values), _FMIN(values)  # NaN-safe (no thermocouple)
            if top > extremes[high].value:  # rare after the first batches
                self._note(high, values, t, float(top))
            if -bottom > extremes[low].value:
                self._note(low, -values, t, float(-bottom))
        if self.n_samples > self.sample_budget and self._engine:
            self._engine[0].control.request_abort(
                f"plan: more than {self.sample_budget:,} samples simulated; the rest is counted")

    def journaled(self, columns: dict[str, np.ndarray], unix_origin_s: float | None) -> None:
        """The run would journal this block here: its bytes (packed, so they depend on
        which columns change within it: a rest's take half a discharge's)."""
        from labctl.store.journal import record_bytes

        n = len(columns["test_time_s"])
        if not n:
            return
        size = record_bytes(columns, unix_origin_s)
        # The twin measures without noise, an instrument never: a reading the twin holds
        # at one value (a rest's current) is counted whole, as the run will store it,
        # unless there is no reading at all (NaN throughout: no thermocouple).
        for name in ("voltage_v", "current_a", "temperature_c"):
            col = columns[name]
            if n > 1 and col[0] == col[-1] and (col == col[0]).all():
                size += 8 * (n - 1)
        self.journal_bytes += size
        self.journal_rows += n

    def record_event(self, event: dict) -> None:
        """A step's record rows: their size on disk and the cell temperatures in them (an
        abuse step follows the cell in its thermal records, far past its last sample)."""
        from labctl.store.journal_format import json_bytes

        self.elsewhere_bytes += len(json_bytes(event)) * RECORD_BYTES_PER_JSON_BYTE
        columns = event.get("columns") or {}
        temps = columns.get("cell_temperature_c")
        times = columns.get("test_time_s")
        if not temps or not times or len(temps) != len(times):
            return
        values = np.array([math.nan if x is None else x for x in temps], dtype=float)
        if np.isnan(values).all():
            return
        t = np.asarray(times, dtype=float)
        top, bottom = float(np.nanmax(values)), float(np.nanmin(values))
        step = int(event.get("step_index") or self.where[0])
        self.record_max_c[step] = max(top, self.record_max_c.get(step, -math.inf))
        if top > self.extremes["max_temperature_c"].value:
            self._note("max_temperature_c", values, t, top)  # _note skips NaN
        if -bottom > self.extremes["min_temperature_c"].value:
            self._note("min_temperature_c", -values, t, -bottom)

    def logged_elsewhere(self, step_index: int, what: str, count: int) -> None:
        if what == "can_frames":
            self.elsewhere_bytes += count * BYTES_PER_CAN_FRAME

    def _note(self, key: str, values: np.ndarray, t: np.ndarray, top: float) -> None:
        k = int(np.nanargmax(values))
        index, path, text, iteration = self.where
        self.extremes[key] = Extreme(top, float(t[k]), index, path, text, iteration)


_FMAX, _FMIN = np.fmax.reduce, np.fmin.reduce


class PlanEngine(Engine):
    """The engine with nothing stored and nothing to command it: only the twin runs."""

    def __init__(self, procedure: CompiledProcedure, station: Any, cell: Any,
                 observer: RunObserver) -> None:
        super().__init__(procedure=replace(procedure, max_duration_s=None), station=station,
                         cell=cell, journal=_Nothing(observer), rundir=_NoRunDir(),
                         unix_origin_s=time.time(), time_origin_s=station.clock.now(),
                         observer=observer)
        self.inbox = _NoInbox()
        self.messages: list[tuple[float, str, str]] = []
        self._short_batches_for_interlocks()  # as a run does: interlocks seen per sample

    def log(self, level: str, message: str) -> None:
        self.messages.append((self.test_time(), level, message))

    def _write_status(self, force: bool = False, state: str = "running") -> None:
        pass

    def _journal_state(self, index: int, cycler_state: dict) -> None:
        self.observer.snapshot()  # nothing written; its size counts in the disk estimate

    def run_one(self, planned: PlannedStep) -> StepResult:
        return self._run_planned(planned, None)


class _Stop(Exception):
    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


class Walker:
    def __init__(self, engine: PlanEngine, observer: ExtremesObserver, horizon_s: float,
                 rough: bool = False, budget_s: float | None = None):
        self.engine = engine
        self.observer = observer
        self.horizon_s = horizon_s
        self.clock = engine.clock
        self.origin = engine.clock.now()
        self.entries: list = []
        self.iterations: list[int] = []
        self.pending_new_cycle = False
        self.notes: list[str] = []
        self.approximate = False
        self.beside_clock_s = 0.0  # counted time too long to move the virtual clock by
        self.simulated_steps = 0
        self.strided: dict[str, tuple[int, int]] = {}  # loop -> (unused, iterations taken)
        self.stride_change, self.max_stride = ((ROUGH_STRIDE_CHANGE, ROUGH_MAX_STRIDE) if rough
                                               else (STRIDE_CHANGE, MAX_STRIDE))
        self.budget_s = budget_s
        self.deadline = math.inf if budget_s is None else time.perf_counter() + budget_s

    def elapsed(self) -> float:
        return self.clock.now() - self.origin + self.beside_clock_s

    def advance(self, seconds: float) -> None:
        """Time passes without simulation (counted steps, skipped iterations)."""
        if seconds <= MAX_CLOCK_JUMP_S and self.beside_clock_s == 0.0:
            self.clock.sleep_until(self.clock.now() + seconds)
            _resync(self.engine.station)
        else:
            self.beside_clock_s += seconds

    # -- leaves ------------------------------------------------------------------------------
    def leaf(self, planned: PlannedStep, sinks: list[list]) -> StepResult:
        if time.perf_counter() > self.deadline:
            raise _Stop("truncated", f"planning stopped after {self.budget_s:g} s of computing, "
                                     f"before step {planned.step.text!r} ({planned.path}); "
                                     "the estimate covers the steps before it")
        counted = self._counted_only(planned)
        if counted is not None:
            result = counted
        else:
            self.simulated_steps += 1
            try:
                result = self.engine.run_one(planned)
            except SafetyError as exc:
                # as the engine: the run would stop here, aborted
                raise _Stop("aborted", f"step {planned.step.text!r} ({planned.path}) would be "
                                       f"rejected before it starts: {exc}") from None
            hot = self.observer.record_max_c.pop(result.step_index, math.nan)
            if not math.isnan(hot) and not hot <= result.max_temperature_c:  # hotter in its
                # records than in its samples, or no samples at all (NaN)
                result = replace(result, max_temperature_c=hot)
        if result.end_kind == EndKind.FAULT.value and str(_NoRunDir.path) in result.end_reason:
            # A step that reads the run's own records (a report over the run so far): there
            # are none in a plan. It is left out, and said so.
            self.notes.append(f"step {result.text!r} ({result.path}) reads the run's own "
                              "records, which a plan does not keep: not planned")
            result = replace(result, end_kind=EndKind.CONDITION.value,
                             end_reason="not planned (reads the run's records)")
        self.entries.append(result)
        for sink in sinks:
            sink.append(result)
        if result.end_kind in _STOPPING:
            if self.engine.control.abort_reason and "plan:" in self.engine.control.abort_reason:
                raise _Stop("truncated", self.engine.control.abort_reason)
            status = "faulted" if result.end_kind == EndKind.FAULT.value else "aborted"
            raise _Stop(status, f"step {result.text!r} ({result.path}): {result.end_reason}")
        return result

    def _counted_only(self, planned: PlannedStep) -> StepResult | None:
        """A timed step too long (past the horizon) or too finely logged to simulate:
        its result from its time alone, or None to simulate it."""
        step = planned.step
        duration = getattr(step, "duration_s", None)
        logging = getattr(step, "logging", None)
        if duration is None or logging is None:
            return None
        period = float(logging.period_s)
        samples = duration / period + 1.0 if period > 0 else math.inf
        beyond = self.elapsed() + duration > self.horizon_s
        budget = self.observer.n_samples + samples > self.observer.sample_budget
        if not (beyond or budget):
            return None
        if planned.new_cycle:
            self.engine.counter.start_new_cycle()
        self.engine.step_index += 1
        self.approximate = True
        why = "passes the planning horizon" if beyond else "would log too many samples to simulate"
        self.notes.append(f"step {step.text!r} ({planned.path}) {why}: counted from its time "
                          "(assumed to run it all), not simulated")
        start = self.elapsed()
        self.advance(duration)
        nan = math.nan
        return StepResult(self.engine.step_index, self.engine.counter.cycle_index, step.kind,
                          step.text, planned.path, EndKind.TIME.value, "time elapsed (counted)",
                          start, start + duration, duration, as_count(samples), 0.0, 0.0, 0.0,
                          0.0, nan, nan, nan, nan, nan, nan, nan)

    # -- the tree ------------------------------------------------------------------------------
    def walk(self, nodes: tuple, sinks: list[list]) -> None:
        for node in nodes:
            if isinstance(node, Leaf):
                new_cycle = self.pending_new_cycle
                self.pending_new_cycle = False
                self.leaf(PlannedStep(node.step, node.path, new_cycle, tuple(self.iterations)),
                          sinks)
            else:
                self.repeat(node, sinks)

    def repeat(self, node: Repeat, sinks: list[list]) -> None:
        history = MetricHistory()
        limit = node.cap if node.count is None else min(node.count, node.cap)
        previous = None
        loop_start = self.elapsed()
        i = 0
        while i < limit:
            i += 1
            results: list = []
            start = len(self.entries)
            t0 = self.elapsed()
            c0 = self.engine.counter.cycle_index
            # steps before the iteration's first new cycle continue the open one
            continues = self.engine.counter.active or not node.cycle
            self.iterations.append(i)
            if node.cycle:
                self.pending_new_cycle = True
            try:
                self.walk(node.body, sinks + [results])
            finally:
                self.iterations.pop()
            if node.until:
                history.append(iteration_metrics(results))
                if any_holds(node.until, history):
                    return
            left = limit - i
            if left <= 0:
                return
            # the bench's state first: with an ageing cell it differs at once, cheaply
            signature = (twin_state(self.engine.station), self.entries[start:], ageing_of(
                self.engine.station))
            exact = previous is not None and same(signature[0], previous[0], 1e-6) and same(
                signature_of(signature[1]), signature_of(previous[1]))
            # Without an until the loop's length is known: once it is sure to carry the
            # plan past the horizon there is nothing more to learn by simulating it.
            loop_s = self.elapsed() - loop_start
            beyond = (not node.until and i >= 2
                      and self.elapsed() + loop_s / i * left > self.horizon_s)
            if exact or beyond or self.elapsed() > self.horizon_s \
                    or self.simulated_steps > STEP_BUDGET:
                iteration = self.entries[start:]
                block = Block(iteration, left, self.elapsed() - t0,
                              self.engine.counter.cycle_index - c0, c0, continues,
                              node.path, exact)
                self._skip(block, results, sinks)
                return
            stride = 0 if node.until or previous is None else stride_length(signature, previous, left,
                                                                       self.stride_change,
                                                                       self.max_stride)
            if stride:
                # Slowly changing iterations (an ageing cell): the next `stride` are taken
                # like this one, the cell ages by as much as it did in it each time.
                iteration = self.entries[start:]
                block = Block(iteration, stride, self.elapsed() - t0,
                              self.engine.counter.cycle_index - c0, c0, continues,
                              node.path, False)
                per_iteration = {role: {k: v - previous[2].get(role, {}).get(k, 0.0)
                                        for k, v in age.items()}
                                 for role, age in signature[2].items()}
                self._skip(block, results, sinks, age_step=per_iteration)
                i += stride
                previous = None  # two simulated iterations in a row again before the next
                continue
            previous = signature

    def _skip(self, block: Block, results: list, sinks: list[list],
              age_step: dict | None = None) -> None:
        """Account for `block.times` more iterations without simulating them.

        `age_step`: per instrument, how much one iteration aged the cell (the simulated
        cell then ages by `times` as much, as if it had run them)."""
        engine = self.engine
        steps = count_steps(block.entries)
        engine.step_index += steps * block.times
        engine.counter.cycle_index += block.cycles * block.times
        self.advance(block.duration_s * block.times)
        if age_step:
            age_by(engine.station, age_step, block.times)
        self.entries.append(block)
        stand_in = scaled(results, block.times)
        if stand_in is not None:
            for sink in sinks:
                sink.append(stand_in)
        if age_step is not None:
            self.approximate = True
            simulated, taken = self.strided.get(block.path, (0, 0))
            self.strided[block.path] = (simulated, taken + block.times)
            return
        if block.exact:
            self.notes.append(f"{block.path}: iterations repeat identically from here; "
                              f"{block.times:,} more counted, not simulated")
        else:
            self.approximate = True
            self.notes.append(f"{block.path}: {block.times:,} more iterations assumed like the "
                              "last one simulated (approximate: the plan is past its horizon "
                              f"of {self.horizon_s / 86400:.0f} days or its step budget, so "
                              "ageing and the loop's until are not followed)")


def walk_procedure(proc: CompiledProcedure, station: Any, cell: Any, horizon_s: float,
                   rough: bool = False, budget_s: float | None = None) -> WalkOutcome:
    """Plan `proc` on an open twin `station`; the station is closed afterwards."""
    engine_ref: list = []
    observer = ExtremesObserver(engine_ref)
    engine = PlanEngine(proc, station, cell, observer)
    engine_ref.append(engine)
    walker = Walker(engine, observer, horizon_s, rough, budget_s)
    wall = time.perf_counter()
    status, reason = "completed", "all steps done"
    tree = proc.extra.get("tree")
    try:
        if tree is not None:
            walker.walk(tree, [])
        else:
            _follow_generator(walker, proc)
    except _Stop as stop:
        status, reason = stop.status, stop.reason
    except LabctlError as exc:  # e.g. a Python procedure that raises: the run would fault
        status, reason = "faulted", str(exc)
    except Exception as exc:  # as the engine does: a bug in a procedure faults its run
        status, reason = "faulted", f"internal error: {type(exc).__name__}: {exc}"
    finally:
        for path, (_, taken) in walker.strided.items():
            walker.notes.append(
                f"{path}: the iterations change only slowly (the cell ages); {taken:,} of "
                f"them were not simulated but taken like the one before, the cell ageing "
                f"as much each time (approximate, within ~{walker.stride_change:.1%})")
        _release_chamber(station)
        station.close()
    return WalkOutcome(walker.entries, status, reason, walker.elapsed(), observer.extremes,
                       engine.messages, walker.notes, walker.approximate,
                       time.perf_counter() - wall, observer.elsewhere_bytes,
                       walker.simulated_steps,
                       observer.journal_bytes / observer.journal_rows
                       if observer.journal_rows else None)


def _follow_generator(walker: Walker, proc: CompiledProcedure) -> None:
    plan = proc.plan()
    try:
        planned = next(plan)
    except StopIteration:
        return
    while True:
        result = walker.leaf(planned, [])
        if walker.elapsed() > walker.horizon_s:
            walker.approximate = True
            walker.notes.append("a Python procedure: followed only up to the planning horizon")
            raise _Stop("truncated", f"the procedure runs past the planning horizon "
                                     f"({walker.horizon_s / 86400:g} days); not followed further")
        try:
            planned = plan.send(result)
        except StopIteration:
            return


def _release_chamber(station: Any) -> None:
    if "chamber" in station.spec.instruments:
        from labctl.engine.sharing import channel_of, shared_chamber

        shared_chamber(station.spec).release(channel_of(station.spec))


def _resync(station: Any) -> None:
    """After a jump of the clock over skipped iterations the instruments carry on from the
    state they were in (their state time moves to now: no relaxation over the jump)."""
    for inst in station.instruments.values():
        get, put = getattr(inst, "get_state", None), getattr(inst, "set_state", None)
        if get is not None and put is not None:
            try:
                put(get())
            except Exception:  # a stand-in without a usable state: it keeps its own
                pass
