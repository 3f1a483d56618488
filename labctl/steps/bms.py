"""BMS validation steps: the BMS is judged only by the frames it sends, against the spec.

    - bms_protection: {protection: over_voltage, threshold: 4.25 V, delay: 1 s,
                       start: 4.20 V, step: 5 mV, stop: 4.35 V, recovery: 4.15 V, recovery_delay: 1 s}
    - bms_balancing: {imbalance: 50 mV, target: 10 mV, current: 250 mA, soc: 90 %}
    - bms_soc: {initial_soc: 80 %, profile: {time: [0, 30, 60], current: [-10, 5, 0]}, repeat: 5}
    - bms_can_timing: {duration: 30 s}
    - bms_fault_injection: {fault: open_wire, cell: 5, expect: fault_sensor, within: 1 s}
    - bms_report: {}

Protection thresholds are found by a staircase: the condition (cell voltage through
the cell emulator, pack current, a sensor's temperature, stack pressure) is stepped
by `step` and held for `dwell` each time; the first level that trips is the measured
threshold (resolution: one step) and the time from that level's onset to the first
frame showing the fault flag, less half a frame period (the flag appeared between two
frames), is the measured delay (resolution: one frame period of the fault message).
Every result is a row of the record table `bms_checks` (name, value, unit, low, high,
verdict); every frame of the step is in RUN/can/step-NNNN.blf with its decoded signals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from labctl.analysis.bms.checks import TABLE, Check, message_checks
from labctl.can.decode import BatchDecoder
from labctl.can.frames import FrameBatch
from labctl.capabilities.cycler import EndKind, StepEnd
from labctl.capabilities.steps import SourceRef
from labctl.errors import LabctlError, ValidationError
from labctl.units import CURRENT, PRESSURE, RATIO, TEMPERATURE, TIME, VOLTAGE

# protection -> (fault role, unit kind, unit, stimulus, direction: +1 trips rising, -1 falling).
# Current levels are magnitudes; a discharge protection applies them as negative currents.
PROTECTIONS = {
    "over_voltage": ("fault_over_voltage", VOLTAGE, "V", "cell_voltage", 1),
    "under_voltage": ("fault_under_voltage", VOLTAGE, "V", "cell_voltage", -1),
    "over_current_charge": ("fault_over_current_charge", CURRENT, "A", "current", 1),
    "over_current_discharge": ("fault_over_current_discharge", CURRENT, "A", "current", 1),
    "over_temperature": ("fault_over_temperature", TEMPERATURE, "degC", "temperature", 1),
    "under_temperature": ("fault_under_temperature", TEMPERATURE, "degC", "temperature", -1),
    "over_pressure": ("fault_pressure", PRESSURE, "MPa", "pressure", 1),
    "under_pressure": ("fault_pressure", PRESSURE, "MPa", "pressure", -1),
}
FAULTS = {"stuck_sensor": "fault_sensor", "drifting_sensor": "fault_sensor",
          "open_wire": "fault_sensor", "dead_node": "fault_comm", "drop_frames": "counter_errors",
          "delay_frames": "max_gap", "bad_checksum": "checksum_errors"}


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


def _stimulus(session: BmsSession) -> Any:
    stim = getattr(session.bms, "stimulus", None)
    if stim is None:
        raise LabctlError("this step drives the pack (cell emulator, current, heaters), and the "
                          "bms instrument offers no stimulus")
    return stim


# ------------------------------------------------------------------------------------------------
# Shared checking before the run


@dataclass(frozen=True)
class _BmsStep:
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


# ------------------------------------------------------------------------------------------------
# bms_protection


@dataclass(frozen=True)
class ProtectionStep(_BmsStep):
    protection: str = "over_voltage"
    threshold: float = 0.0
    tolerance: float = 0.0
    delay_s: float = 1.0
    start: float = 0.0
    step: float = 0.0
    stop: float = 0.0
    dwell_s: float = 3.0
    cell: int = 1
    recovery: float | None = None
    recovery_delay_s: float | None = None

    def execute(self, run: Any) -> StepEnd:
        s = BmsSession(run)
        stim = _stimulus(s)
        role, _, unit, kind, direction = PROTECTIONS[self.protection]
        fault_msg = s.smap.refs(role)[0].message
        period = s.smap.period_s(fault_msg) or 0.1
        status_period = s.smap.period_s(s.smap.refs("contactor_closed")[0].message) or 0.1
        name = self.protection

        def apply(level: float | None) -> None:
            if kind == "cell_voltage":
                stim.force_cell_voltage(self.cell, level)
            elif kind == "temperature":
                stim.force_temperature(self.cell, level)
            elif kind == "pressure":
                stim.set_pressure(level if level is not None else self._nominal_pressure(s))
            else:
                sign = -1.0 if self.protection.endswith("discharge") else 1.0
                stim.set_current(0.0 if level is None else sign * level)

        if not s.close_contactors(1.0):
            s.check(f"{name}.contactor_closed_before", 0.0, "", 1, 1, "contactors did not close")
            return s.finish(self.text)
        n_steps = int(np.floor(abs(self.stop - self.start) / self.step + 1e-9)) + 1
        trip_level = trip_time = open_time = None
        sign = 1.0 if self.stop >= self.start else -1.0
        for j in range(n_steps):
            level = round(self.start + sign * j * self.step, 9)
            apply(level)
            t_on = s.now
            batch = s.observe(self.dwell_s)
            first, before = s.first_true(batch, role, t_on)
            if first is not None:
                trip_level = level
                # The flag rose between the previous frame and this one: take the middle.
                prev = before if before is not None else first - period
                trip_time = 0.5 * (first + prev) - t_on
                t_open, _ = s.first_true(batch, "contactor_closed", t_on, value=False)
                open_time = None if t_open is None else t_open - t_on
                break
            if s.stopped:
                break
        s.check(f"{name}.threshold", trip_level, unit, self.threshold - self.tolerance,
                self.threshold + self.tolerance,
                f"staircase {self.start:g} to {self.stop:g} {unit} by {self.step:g}; "
                f"spec {self.threshold:g} {unit}")
        s.check(f"{name}.trip_delay", trip_time, "s", self.delay_s - period, self.delay_s + period,
                f"spec {self.delay_s:g} s +- one {fault_msg} period ({period:g} s)")
        s.check(f"{name}.contactor_open", open_time, "s", None, self.delay_s + period + status_period,
                "from the tripping level's onset to the first frame with the contactors open")
        if self.recovery is not None and trip_level is not None:
            apply(self.recovery - direction * self.step)
            t_rec = s.now
            batch = s.observe((self.recovery_delay_s or 0.0) + 3.0)
            cleared, before = s.first_true(batch, role, t_rec, value=False)
            rec_time = None
            if cleared is not None:
                prev = before if before is not None else cleared - period
                rec_time = 0.5 * (cleared + prev) - t_rec
            rd = self.recovery_delay_s or 0.0
            s.check(f"{name}.recovery_delay", rec_time, "s", rd - period, rd + period,
                    f"back past the recovery level {self.recovery:g} {unit}")
        apply(None)
        s.observe(2.0 + (self.recovery_delay_s or 0.0))
        return s.finish(self.text)

    @staticmethod
    def _nominal_pressure(s: BmsSession) -> float:
        cfg = getattr(s.bms, "cfg", None)
        p = getattr(getattr(cfg, "pack", None), "stack_pressure_mpa", None)
        return float(p) if p is not None else 0.0


def compile_protection(spec: Any) -> ProtectionStep | None:
    keys = ("protection", "threshold", "tolerance", "delay", "start", "step", "stop", "dwell",
            "cell", "recovery", "recovery_delay")
    if not spec.mapping(keys, required=("protection", "threshold", "delay", "start", "step")):
        return None
    prot = spec.choice("protection", tuple(PROTECTIONS))
    if prot is None:
        return None
    role, kind, unit, _, direction = PROTECTIONS[prot]
    threshold = spec.quantity("threshold", kind, required=True)
    step = spec.quantity("step", kind, required=True, positive=True)
    delay = spec.quantity("delay", TIME, required=True, minimum=0.0)
    start = spec.quantity("start", kind, required=True)
    if None in (threshold, step, delay, start):
        return None
    stop = spec.quantity("stop", kind, threshold + direction * 10 * step)
    tol = spec.quantity("tolerance", kind, step, minimum=0.0)
    dwell = spec.quantity("dwell", TIME, delay + 2.0, positive=True)
    cell = spec.integer("cell", 1)
    recovery = spec.quantity("recovery", kind)
    rdelay = spec.quantity("recovery_delay", TIME, 0.0, minimum=0.0)
    if not spec.ok:
        return None
    if (stop - start) * direction <= 0 or (threshold - start) * direction < 0:
        spec.error("start", f"the staircase must run from start towards and past the threshold "
                            f"({'up' if direction > 0 else 'down'} for {prot})")
        return None
    if dwell <= delay:
        spec.error("dwell", f"dwell {dwell:g} s must be longer than the delay {delay:g} s")
        return None
    roles = (role, "contactor_closed", "cmd_contactor_close")
    if prot.startswith(("over_v", "under_v")):
        roles += ("cell_voltage_v",)
    return ProtectionStep(f"bms_protection {prot} {threshold:g} {unit}", spec.source(), roles,
                          "bms_protection", protection=prot, threshold=threshold, tolerance=tol,
                          delay_s=delay, start=start, step=step, stop=stop, dwell_s=dwell,
                          cell=cell, recovery=recovery, recovery_delay_s=rdelay)


# ------------------------------------------------------------------------------------------------
# bms_balancing


@dataclass(frozen=True)
class BalancingStep(_BmsStep):
    imbalance_v: float = 0.05
    target_v: float = 0.01
    current_a: float = 0.1
    soc: float = 0.9
    cell: int = 1
    timeout_s: float = 4 * 3600.0
    tolerance: float = 0.05
    mode: str = "passive"
    capacity_ah: float | None = None
    efficiency: float = 0.85  # active: spec share of the energy taken that reaches the others

    def execute(self, run: Any) -> StepEnd:
        s = BmsSession(run)
        stim = _stimulus(s)
        stim.set_soc(self.soc)
        stim.offset_cell_voltage(self.cell, self.imbalance_v)
        batch = s.observe(5.0)
        t, cells = s.cell_matrix(batch)
        v0 = cells[-1]
        spread0 = float(np.nanmax(v0) - np.nanmin(v0))
        s.check("balancing.initial_spread", spread0, "V", self.imbalance_v - 0.005,
                self.imbalance_v + 0.005, "imposed through the cell emulator / cell SoC")
        predicted = self._predict(s, v0)
        s.bms.command("cmd_balancing_enable", True)
        t_start = s.now
        reached = None
        energy = 0.0
        flags_seen = np.zeros(len(v0), dtype=bool)
        rows = []
        while s.now - t_start < self.timeout_s and not s.stopped:
            batch = s.observe(10.0)
            t, cells = s.cell_matrix(batch)
            if not len(t):
                continue
            spread = np.nanmax(cells, axis=1) - np.nanmin(cells, axis=1)
            hit = np.flatnonzero(spread < self.target_v)
            t_hit = t[hit[0]] if len(hit) else np.inf
            tb, flags = s.cell_matrix(batch, "balancing")
            if len(tb):
                on = (flags > 0.5) & (tb < t_hit)[:, None]  # energy up to the target only
                dt = np.diff(np.append(tb, tb[-1] + (tb[-1] - tb[-2] if len(tb) > 1 else 1.0)))
                j = np.clip(np.searchsorted(t, tb), 0, len(t) - 1)
                v = cells[j]
                if self.mode == "active":  # both ends switch; the givers are the high cells
                    on = on & (v > np.nanmedian(v, axis=1, keepdims=True))
                flags_seen |= on.any(axis=0)
                energy += float(np.nansum(on * v * self.current_a * dt[:, None]))
            rows.append({"test_time_s": float(t[-1] - s.offset), "spread_v": float(spread[-1]),
                         "balancing_cells": int((flags[-1] > 0.5).sum()) if len(tb) else 0})
            if len(hit):
                reached = float(t[hit[0]] - t_start)
                break
        s.bms.command("cmd_balancing_enable", False)
        if rows:
            run.record("bms_balancing", rows)
        s.check("balancing.time_to_target", reached, "s", None,
                None if predicted is None else predicted * (1 + self.tolerance),
                f"spread below {self.target_v * 1000:g} mV; predicted "
                + ("n/a" if predicted is None else f"{predicted:.0f} s")
                + f" at {self.current_a:g} A")
        if predicted is not None:
            s.check("balancing.predicted_time", predicted, "s", None, None,
                    "capacity x SoC difference / balancing current (cell OCV table)")
        s.check("balancing.high_cell_flag", float(flags_seen[self.cell - 1]), "", 1, 1,
                f"cell {self.cell} reported balancing")
        how = "flags of the giving cells x cell voltage x balancing current, integrated"
        if self.mode == "passive":  # the bleed resistors burn everything taken
            s.check("balancing.energy_dissipated", energy, "J", None, None, how)
            s.check("balancing.energy_moved", 0.0, "J", None, None, "passive: nothing is moved")
        else:
            s.check("balancing.energy_taken", energy, "J", None, None, how)
            s.check("balancing.energy_moved", self.efficiency * energy, "J", None, None,
                    f"taken x efficiency {self.efficiency:g} (spec)")
            s.check("balancing.energy_dissipated", (1 - self.efficiency) * energy, "J", None, None,
                    "converter losses: taken x (1 - efficiency)")
        return s.finish(self.text)

    def _predict(self, s: BmsSession, v0: np.ndarray) -> float | None:
        pack = getattr(s.bms, "pack", None)
        cell = getattr(getattr(getattr(s.bms, "cfg", None), "pack", None), "cell", None)
        if pack is None or cell is None:
            return None
        cap = self.capacity_ah or cell.capacity_ah
        low = float(np.nanmin(v0))
        v_high = float(v0[self.cell - 1])
        soc_high = float(pack.soc_for_ocv(v_high))
        if self.mode == "passive":  # only the high cell moves
            soc_end = float(pack.soc_for_ocv(low + self.target_v))
            return max(0.0, soc_high - soc_end) * cap * 3600.0 / self.current_a
        # active: the high cell gives I; each of the n-1 others gets eta I v_high / ((n-1) v_low)
        soc_low = float(pack.soc_for_ocv(low))
        rate_h = self.current_a / (3600.0 * cap)
        rate_l = self.efficiency * rate_h * v_high / ((len(v0) - 1) * low)
        lo, hi = 0.0, max(0.0, soc_high - soc_low) / rate_h
        for _ in range(60):  # bisection on the time the OCV difference reaches the target
            mid = 0.5 * (lo + hi)
            gap = float(pack.ocv(soc_high - rate_h * mid) - pack.ocv(soc_low + rate_l * mid))
            lo, hi = (mid, hi) if gap > self.target_v else (lo, mid)
        return hi


def compile_balancing(spec: Any) -> BalancingStep | None:
    keys = ("imbalance", "target", "current", "soc", "cell", "timeout", "tolerance", "mode",
            "capacity", "efficiency")
    if not spec.mapping(keys, required=("current",)):
        return None
    imb = spec.quantity("imbalance", VOLTAGE, 0.05, positive=True)
    target = spec.quantity("target", VOLTAGE, 0.01, positive=True)
    cur = spec.quantity("current", CURRENT, required=True, positive=True)
    soc = spec.quantity("soc", RATIO, 0.9, minimum=0.0, maximum=1.0)
    cell = spec.integer("cell", 1)
    timeout = spec.quantity("timeout", TIME, 4 * 3600.0, positive=True)
    tol = spec.quantity("tolerance", RATIO, 0.05, minimum=0.0)
    mode = spec.choice("mode", ("passive", "active"), "passive")
    cap = spec.quantity("capacity", "charge")
    eff = spec.quantity("efficiency", RATIO, 0.85, positive=True, maximum=1.0)
    if not spec.ok or None in (imb, target, cur, soc, timeout, tol, mode, eff):
        return None
    return BalancingStep(f"bms_balancing {imb * 1000:g} mV -> {target * 1000:g} mV", spec.source(),
                         ("cell_voltage_v", "balancing", "cmd_balancing_enable"), "bms_balancing",
                         imbalance_v=imb, target_v=target, current_a=cur, soc=soc, cell=cell,
                         timeout_s=timeout, tolerance=tol, mode=mode, capacity_ah=cap,
                         efficiency=eff)


# ------------------------------------------------------------------------------------------------
# bms_soc


@dataclass(frozen=True)
class SocStep(_BmsStep):
    initial_soc: float = 0.8
    time_s: tuple[float, ...] = ()
    current_a: tuple[float, ...] = ()
    repeat: int = 1
    max_error: float = 0.05
    capacity_ah: float | None = None
    rest_s: float = 0.0
    settle_s: float = 0.0  # the RMSE is taken after this much of the profile (a filter converging)
    max_rmse: float | None = None

    def execute(self, run: Any) -> StepEnd:
        s = BmsSession(run)
        stim = _stimulus(s)
        stim.set_soc(self.initial_soc)
        stim.set_current(0.0)
        if not s.close_contactors(2.0):
            s.check("soc.contactor_closed_before", 0.0, "", 1, 1, "contactors did not close")
            return s.finish(self.text)
        if self.rest_s:  # the BMS re-learns its SoC from the OCV after a long enough rest
            s.observe(self.rest_s, chunk_s=30.0)
        cell = getattr(getattr(getattr(s.bms, "cfg", None), "pack", None), "cell", None)
        cap = self.capacity_ah or (cell.capacity_ah if cell is not None else None)
        if cap is None:
            raise LabctlError("bms_soc needs 'capacity' (the pack's cell capacity)")
        # Reference: the bench's reference meter (the charge that really flowed; none while
        # the contactors are open), counted from the known start.
        q0 = stim.reference_charge_ah()
        ref_t = [s.now]
        ref_soc = [self.initial_soc]
        batches = []
        durations = np.diff(np.append(self.time_s, self.time_s[-1] + (self.time_s[-1] - self.time_s[-2]
                                                                        if len(self.time_s) > 1 else 1.0)))
        for _ in range(self.repeat):
            for current, duration in zip(self.current_a, durations, strict=True):
                stim.set_current(current)
                batches.append(s.observe(float(duration), chunk_s=float(duration)))
                ref_t.append(s.now)
                ref_soc.append(self.initial_soc + (stim.reference_charge_ah() - q0) / cap)
                if s.stopped:
                    break
        stim.set_current(0.0)
        batch = FrameBatch.concat(batches)
        t, soc = s.series(batch, "soc")
        ref = np.interp(t, ref_t, ref_soc)
        err = soc - ref
        rows = {"test_time_s": t - s.offset, "soc_bms": soc, "soc_reference": ref}
        run.record("bms_soc", rows)
        s.check("soc.max_error", float(np.max(np.abs(err))) if len(err) else None, "1", None,
                self.max_error, "BMS SoC vs the reference Coulomb count over the profile")
        s.check("soc.final_error", float(abs(err[-1])) if len(err) else None, "1", None,
                self.max_error, "at the end of the profile")
        after = (t - ref_t[0]) >= self.settle_s
        s.check("soc.rmse_after_settle", float(np.sqrt(np.mean(err[after] ** 2))) if after.any()
                else None, "1", None, self.max_rmse,
                f"RMS error from {self.settle_s:g} s into the profile to its end")
        s.check("soc.charge_throughput", float(np.sum(np.abs(self.current_a) * durations)
                                               * self.repeat / 3600.0), "Ah", None, None, "")
        return s.finish(self.text)


def compile_soc(spec: Any) -> SocStep | None:
    if not spec.mapping(("initial_soc", "profile", "repeat", "max_error", "capacity", "rest",
                         "settle", "max_rmse"), required=("profile",)):
        return None
    soc0 = spec.quantity("initial_soc", RATIO, 0.8, minimum=0.0, maximum=1.0)
    repeat = spec.integer("repeat", 1)
    max_err = spec.quantity("max_error", RATIO, 0.05, positive=True)
    cap = spec.quantity("capacity", "charge")
    rest = spec.quantity("rest", TIME, 0.0, minimum=0.0)
    settle = spec.quantity("settle", TIME, 0.0, minimum=0.0)
    max_rmse = spec.quantity("max_rmse", RATIO, None, positive=True)
    prof = spec.raw("profile")
    times = currents = None
    if (not isinstance(prof, dict) or set(prof) != {"time", "current"}
            or not all(isinstance(prof[k], list) for k in prof)):
        spec.error("profile", "profile is {time: [s, ...], current: [A, ...]} (+ = charge)")
    else:
        try:
            times = tuple(float(x) for x in prof["time"])
            currents = tuple(float(x) for x in prof["current"])
        except (TypeError, ValueError):
            spec.error("profile", "profile times and currents must be numbers (s, A)")
        if times is not None and (len(times) != len(currents or ()) or len(times) < 1
                                  or any(b <= a for a, b in zip(times, times[1:], strict=False))):
            spec.error("profile", "profile needs as many currents as times, times increasing")
    if not spec.ok or times is None or currents is None:
        return None
    return SocStep(f"bms_soc {len(times)}-point profile x{repeat}", spec.source(),
                   ("soc", "cmd_contactor_close", "contactor_closed"), "bms_soc",
                   initial_soc=soc0, time_s=times, current_a=currents, repeat=repeat,
                   max_error=max_err, capacity_ah=cap, rest_s=rest, settle_s=settle or 0.0,
                   max_rmse=max_rmse)


# ------------------------------------------------------------------------------------------------
# bms_can_timing


@dataclass(frozen=True)
class TimingStep(_BmsStep):
    duration_s: float = 30.0
    cycle_tolerance: float = 0.05
    jitter_s: float | None = None
    timeout_periods: float = 3.0

    def execute(self, run: Any) -> StepEnd:
        s = BmsSession(run)
        s.close_contactors(1.0)
        t0 = s.now
        batch = s.observe(self.duration_s)
        batch = batch.select(batch.time_s >= t0)
        for c in message_checks(s.smap, s.decoder, batch, cycle_tolerance=self.cycle_tolerance,
                                jitter_limit_s=self.jitter_s, timeout_periods=self.timeout_periods,
                                duration_s=self.duration_s):
            s.checks.append(c)
        return s.finish(self.text)


def compile_timing(spec: Any) -> TimingStep | None:
    if not spec.mapping(("duration", "cycle_tolerance", "jitter", "timeout_periods")):
        return None
    d = spec.quantity("duration", TIME, 30.0, positive=True)
    tol = spec.quantity("cycle_tolerance", RATIO, 0.05, positive=True)
    jit = spec.quantity("jitter", TIME, None, positive=True)
    tp = spec.quantity("timeout_periods", "number", 3.0, positive=True)
    if not spec.ok or None in (d, tol, tp):
        return None
    return TimingStep(f"bms_can_timing {d:g} s", spec.source(), ("cmd_contactor_close",),
                      "bms_can_timing", duration_s=d, cycle_tolerance=tol, jitter_s=jit,
                      timeout_periods=tp)


# ------------------------------------------------------------------------------------------------
# bms_fault_injection


@dataclass(frozen=True)
class FaultStep(_BmsStep):
    fault: str = "open_wire"
    expect: str = "fault_sensor"
    within_s: float = 1.0
    cell: int | None = None
    node: str | None = None
    message: str | None = None
    message_role: str | None = None
    rate_v_per_s: float = 0.0
    count: int = 0
    every: int = 0
    delay_s: float = 0.0
    current_a: float = 0.0
    duration_s: float = 5.0

    def execute(self, run: Any) -> StepEnd:
        s = BmsSession(run)
        stim = _stimulus(s)
        if not s.close_contactors(1.0):
            s.check(f"{self.fault}.contactor_closed_before", 0.0, "", 1, 1, "contactors did not close")
            return s.finish(self.text)
        before = s.observe(1.0)  # frames before the fault: a gap at the boundary shows too
        message = self.message
        if message is None and self.message_role:
            message = s.smap.refs(self.message_role)[0].message
        t_on = s.now
        stim.inject(self.fault, cell=self.cell, node=self.node, message=message,
                    rate_v_per_s=self.rate_v_per_s, count=self.count, every=self.every,
                    delay_s=self.delay_s)
        if self.current_a:  # a load makes a stuck reading part from the real cell
            stim.set_current(self.current_a)
        batch = s.observe(max(self.duration_s, self.within_s + 2.0))
        stim.set_current(0.0)
        if self.expect.startswith("fault_"):
            first, before = s.first_true(batch, self.expect, t_on)
            s.check(f"{self.fault}.{self.expect}", None if first is None else first - t_on, "s",
                    None, self.within_s, f"time to the {self.expect} flag")
            t_open, _ = s.first_true(batch, "contactor_closed", t_on, value=False)
            s.check(f"{self.fault}.safe_state", None if t_open is None else t_open - t_on, "s",
                    None, self.within_s + (s.smap.period_s(s.smap.refs("contactor_closed")[0].message)
                                           or 0.1), "contactors open")
        else:
            # the bus check of that message (default limits) must fail: the fault was seen
            found = [c for c in message_checks(s.smap, s.decoder, FrameBatch.concat([before, batch]))
                     if c.name == f"{message}.{self.expect}"]
            if found:
                s.check(f"{self.fault}.{message}.{self.expect}", found[0].value, found[0].unit,
                        None, None, f"limits of the timing check: {found[0].low} .. {found[0].high}")
            s.check(f"{self.fault}.detected_{self.expect}",
                    float(bool(found) and found[0].verdict == "fail"), "", 1, 1,
                    f"the injected fault made the {self.expect} check of {message} fail")
        stim.clear_faults()
        s.observe(3.0)
        return s.finish(self.text)


def compile_fault(spec: Any) -> FaultStep | None:
    keys = ("fault", "expect", "within", "cell", "node", "message", "message_role", "rate", "count",
            "every", "delay", "current", "duration")
    if not spec.mapping(keys, required=("fault",)):
        return None
    fault = spec.choice("fault", tuple(FAULTS))
    if fault is None:
        return None
    expect = spec.text("expect", FAULTS[fault])
    within = spec.quantity("within", TIME, 1.0, positive=True)
    cell = spec.integer("cell")
    node = spec.text("node")
    message = spec.text("message")
    message_role = spec.text("message_role")
    rate = spec.quantity("rate", "number", 0.0)
    count = spec.integer("count", 0) if spec.raw("count") is not None else 0
    every = spec.integer("every", 0) if spec.raw("every") is not None else 0
    delay = spec.quantity("delay", TIME, 0.0, minimum=0.0)
    current = spec.quantity("current", CURRENT, 0.0)
    duration = spec.quantity("duration", TIME, 5.0, positive=True)
    if fault in ("stuck_sensor", "drifting_sensor", "open_wire") and cell is None:
        spec.error(None, f"fault {fault} needs 'cell'")
    if fault in ("drop_frames", "delay_frames", "bad_checksum") and not (message or message_role):
        spec.error(None, f"fault {fault} needs 'message' (a message the BMS sends) or "
                         "'message_role' (the role whose message it is, e.g. pack_current_a)")
    if fault == "delay_frames" and not delay:
        spec.error("delay", "fault delay_frames needs 'delay' (how late each frame leaves)")
    if not spec.ok or within is None:
        return None
    roles = ("contactor_closed", "cmd_contactor_close") + ((expect,) if expect.startswith("fault_") else ())
    return FaultStep(f"bms_fault_injection {fault}", spec.source(), roles, "bms_fault_injection",
                     fault=fault, expect=expect, within_s=within, cell=cell, node=node,
                     message=message, message_role=message_role, rate_v_per_s=rate or 0.0, count=count or 0,
                     every=every or 0, delay_s=delay or 0.0, current_a=current or 0.0, duration_s=duration)


# ------------------------------------------------------------------------------------------------
# bms_report


@dataclass(frozen=True)
class ReportStep(_BmsStep):
    def execute(self, run: Any) -> StepEnd:
        from labctl.analysis.bms.report import analyze_run

        summary = analyze_run(run.run_dir)
        return StepEnd(EndKind.CONDITION, f"BMS report: {summary['passed']} pass, "
                                          f"{summary['failed']} fail -> {summary['verdict']}")


def compile_report(spec: Any) -> ReportStep | None:
    if spec.value not in (None, {}) and not spec.mapping(()):
        return None
    return ReportStep("bms_report", spec.source(), (), "bms_report")


COMPILERS = {
    "bms_protection": compile_protection,
    "bms_balancing": compile_balancing,
    "bms_soc": compile_soc,
    "bms_can_timing": compile_timing,
    "bms_fault_injection": compile_fault,
    "bms_report": compile_report,
}
