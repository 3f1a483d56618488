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

    def period(self, role: str) -> float:
        """Cycle time of the message carrying `role` (validation made sure there is one)."""
        message = self.smap.refs(role)[0].message
        period = self.smap.period_s(message)
        if period is None:
            raise LabctlError(f"message {message} has no cycle time (no GenMsgCycleTime in the DBC, "
                              "no cycle_times entry in the station file); the limits of this "
                              "step rest on it")
        return period

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
        self.run.logged_elsewhere("can_frames", len(msgs))  # `labctl plan`: disk space
        if stores_files(self.run):
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


def stores_files(run: Any) -> bool:
    """Whether the step runs inside a real run directory (`labctl plan` runs the steps on its
    twin with nowhere to write: no frame logs, no report then)."""
    from pathlib import Path

    return (Path(run.run_dir) / "run.json").is_file()


Need = str | tuple[str, ...]  # a role, or alternatives (any one of them will do)


def need_text(need: Need) -> str:
    return repr(need) if isinstance(need, str) else "one of " + ", ".join(map(repr, need))


@dataclass(frozen=True)
class BmsStep:
    """A BMS step and what it needs, checked against the station's signal map before the run:
    roles (or alternatives), per-cell data (`per_cell`: why), the cells it names, and the
    cycle times its judgement rests on."""

    text: str
    source: SourceRef
    roles_needed: tuple[Need, ...]
    kind: str
    roles: tuple[str, ...] = ("bms",)
    per_cell: str = ""  # why this step cannot work from pack-level values (empty: it can)
    cells_used: tuple[int, ...] = ()
    period_roles: tuple[Need, ...] = ()  # roles whose message's cycle time the limits use
    all_periods: bool = False  # every message the BMS sends needs a cycle time

    def check(self, checker: Any) -> None:
        if not checker.need_role("bms"):
            return
        station = checker.station
        if station is None or not station.source:
            return
        from labctl.can.signals import CELL_ROLES, signal_map_for_station

        try:
            smap = signal_map_for_station(station.source)
        except ValidationError as exc:
            checker.problems.extend(exc.problems)
            return
        except LabctlError as exc:
            checker.add(str(exc))
            return
        where = f"station {station.name!r} ({station.source})"
        missing = [n for n in self.roles_needed
                   if not smap.first(*((n,) if isinstance(n, str) else n))]
        cell_missing = [n for n in missing if isinstance(n, str) and n in CELL_ROLES]
        if self.per_cell and cell_missing:
            mapped = sorted(r for r in smap.scalar if not r.startswith(("cmd_", "fault_")))
            checker.add(f"{self.kind} cannot run on this station: {self.per_cell}, so it needs the "
                        f"per-cell role(s) {', '.join(map(repr, cell_missing))}; the signal map of "
                        f"{where} has only pack-level values ({', '.join(mapped)})")
            missing = [n for n in missing if n not in cell_missing]
        for need in missing:
            checker.add(f"{self.kind} needs the role {need_text(need)}, which the signal map of "
                        f"{where} does not map")
        for cell in self.cells_used:
            if not 1 <= cell <= smap.cells:
                checker.add(f"{self.kind}: cell {cell} does not exist; {where} has cells 1 to "
                            f"{smap.cells}")
        messages = list(smap.device_messages()) if self.all_periods else []
        for need in self.period_roles:
            role = smap.first(*((need,) if isinstance(need, str) else need))
            if role is not None:
                messages.append(smap.refs(role)[0].message)
        for name in dict.fromkeys(messages):
            if smap.period_s(name) is None:
                checker.add(f"{self.kind} judges message {name} against its cycle time, and it has "
                            f"none: the DBC {smap.dbc_path.name} has no GenMsgCycleTime for it and "
                            f"{where} no cycle_times entry; add 'cycle_times: {{{name}: 100 ms}}' "
                            "(its real period) to the bms instrument")
        self.check_more(checker, smap, station)

    def check_more(self, checker: Any, smap: Any, station: Any) -> None:
        """Step-specific checks against the signal map (none by default)."""
