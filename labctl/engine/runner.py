"""The engine: runs a procedure's plan on a station, one leaf step at a time.

It is the only code that touches instruments during a run. For every step it
checks the step against the limits again (Python procedures can only be
checked now), streams the instrument's samples into the journal, double-checks
every sample against the safety limits, and records why the step ended. Any
abort, fault or signal leaves every output in its safe state, and says so in
the journal and the log.
"""

from __future__ import annotations

import json
import math
import os
import time
import traceback
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from labctl.capabilities.cycler import EndKind, SampleBatch, StepEnd
from labctl.capabilities.steps import ChamberStep, ElectricalStep, is_plugin_step
from labctl.cells.spec import CellSpec
from labctl.engine.accounting import CycleCounter, StepAccounting, truncate
from labctl.engine.control import CommandInbox, RunControl
from labctl.engine.observer import RunObserver
from labctl.engine.remaining import remaining_step
from labctl.errors import InstrumentError, LabctlError, SafetyError, StorageError
from labctl.procedures import check_step
from labctl.procedures.model import CompiledProcedure, PlannedStep
from labctl.records import StepResult
from labctl.stations.build import Station
from labctl.store.step_summary import StepAccumulator

if TYPE_CHECKING:
    from labctl.engine.resume import Continuation, ResumeState

_PAUSED = object()  # internal: a segment stopped because a pause was requested
_STOPPED = frozenset({EndKind.SAFETY.value, EndKind.ABORTED.value})  # a step that ends the run
_FAULTED = EndKind.FAULT.value
STATUS_INTERVAL_S = 1.0


class Engine:
    def __init__(
        self,
        *,
        procedure: CompiledProcedure,
        station: Station,
        cell: CellSpec,
        journal: Any,
        rundir: Any,
        unix_origin_s: float,
        time_origin_s: float = 0.0,
        observer: RunObserver | None = None,
        control: RunControl | None = None,
        resume: ResumeState | None = None,
    ):
        self.proc = procedure
        self.station = station
        self.cell = cell
        self.journal = journal
        self.rundir = rundir
        self.clock = station.clock
        self.unix_origin_s = unix_origin_s
        self.time_origin_s = time_origin_s
        self.observer = observer or RunObserver()
        self.control = control or RunControl()
        self.resume = resume
        self.counter = resume.counter if resume else CycleCounter()
        self.step_index = resume.last_step_index if resume else 0
        self._status_written = 0.0
        self._live: dict[str, Any] = {}
        self.storage_error: str | None = None  # set when the journal could not be written
        self._reconnects: dict[str, int] = {}  # reconnection attempts used, per role
        self.inbox = CommandInbox(rundir.path, self.control, self._log_command)
        self._created_unix_s = time.time()
        self._last_sample_s: float | None = None  # test time of the last journaled sample
        # check_step's answer per distinct step: a pure function of the step and of this
        # engine's cell, station and limits, and a cycle-life run repeats a handful of steps.
        self._checked: dict[Any, list] = {}
        self._checked_by_id: dict[int, tuple[Any, list]] = {}  # the same, by identity
        # Finite voltage and current limits: a batch inside them has no NaN or infinite
        # voltage or current either, so the check for unusable samples can be skipped.
        self._limits_prove_numbers = procedure.safety.bounds_voltage_and_current()

    # -- helpers -----------------------------------------------------------------------------
    def test_time(self) -> float:
        return self.clock.now() - self.time_origin_s

    def log(self, level: str, message: str) -> None:
        try:
            self.journal.append_event(
                {"type": "log", "level": level, "message": message, "test_time_s": self.test_time()}
            )
        except StorageError as exc:  # the disk is full: the bench must still be made safe
            self.storage_error = self.storage_error or str(exc)
        self.rundir.append_log(f"[{self.test_time():12.1f} s] {level.upper():7s} {message}")
        self.observer.log(level, message)

    def _log_command(self, command: str, reason: str) -> None:
        self.log("info", f"command received: {command}" + (f" ({reason})" if reason else ""))

    def make_safe(self, why: str) -> None:
        failures = self.station.safe_state()
        if failures:
            self.log("error", f"{why}; could NOT make safe: {'; '.join(failures)}")
        else:
            self.log("warning", f"{why}; all outputs set to a safe state")

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> tuple[str, str]:
        """Execute the plan; returns (status, reason). Outputs are safe afterwards."""
        if self.resume:
            self.journal.append_event(
                {"type": "resume", "test_time_s": self.test_time(), "session": self.resume.session}
            )
            self.log("info", f"resumed (session {self.resume.session})")
            for note in self.resume.notes:
                self.log("info", note)
            stale = self.inbox.discard_pending(before_unix_s=self._created_unix_s)
            if stale:
                self.log("warning", f"ignored command(s) queued before this session: "
                                    f"{', '.join(stale)}")
        else:
            self.journal.append_event(
                {"type": "run_start", "test_time_s": self.test_time(), "unix_time_s": self.unix_origin_s}
            )
        self._short_batches_for_interlocks()
        self.observer.run_started({"procedure": self.proc.name})
        try:
            status, reason = self._execute()
        except KeyboardInterrupt:
            status, reason = "aborted", "stopped by user (Ctrl-C)"
        except SafetyError as exc:
            status, reason = "aborted", f"step rejected before it started: {exc}"
        except LabctlError as exc:
            status, reason = "faulted", str(exc)
        except Exception as exc:  # a bug must still leave the bench safe and the data kept
            status, reason = "faulted", f"internal error: {type(exc).__name__}: {exc}"
            self.rundir.append_log(traceback.format_exc())
        if "chamber" in self.station.spec.instruments:
            from labctl.engine.sharing import channel_of, shared_chamber

            shared_chamber(self.station.spec).release(channel_of(self.station.spec))
        if status == "completed":
            self.station.safe_state()
            self.log("info", "run completed; outputs off")
        else:
            self.make_safe(f"run {status}: {reason}")
        try:
            self.journal.append_event(
                {"type": "run_end", "status": status, "reason": reason, "test_time_s": self.test_time()}
            )
            self.journal.sync()
        except StorageError as exc:
            self.storage_error = self.storage_error or str(exc)
            self.rundir.append_log(f"could not record the end of the run: {exc}")
        self._write_status(force=True, state=status)
        self.observer.run_ended(status, reason)
        return status, reason

    def _execute(self) -> tuple[str, str]:
        plan = self.proc.plan()
        replay = list(self.resume.results) if self.resume else []
        continuation = self.resume.continuation if self.resume else None
        try:
            planned = next(plan)
        except StopIteration:
            return "completed", "the procedure has no steps"
        k = 0
        first_step = True
        while True:
            if k < len(replay):
                result = replay[k]
                if result.text != planned.step.text:
                    raise LabctlError(
                        f"cannot resume: step {result.step_index} was {result.text!r} in the run "
                        f"but the procedure now gives {planned.step.text!r} (was it edited?)"
                    )
                k += 1
            else:
                # Before the first step, then at most every POLL_INTERVAL_S (a listdir per
                # step cost more than many short steps themselves).
                self.inbox.poll(force=first_step)
                first_step = False
                if self.control.pause_requested:
                    self._wait_while_paused()
                if self.control.abort_reason:
                    return "aborted", self.control.abort_reason
                result = self._run_planned(planned, continuation)
                continuation = None
                if result.end_kind in _STOPPED:
                    return "aborted", result.end_reason
                if result.end_kind == _FAULTED:
                    return "faulted", result.end_reason
            try:
                planned = plan.send(result)
            except StopIteration:
                return "completed", "all steps done"

    # -- one leaf step ----------------------------------------------------------------------
    def _run_planned(self, planned: PlannedStep, continuation: Continuation | None) -> StepResult:
        step = planned.step
        if continuation is None:
            if planned.new_cycle:
                self.counter.start_new_cycle()
            problems = self._check(step)
            if problems:
                raise SafetyError("; ".join(str(p) for p in problems))
            self.step_index += 1
            index = self.step_index
            self.journal.append_event(
                {
                    "type": "step_start",
                    "step_index": index,
                    "cycle_index": self.counter.cycle_index,
                    "path": planned.path,
                    "kind": step.kind,
                    "text": step.text,
                    "test_time_s": self.test_time(),
                }
            )
            acc = StepAccumulator(index, self.counter.cycle_index, step.kind, step.text, planned.path)
            elapsed, moved = 0.0, 0.0
        else:
            if continuation.text != step.text:
                raise LabctlError(
                    f"cannot resume: the interrupted step was {continuation.text!r} but the "
                    f"procedure now gives {step.text!r} (was it edited?)"
                )
            index = continuation.step_index
            acc = StepAccumulator(index, continuation.cycle_index, step.kind, step.text, planned.path)
            if len(continuation.samples["test_time_s"]):
                acc.feed(continuation.samples)
            elapsed, moved = continuation.elapsed_s, continuation.moved_ah
            self.log("info", f"continuing step {index} ({step.text}) after {elapsed:.1f} s")
        self._live.update(step_index=index, step=step.text, cycle_index=self.counter.cycle_index)
        self.observer.step_started(index, self.counter.cycle_index, planned)
        started_s = self.test_time()
        end = self._execute_leaf(step, index, acc, elapsed, moved, resumed=continuation is not None)
        # A plugin step may measure without the cycler (an ARC step's thermal records): its
        # row spans the time it ran. A cycler step's row is its samples' span, as before.
        span = (started_s, self.test_time()) if continuation is None and \
            is_plugin_step(step) else None
        result = acc.result(end.kind.value, end.reason, span)
        self.journal.append_event({"type": "step_end", "result": result.as_dict()})
        self.observer.step_ended(result)
        return result

    def _check(self, step: Any) -> list:
        """check_step, cached for the plain (frozen, hashable) electrical and chamber steps;
        plugin steps check themselves and may depend on more than their fields."""
        hit = self._checked_by_id.get(id(step))
        if hit is not None and hit[0] is step:  # the same object again (hashing it costs more)
            return hit[1]
        cacheable = isinstance(step, ElectricalStep | ChamberStep)
        if cacheable:
            try:
                problems = self._checked[step]
                self._remember_check(step, problems)
                return problems
            except KeyError:
                pass
            except TypeError:  # an unhashable field: check it every time
                cacheable = False
        problems = check_step(step, cell=self.cell, station=self.station.spec,
                              safety=self.proc.safety)
        if cacheable:
            if len(self._checked) >= 1024:
                self._checked.clear()
            self._checked[step] = problems
            self._remember_check(step, problems)
        return problems

    def _remember_check(self, step: Any, problems: list) -> None:
        # The entry holds the step, so its id cannot be reused while the entry lives.
        if len(self._checked_by_id) >= 1024:
            self._checked_by_id.clear()
        self._checked_by_id[id(step)] = (step, problems)

    def _execute_leaf(
        self, step: Any, index: int, acc: StepAccumulator, elapsed: float, moved: float, resumed: bool
    ) -> StepEnd:
        if isinstance(step, ChamberStep):
            from labctl.engine.chamber import run_chamber_step

            return run_chamber_step(self, step, index, acc)
        if is_plugin_step(step):
            from labctl.engine.step_run import StepRun

            try:
                end = step.execute(StepRun(self, step, index, acc, resumed=resumed))
            except SafetyError as exc:
                self.make_safe(f"step {step.text!r} refused: {exc}")
                return StepEnd(EndKind.SAFETY, str(exc))
            except LabctlError as exc:
                self.make_safe(f"instrument fault: {exc}")
                return StepEnd(EndKind.FAULT, f"instrument fault: {exc}")
            if not isinstance(end, StepEnd):
                raise LabctlError(f"step type {type(step).__name__} returned {end!r}, not a StepEnd")
            return end
        if not isinstance(step, ElectricalStep):
            raise LabctlError(f"no instrument can run a step of type {type(step).__name__}")
        # A continued step's first sample repeats the last one journaled; with none journaled
        # (killed right after step_start) it is the step's start and must be kept.
        return self.run_electrical_step(step, index, acc, elapsed, moved,
                                        drop_first=resumed and acc.n_samples > 0)

    def run_electrical_step(self, step: ElectricalStep, index: int, acc: StepAccumulator,
                            elapsed: float = 0.0, moved: float = 0.0, drop_first: bool = False
                            ) -> StepEnd:
        """An electrical step to its end, through pauses and reconnections.

        After an interruption the step goes on for what is left of its duration
        and charge (`elapsed`, `moved` count what was done before this call).
        """
        moved_before = acc_moved(acc) - moved  # the accumulator may hold earlier steps' charge
        while True:
            seg_start = self.test_time()
            todo = remaining_step(step, elapsed, moved)
            if todo is None:
                return StepEnd(EndKind.TIME, "time elapsed")
            end = self.run_electrical(todo, index, acc, drop_first=drop_first)
            if end is not _PAUSED and not isinstance(end, _Disconnected):
                return end
            elapsed += self.test_time() - seg_start
            moved = acc_moved(acc) - moved_before
            stop = self.after_interruption(end)
            if stop is not None:
                return stop
            drop_first = True

    def run_electrical(
        self, step: ElectricalStep, index: int, acc: StepAccumulator, drop_first: bool = False
    ) -> Any:
        cycler = self.station.get("cycler")
        if cycler is None:
            raise LabctlError(f"step {step.text!r} needs a cycler, and the station has none")
        accounting = StepAccounting(self.counter, index, self.test_time(), self.unix_origin_s)
        batches = cycler.run_step(step, self.proc.safety, step.logging)
        return self.stream(batches, accounting, acc, index, drop_first)

    def stream(
        self,
        batches: Generator[SampleBatch, None, StepEnd],
        accounting: StepAccounting,
        acc: StepAccumulator,
        index: int,
        drop_first: bool = False,
    ) -> Any:
        """Pump an instrument's batches into the journal, checking each sample."""
        first = True
        try:
            while True:
                try:
                    batch = next(batches)
                except StopIteration as stop:
                    return stop.value or StepEnd(EndKind.CONDITION, "step ended")
                cols = accounting.columns(batch, drop_first=drop_first and first)
                first = False
                n = len(cols["test_time_s"])
                violation = garbage = None
                if n and not (self._limits_prove_numbers and self.proc.safety.within(
                        cols["voltage_v"], cols["current_a"], cols["temperature_c"])):
                    garbage = _first_garbage(cols)
                    if garbage is not None:
                        # A sample the limits cannot judge: keep the good ones before it,
                        # then fault.
                        cols = truncate(cols, garbage[0])
                        n = garbage[0]
                    if n:
                        violation = self.proc.safety.first_violation(
                            cols["voltage_v"], cols["current_a"], cols["temperature_c"]
                        )
                        if violation is not None:
                            cols = truncate(cols, violation[0] + 1)
                if n:
                    self.journal.append_samples(cols, accounting.unix_origin_s)
                    self._last_sample_s = float(cols["test_time_s"][-1])
                    acc.feed(cols)
                    self.observer.samples(cols)
                    self._note_live(cols)
                if batch.state is not None:
                    self._journal_state(index, batch.state)
                tripped = self.interlock_fault()
                if tripped is not None:
                    batches.close()
                    self.make_safe(f"interlock: {tripped}")
                    return StepEnd(EndKind.FAULT, f"interlock: {tripped}")
                self.inbox.poll()
                if violation is not None:
                    batches.close()
                    self.make_safe(violation[1])
                    return StepEnd(EndKind.SAFETY, violation[1])
                if garbage is not None:
                    raise InstrumentError(garbage[1])
                if self.control.abort_reason:
                    batches.close()
                    return StepEnd(EndKind.ABORTED, self.control.abort_reason)
                if self.proc.max_duration_s is not None and self.test_time() > self.proc.max_duration_s:
                    batches.close()
                    return StepEnd(
                        EndKind.ABORTED,
                        f"the run passed its maximum duration of {self.proc.max_duration_s:g} s",
                    )
                if self.control.pause_requested:
                    batches.close()
                    return _PAUSED
        except InstrumentError as exc:
            _close_quietly(batches)
            self.make_safe(f"instrument fault: {exc}")
            if self._may_reconnect("cycler"):
                return _Disconnected(str(exc))
            return StepEnd(EndKind.FAULT, f"instrument fault: {exc}{self._attempts_note('cycler')}")
        except StorageError as exc:
            _close_quietly(batches)
            self.storage_error = self.storage_error or str(exc)
            self.make_safe(f"results store failed: {exc}")
            return StepEnd(EndKind.FAULT, f"results store failed: {exc}")
        except LabctlError as exc:
            _close_quietly(batches)
            self.make_safe(f"instrument fault: {exc}")
            return StepEnd(EndKind.FAULT, f"instrument fault: {exc}")
        except KeyboardInterrupt:
            _close_quietly(batches)
            raise

    def after_interruption(self, end: Any) -> StepEnd | None:
        """A segment of `stream` ended early (pause, lost instrument): deal with it.

        Returns None to go on with the step (paused and continued, or reconnected),
        or the StepEnd that ends it.
        """
        if isinstance(end, _Disconnected):
            failed = self._reconnect("cycler", end.reason)
            if failed is not None:
                return failed
        else:
            self._wait_while_paused()
        if self.control.abort_reason:
            return StepEnd(EndKind.ABORTED, self.control.abort_reason)
        return None

    def _may_reconnect(self, role: str) -> bool:
        policy = self.station.spec.instruments[role].reconnect
        return self._reconnects.get(role, 0) < policy.attempts

    def _reconnect(self, role: str, why: str) -> StepEnd | None:
        """Reconnect `role` with backoff (station file `reconnect:`); None when it worked.

        Attempts count per run and role. While waiting the outputs stay in their
        safe state; an abort request ends the wait.
        """
        policy = self.station.spec.instruments[role].reconnect
        while self._reconnects.get(role, 0) < policy.attempts:
            attempt = self._reconnects[role] = self._reconnects.get(role, 0) + 1
            delay = policy.delay_s(attempt)
            self.log("warning", f"{role} lost ({why}); reconnecting in {delay:g} s "
                                f"(attempt {attempt} of {policy.attempts})")
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline and not self.control.abort_reason:
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
                self.inbox.poll()
            if self.control.abort_reason:
                return StepEnd(EndKind.ABORTED, self.control.abort_reason)
            try:
                self.station.reconnect(role)
            except LabctlError as exc:
                why = str(exc)
                continue
            self._short_batches_for_interlocks()
            self.log("info", f"{role} reconnected (attempt {attempt}); continuing the step")
            if hasattr(self.clock, "reset_pacing"):
                self.clock.reset_pacing()
            return None
        return StepEnd(EndKind.FAULT, f"instrument fault: {why}{self._attempts_note(role)}")

    def _attempts_note(self, role: str) -> str:
        n = self._reconnects.get(role, 0)
        return f" (after {n} reconnection attempt{'s' if n != 1 else ''})" if n else ""

    def _short_batches_for_interlocks(self) -> None:
        """With hard interlocks on the station, the cycler delivers one sample period per
        batch, so a tripped interlock stops the current within one sample."""
        if not any(hasattr(inst, "interlock_fault") for inst in self.station.instruments.values()):
            return
        cycler = self.station.get("cycler")
        if cycler is not None and hasattr(cycler, "max_batch_s"):
            cycler.max_batch_s = 1e-9  # the simulator rounds up to one logging period

    def interlock_fault(self) -> str | None:
        """The first hard interlock that tripped (abuse chamber over-temperature, door open,
        emergency stop...), or None. Any instrument may offer `interlock_fault() -> str | None`;
        an instrument that cannot even be asked (lost communication) is a tripped interlock.
        """
        for role, inst in self.station.instruments.items():
            check = getattr(inst, "interlock_fault", None)
            if check is None:
                continue
            try:
                reason = check()
            except LabctlError as exc:
                return f"{role}: lost communication ({exc})"
            if reason:
                return f"{role}: {reason}"
        return None

    # -- live status, state snapshots, pause -------------------------------------------------
    def _journal_state(self, index: int, cycler_state: dict) -> None:
        states = {"cycler": cycler_state}
        chamber = self.station.get("chamber")
        if chamber is not None and hasattr(chamber, "get_state"):
            states["chamber"] = chamber.get_state()
        # `samples_through_s`: the last sample this snapshot includes. On resume, samples
        # journaled after it (a cut just before this record) tell how far the cell moved.
        self.journal.append_event(
            {"type": "state", "step_index": index, "test_time_s": self.test_time(),
             "samples_through_s": self._last_sample_s, "instruments": states}
        )

    def _note_live(self, cols: dict[str, np.ndarray]) -> None:
        self._live.update(
            test_time_s=float(cols["test_time_s"][-1]),
            voltage_v=float(cols["voltage_v"][-1]),
            current_a=float(cols["current_a"][-1]),
            temperature_c=_finite_or_none(cols["temperature_c"][-1]),
        )
        self._write_status()

    def _write_status(self, force: bool = False, state: str = "running") -> None:
        """A small status.json others can read (labctl status, dashboards); at most 1 Hz."""
        now = time.monotonic()
        if not force and now - self._status_written < STATUS_INTERVAL_S:
            return
        self._status_written = now
        status = dict(self._live, state=state, procedure=self.proc.name, pid=os.getpid(),
                      updated_unix_s=time.time())
        path = self.rundir.path / "status.json"
        tmp = path.with_suffix(".json.tmp")
        try:
            tmp.write_text(json.dumps(status))
            os.replace(tmp, path)
        except OSError:
            pass  # live status is a convenience; the journal is the record

    def _wait_while_paused(self) -> None:
        self.make_safe("paused")
        self._write_status(force=True, state="paused")
        while self.control.pause_requested and not self.control.abort_reason:
            time.sleep(0.1)
            self.inbox.poll()
        if not self.control.abort_reason:
            self.log("info", "continuing after pause")
            if hasattr(self.clock, "reset_pacing"):
                self.clock.reset_pacing()


@dataclass
class _Disconnected:
    """A segment ended because the instrument stopped answering; a reconnect may follow."""

    reason: str


def acc_moved(acc: StepAccumulator) -> float:
    """Charge moved so far in the step (magnitude), from the accumulator's partial result."""
    return float(acc.moved_ah())  # not acc.result(): this runs before every step


def _close_quietly(gen: Generator) -> None:
    try:
        gen.close()
    except Exception:
        pass


def _first_garbage(cols: dict[str, np.ndarray]) -> tuple[int, str] | None:
    """The first sample whose voltage or current is not a finite number (an instrument
    answering garbage), with the reason; None when all are numbers. Temperature may be
    NaN (no sensor)."""
    v, i = cols["voltage_v"], cols["current_a"]
    # A finite sum means every value is finite (NaN and inf propagate into it): two
    # reductions instead of two isfinite arrays for every batch; a non-finite sum (or an
    # overflowing one) is looked at value by value below.
    if math.isfinite(float(np.add.reduce(v)) + float(np.add.reduce(i))):
        return None
    if np.isfinite(v).all() and np.isfinite(i).all():
        return None
    k = int(np.argmax(~(np.isfinite(v) & np.isfinite(i))))
    t = float(cols["test_time_s"][k])
    return k, (f"the instrument returned an unusable sample at {t:.1f} s "
               f"(voltage {v[k]!r} V, current {i[k]!r} A); limits cannot be checked on it")


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None
