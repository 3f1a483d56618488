"""What a plugin step sees while it runs: instruments, time, logging and the run's records.

The engine hands a `StepRun` to `step.execute(run)`. Through it a step may
drive instruments of the station, rest the cell on the cycler while it waits
(so the timeseries keeps going), write its own result rows (an impedance
spectrum, a pressure log, a BMS check) into named record tables, and learn
when the run is being stopped. The step returns a `StepEnd`.

Record tables: `run.record("spectra", rows)` appends rows (a dict of equal-length
columns, or a list of dicts) to the journal at once, so they survive a crash;
at the end of the run they become `records/<table>.parquet`, and
`labctl.open_run(path).records("spectra")` reads them as a DataFrame (also while
the run is still going, or after a crash). Every row gets `step_index`,
`cycle_index` and, unless given, `test_time_s`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from labctl.capabilities.cycler import EndKind, StepEnd
from labctl.capabilities.steps import ElectricalStep, LoggingPolicy, Mode
from labctl.engine.accounting import StepAccounting
from labctl.errors import LabctlError
from labctl.store.step_summary import StepAccumulator

if TYPE_CHECKING:
    from labctl.engine.runner import Engine

_TABLE_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")


class StepRun:
    """The engine, as far as one running plugin step needs it."""

    def __init__(self, engine: Engine, step: Any, index: int, acc: StepAccumulator,
                 resumed: bool = False):
        self._engine = engine
        self.step = step
        self.step_index = index
        self._acc = acc
        # After a resume the step starts again; its first sample would repeat the last one.
        self._first_rest = not resumed
        self.resumed = resumed

    # -- context ---------------------------------------------------------------------------
    @property
    def cell(self):
        return self._engine.cell

    @property
    def safety(self):
        return self._engine.proc.safety

    @property
    def clock(self):
        return self._engine.clock

    @property
    def cycle_index(self) -> int:
        return self._engine.counter.cycle_index

    @property
    def run_dir(self):
        """The run directory (a Path): for files a step writes itself, e.g. a CAN log."""
        return self._engine.rundir.path

    def test_time(self) -> float:
        return self._engine.test_time()

    def instrument(self, role: str) -> Any:
        """The station's instrument for `role`; a clear error if the station has none."""
        inst = self._engine.station.get(role)
        if inst is None:
            raise LabctlError(f"step {self.step.text!r} needs a {role}, and the station has none")
        return inst

    def optional_instrument(self, role: str) -> Any | None:
        return self._engine.station.get(role)

    def log(self, level: str, message: str) -> None:
        """A line in the run's log and journal (levels: info, warning, error)."""
        self._engine.log(level, message)

    # -- stopping ----------------------------------------------------------------------------
    def stop_reason(self) -> str | None:
        """Why the step must end now (abort, Ctrl-C via signal, max duration), else None.

        Long steps call this between instrument operations and return
        `StepEnd(EndKind.ABORTED, reason)` when it is not None. A tripped hard
        interlock raises instead: the engine faults the run with its reason.
        """
        engine = self._engine
        engine.inbox.poll()
        tripped = engine.interlock_fault()
        if tripped is not None:
            raise LabctlError(f"interlock: {tripped}")  # the engine faults the run, outputs off
        if engine.control.abort_reason:
            return engine.control.abort_reason
        limit = engine.proc.max_duration_s
        if limit is not None and engine.test_time() > limit:
            return f"the run passed its maximum duration of {limit:g} s"
        return None

    # -- waiting ------------------------------------------------------------------------------
    def wait(self, duration_s: float, logging: LoggingPolicy | None = None) -> StepEnd:
        """Let `duration_s` of (virtual) time pass.

        With a cycler the cell rests on it and its samples are logged into this
        step (as during a chamber step), and each sample is checked against the
        safety limits; without one the clock just advances. Returns a TIME end
        when the time passed, or the end that cut it short (safety, abort, fault).
        A pause request is honoured: outputs go safe until `labctl continue`.
        """
        engine = self._engine
        if not (math.isfinite(duration_s) and duration_s >= 0):
            raise LabctlError(f"wait: duration must be a finite time >= 0, got {duration_s!r}")
        cycler = engine.station.get("cycler")
        policy = logging or getattr(self.step, "logging", None) or LoggingPolicy()
        if cycler is None:
            engine.clock.sleep_until(engine.clock.now() + duration_s)
            reason = self.stop_reason()
            return (StepEnd(EndKind.ABORTED, reason) if reason
                    else StepEnd(EndKind.TIME, "time elapsed"))
        left = duration_s
        while left > 0:
            start = engine.test_time()
            rest = ElectricalStep(Mode.REST, duration_s=left, logging=policy, text=self.step.text)
            end = self._stream(rest, policy)
            if isinstance(end, StepEnd):
                return end
            left -= engine.test_time() - start  # paused or reconnected: rest for the remainder
            stop = engine.after_interruption(end)
            if stop is not None:
                return stop
        return StepEnd(EndKind.TIME, "time elapsed")

    def run_electrical(self, step: ElectricalStep) -> StepEnd:
        """Run an electrical step on the cycler inside this step (its samples are this step's).

        The step is checked against the cell, station and safety limits first,
        exactly as a procedure's own electrical step.
        """
        from labctl.procedures import check_step

        engine = self._engine
        problems = check_step(step, cell=engine.cell, station=engine.station.spec,
                              safety=engine.proc.safety)
        if problems:
            from labctl.errors import SafetyError

            raise SafetyError("; ".join(str(p) for p in problems))
        end = engine.run_electrical_step(step, self.step_index, self._acc,
                                         drop_first=not self._first_rest)
        self._first_rest = False
        return end

    def _stream(self, step: ElectricalStep, policy: LoggingPolicy) -> Any:
        engine = self._engine
        cycler = self.instrument("cycler")
        accounting = StepAccounting(engine.counter, self.step_index, engine.test_time(),
                                    engine.unix_origin_s)
        end = engine.stream(cycler.run_step(step, engine.proc.safety, policy), accounting,
                            self._acc, self.step_index, drop_first=not self._first_rest)
        self._first_rest = False
        return end

    def last_sample(self) -> dict[str, Any]:
        """The latest logged values: test_time_s, voltage_v, current_a, temperature_c."""
        return {k: self._engine._live.get(k) for k in
                ("test_time_s", "voltage_v", "current_a", "temperature_c")}

    def logged_elsewhere(self, what: str, count: int) -> None:
        """Tell the run's observer this step logged `count` items outside the journal
        ("can_frames": its frame log in RUN/can/); `labctl plan` counts them on disk."""
        self._engine.observer.logged_elsewhere(self.step_index, what, count)

    # -- records ------------------------------------------------------------------------------
    def record(self, table: str, rows: Mapping[str, Sequence] | Sequence[Mapping[str, Any]]
               ) -> None:
        """Append rows to record table `table` (journalled now, Parquet at the run's end)."""
        if not table or set(table) - _TABLE_CHARS or table in ("timeseries", "steps", "cycles"):
            raise LabctlError(f"record table name {table!r}: use lowercase letters, digits, "
                              "'_' and '-' (not timeseries, steps or cycles)")
        columns = _columns(rows)
        n = len(next(iter(columns.values()))) if columns else 0
        if n == 0:
            return
        columns.setdefault("test_time_s", [self.test_time()] * n)
        columns["step_index"] = [self.step_index] * n
        columns["cycle_index"] = [self.cycle_index] * n
        self._engine.journal.append_event(
            {"type": "record", "table": table, "step_index": self.step_index, "columns": columns}
        )


def _columns(rows: Mapping[str, Sequence] | Sequence[Mapping[str, Any]]) -> dict[str, list]:
    """Rows as JSON-ready columns of equal length."""
    if isinstance(rows, Mapping):
        cols = {str(k): [_plain(x) for x in np.atleast_1d(np.asarray(v, dtype=object))]
                for k, v in rows.items()}
    else:
        keys: list[str] = []
        for row in rows:
            keys.extend(k for k in row if k not in keys)
        cols = {k: [_plain(row.get(k)) for row in rows] for k in keys}
    lengths = {len(v) for v in cols.values()}
    if len(lengths) > 1:
        raise LabctlError(f"record: columns have different lengths {sorted(lengths)}")
    return cols


def _plain(x: Any) -> Any:
    """A JSON-safe scalar (NaN/inf become None)."""
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if x is None or isinstance(x, (bool, int, str)):
        return x
    return str(x)
