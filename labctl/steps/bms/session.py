"""What every BMS step shares: observe frames, decode roles, record checks, log frames,
and the checks before the run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from labctl.analysis.bms.checks import TABLE, Check
from labctl.can.decode import BatchDecoder
from labctl.can.frames import FrameBatch
from labctl.capabilities.cycler import EndKind, StepEnd
from labctl.capabilities.steps import SourceRef
from labctl.errors import LabctlError, ValidationError

# ------------------------------------------------------------------------------------------------
# What every BMS step does: observe frames, decode roles, record checks, log frames


class BmsSession:
    def __init__(self, run: Any):
        self.run = run
        self.bms = run.instrument("bms")
        self.smap = self.bms.smap
        self.decoder = BatchDecoder(self.smap.db)
        self.checks: list[Check] = []
        self.bms.port.recording = True
        self.bms.port.take_recording()
        # frame times are clock times; records use the run's test time
        self.offset = run.clock.now() - run.test_time()
        self.stopped: str | None = None

    @property
    def now(self) -> float:
        return self.run.clock.now()

    def observe(self, duration_s: float, chunk_s: float = 5.0) -> FrameBatch:
        """Let time pass (in chunks, so a stop request is honoured); the frames received."""
        got: list[Any] = []
        left = duration_s
        while left > 1e-9 and self.stopped is None:
            d = min(chunk_s, left)
            got.extend(self.bms.run_for(d))
            left -= d
            self.stopped = self.run.stop_reason()
        return FrameBatch.from_messages(m for m in got if m.is_rx)

    def series(self, batch: FrameBatch, role: str, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(time, value in labctl units) of a role in `batch`, sorted by time."""
        refs = self.smap.refs(role)
        if not refs:
            raise LabctlError(f"role {role!r} is not mapped in the station's signal map")
        ref = refs[index]
        plan = self.decoder.plan_for(ref.frame_id, ref.extended)
        sel = (batch.arbitration_id == ref.frame_id) & (batch.is_extended == ref.extended)
        t = batch.time_s[sel]
        if plan is None or not sel.any():
            return np.zeros(0), np.zeros(0)
        cols = self.decoder.decode_message(plan, batch.data[sel])
        order = np.argsort(t, kind="stable")
        return t[order], np.asarray(ref.to_labctl(cols[ref.signal]), dtype=float)[order]

    def cell_matrix(self, batch: FrameBatch, role: str = "cell_voltage_v") -> tuple[np.ndarray, np.ndarray]:
        """Cell values on the time grid of the first cell's message (latest value of each cell)."""
        refs = self.smap.refs(role)
        t0, _ = self.series(batch, role, 0)
        out = np.full((len(t0), len(refs)), np.nan)
        for i in range(len(refs)):
            t, v = self.series(batch, role, i)
            if len(t):
                j = np.clip(np.searchsorted(t, t0 + 1e-6, side="right") - 1, 0, len(t) - 1)
                out[:, i] = v[j]
        return t0, out

    def first_true(self, batch: FrameBatch, role: str, after_s: float, value: bool = True
                   ) -> tuple[float | None, float | None]:
        """Time of the first frame after `after_s` where the flag equals `value`, and of the frame before."""
        t, v = self.series(batch, role)
        hit = np.flatnonzero((t >= after_s) & ((v > 0.5) == value))
        if not len(hit):
            return None, None
        i = hit[0]
        return float(t[i]), float(t[i - 1]) if i > 0 and t[i - 1] >= after_s else None

    def check(self, *args: Any, **kwargs: Any) -> Check:
        c = Check(*args, **kwargs)
        self.checks.append(c)
        return c

    def close_contactors(self, settle_s: float = 1.0) -> bool:
        self.bms.command("cmd_contactor_close", True)
        batch = self.observe(settle_s)
        t, v = self.series(batch, "contactor_closed")
        return bool(len(v) and v[-1] > 0.5)

    def finish(self, what: str) -> StepEnd:
        from labctl.can.framelog import save_step_log

        rows = [c.row() for c in self.checks]
        if rows:
            for r in rows:
                r["step"] = what
            self.run.record(TABLE, rows)
        # The port recorded every frame both ways; the log is in the run's test time.
        msgs = self.bms.port.take_recording()
        self.bms.port.recording = False
        for m in msgs:
            m.timestamp -= self.offset
        save_step_log(self.run.run_dir, self.run.step_index, msgs, self.decoder, self.smap)
        if self.stopped:
            return StepEnd(EndKind.ABORTED, self.stopped)
        failed = [c.name for c in self.checks if c.verdict == "fail"]
        passed = sum(c.verdict == "pass" for c in self.checks)
        text = f"{what}: {passed} pass, {len(failed)} fail" + (
            f" ({', '.join(failed[:4])}{'...' if len(failed) > 4 else ''})" if failed else "")
        (self.run.log("warning", text) if failed else self.run.log("info", text))
        return StepEnd(EndKind.CONDITION, text)


def stimulus(session: BmsSession) -> Any:
    stim = getattr(session.bms, "stimulus", None)
    if stim is None:
        raise LabctlError("this step drives the pack (cell emulator, current, heaters), and the "
                          "bms instrument offers no stimulus")
    return stim


# ------------------------------------------------------------------------------------------------
# Shared checking before the run


@dataclass(frozen=True)
class BmsStep:
    text: str
    source: SourceRef
    roles_needed: tuple[str, ...]
    kind: str
    roles: tuple[str, ...] = ("bms",)

    def check(self, checker: Any) -> None:
        if not checker.need_role("bms"):
            return
        station = checker.station
        if station is None or not station.source:
            return
        from labctl.can.signals import signal_map_for_station

        try:
            smap = signal_map_for_station(station.source)
        except ValidationError as exc:
            checker.problems.extend(exc.problems)
            return
        except LabctlError as exc:
            checker.add(str(exc))
            return
        for role in self.roles_needed:
            if not smap.has(role):
                checker.add(f"{self.kind} needs the role {role!r}, which the signal map of station "
                            f"{station.name!r} ({station.source}) does not map")

