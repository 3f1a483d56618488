"""The simulated cycler channel: runs labctl steps on the cell model in virtual time.

A step is computed in chunks (at most MAX_CHUNK_S of virtual time and
MAX_SAMPLES samples) so memory stays flat and the cell temperature used for
the resistances is refreshed often. End conditions and safety limits are found
on the chunk's grid, then the exact crossing inside the interval is found by
root finding on the closed-form solution, so the step's last sample is the
crossing itself.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import numpy as np

from labctl.capabilities.cycler import CyclerRanges, EndKind, SampleBatch, StepEnd
from labctl.capabilities.limits import SafetyLimits
from labctl.capabilities.steps import ElectricalStep, EndCondition, LoggingPolicy, Mode, Quantity
from labctl.cells.spec import CellSpec
from labctl.sim.ecm import (
    Cell,
    EcmState,
    Trajectory,
    find_root,
    hold_voltage,
    run_current,
    voltage_within,
)

MAX_CHUNK_S = 3600.0  # resistances use the chunk-start temperature
CV_LINEARISATION_V = 2e-4
MAX_SAMPLES = 4000
MAX_STEP_S = 30 * 86400.0
PACED_BATCH_WALL_S = 0.5
_UNITS = {Quantity.VOLTAGE: "V", Quantity.CURRENT: "A", Quantity.CHARGE: "Ah", Quantity.TEMPERATURE: "°C"}


class _Hit:
    def __init__(self, index: int, kind: EndKind, reason: str, cond: EndCondition | None = None,
                 cond_index: int | None = None):
        self.index, self.kind, self.reason, self.cond, self.cond_index = index, kind, reason, cond, cond_index


class SimCyclerChannel:
    def __init__(self, world: Any, cell: CellSpec, *, ranges: CyclerRanges,
                 noise: dict | None = None, resolution: dict | None = None, seed: int = 0,
                 initial_soc: float | None = None, name: str = "sim"):
        if cell.model is None:
            raise ValueError("cell has no model")
        self.world = world
        self.spec = cell
        self.cell = Cell(cell.model, cell.capacity_ah)
        self.ranges = ranges
        self.noise = {k: float(v) for k, v in (noise or {}).items()}
        self.resolution = {k: float(v) for k, v in (resolution or {}).items()}
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.name = name
        soc = cell.model.initial_soc if initial_soc is None else float(initial_soc)
        self.state = EcmState(soc, np.zeros(self.cell.n_rc), cell.model.initial_temperature_c)
        self.output_on = False
        self.current_a = 0.0

    # -- identity and state -------------------------------------------------------------------
    def identify(self) -> dict[str, str]:
        return {"make": "labctl", "model": "sim-cycler", "serial": f"SIM-{self.name}-{self.seed}",
                "firmware": "virtual"}

    def get_state(self) -> dict:
        return {"soc": self.state.soc, "v_rc": [float(x) for x in self.state.v_rc],
                "temperature_c": self.state.temperature_c,
                "rng": self.rng.bit_generator.state}

    def set_state(self, state: dict) -> None:
        self.state = EcmState(float(state["soc"]), np.array(state["v_rc"], dtype=float),
                              float(state["temperature_c"]))
        if "rng" in state:
            self.rng.bit_generator.state = state["rng"]

    def safe_state(self) -> None:
        self.output_on = False
        self.current_a = 0.0

    def close(self) -> None:
        self.safe_state()

    # -- measurement -------------------------------------------------------------------------
    def _measure(self, name: str, values: np.ndarray) -> np.ndarray:
        sigma = self.noise.get(name, 0.0)
        out = values + self.rng.normal(0.0, sigma, len(values)) if sigma > 0 else values.copy()
        step = self.resolution.get(name, 0.0)
        if step > 0:
            out = np.round(out / step) * step
        return out

    # -- the step --------------------------------------------------------------------------------
    def run_step(self, step: ElectricalStep, limits: SafetyLimits,
                 logging: LoggingPolicy) -> Generator[SampleBatch, None, StepEnd]:
        self.output_on = True
        try:
            return (yield from self._run(step, limits, logging))
        finally:
            self.safe_state()

    def _run(self, step, limits, logging):
        clock = self.world.clock
        origin = clock.now()
        dt = min(logging.period_s, 10.0)
        if logging.delta_v or logging.delta_i:
            dt = min(dt, 1.0)
        dt = max(dt, 1e-3)
        every = max(1, int(round(logging.period_s / dt)))
        duration = step.duration_s if step.duration_s is not None else MAX_STEP_S
        totals = np.zeros(4)  # charge_ah, discharge_ah, charge_wh, discharge_wh
        tau = 0.0
        first = True
        phase = "cv_cc" if step.mode is Mode.VOLTAGE else "main"
        speed = getattr(clock, "speed", None)
        chunk_s = MAX_CHUNK_S if speed is None else max(dt, min(MAX_CHUNK_S, PACED_BATCH_WALL_S * speed))
        while True:
            span = min(chunk_s, MAX_SAMPLES * dt, duration - tau)
            if span <= 0:
                return StepEnd(EndKind.TIME if step.duration_s is not None else EndKind.LIMIT,
                               "time elapsed" if step.duration_s is not None else "maximum step time")
            grid = np.arange(0.0, span, dt)
            grid = np.append(grid, span) if grid[-1] < span else grid
            if step.mode is Mode.CURRENT_PROFILE or step.mode is Mode.POWER_PROFILE:
                prof = np.asarray(step.profile.time_s) - tau
                inside = prof[(prof > 0) & (prof < span)]
                grid = np.union1d(grid, inside)
                if tau + span >= step.profile.time_s[-1] and step.duration_s is None:
                    duration = min(duration, step.profile.time_s[-1])
            traj, kind = self._chunk(step, phase, grid, tau, origin)
            extra: list[tuple[Quantity, str, float, str]] = []
            if phase == "cv_cc":
                if kind == "cv_now":
                    phase = "cv"
                    traj, kind = self._chunk(step, phase, grid, tau, origin)
                else:
                    op = ">=" if traj.current_a[0] > 0 else "<="
                    extra.append((Quantity.VOLTAGE, op, step.value, "__cv__"))
            moved = self._moved(traj, totals)
            hit = self._first_hit(step, limits, traj, moved, extra, tau, duration, first)
            if hit is not None:
                traj, moved = self._truncate(step, traj, moved, hit, tau, origin, kind)
            batch = self._batch(traj, moved, tau, every, logging, first, hit)
            self.state = EcmState(float(traj.soc[-1]), traj.v_rc[-1].copy(), float(traj.temperature_c[-1]))
            self.current_a = float(traj.current_a[-1])
            totals = moved[:, -1].copy()
            tau = float(tau + traj.t[-1])
            clock.sleep_until(origin + tau)
            batch.state = self.get_state()
            yield batch
            first = False
            if hit is not None:
                if hit.reason == "__cv__":
                    phase = "cv"
                    continue
                return StepEnd(hit.kind, hit.reason, hit.cond_index)
            if tau >= duration - 1e-9:
                return StepEnd(EndKind.TIME if step.duration_s is not None else EndKind.LIMIT,
                               "time elapsed" if step.duration_s is not None else "maximum step time")

    # -- one chunk of physics ----------------------------------------------------------------------
    def _ambient(self, origin: float, tau: float, grid: np.ndarray) -> np.ndarray:
        return np.asarray(self.world.ambient_c_at(origin + tau + grid), dtype=float)

    def _limit_current(self, step: ElectricalStep) -> float:
        lim = step.current_limit_a if step.current_limit_a is not None else self.ranges.max_current_a
        return min(abs(lim), self.ranges.max_current_a)

    def _chunk(self, step, phase, grid, tau, origin):
        amb = self._ambient(origin, tau, grid)
        n = len(grid) - 1
        mode = step.mode
        if mode in (Mode.REST, Mode.CURRENT):
            i = np.full(n, step.value if mode is Mode.CURRENT else 0.0)
            return run_current(self.cell, self.state, grid, i, amb), "current"
        if mode is Mode.CURRENT_PROFILE:
            return run_current(self.cell, self.state, grid, self._profile(step, grid[:-1] + tau), amb), "current"
        if mode in (Mode.POWER, Mode.POWER_PROFILE):
            p = np.full(n, step.value) if mode is Mode.POWER else self._profile(step, grid[:-1] + tau)
            return self._power(p, grid, amb), "current"
        # Voltage hold: CC at the limit until the hold voltage is reached, then CV.
        if phase == "cv_cc":
            i0, _, _, _, _ = hold_voltage(self.cell, self.state, step.value, np.array([0.0]), self.state.temperature_c)
            lim = self._limit_current(step)
            if abs(i0[0]) <= lim:
                return None, "cv_now"
            i = np.full(n, math.copysign(lim, i0[0]))
            return run_current(self.cell, self.state, grid, i, amb), "current"
        return self._cv(step, grid, amb), "cv"

    def _profile(self, step: ElectricalStep, times: np.ndarray) -> np.ndarray:
        pt = np.asarray(step.profile.time_s)
        pv = np.asarray(step.profile.value)
        idx = np.clip(np.searchsorted(pt, times, side="right") - 1, 0, len(pv) - 1)
        return pv[idx]

    def _power(self, p: np.ndarray, grid: np.ndarray, amb: np.ndarray):
        v_guess = float(self.cell.ocv(self.state.soc, self.state.temperature_c)) + self.state.v_rc.sum()
        i = p / max(v_guess, 0.1)
        for _ in range(8):
            traj = run_current(self.cell, self.state, grid, i, amb)
            i_new = p / np.maximum(traj.voltage_v[:-1], 0.1)
            if np.max(np.abs(i_new - i)) <= 1e-9 + 1e-7 * np.max(np.abs(i_new)):
                i = i_new
                break
            i = i_new
        traj = run_current(self.cell, self.state, grid, i, amb)
        # Report at each grid time the current that gives the set power at its voltage.
        return traj

    def _cv(self, step, grid, amb):
        temp = self.state.temperature_c
        cur, soc, v_rc, a0, b = hold_voltage(self.cell, self.state, step.value, grid, temp)
        # The chunk lasts while the linearised OCV stays within 0.2 mV of the real curve.
        err = np.abs(self.cell.ocv(soc, temp) - (a0 + b * soc))
        over = np.nonzero(err > CV_LINEARISATION_V)[0]
        if len(over):
            k = max(int(over[0]), 1)
            grid, cur, soc, v_rc = grid[: k + 1], cur[: k + 1], soc[: k + 1], v_rc[: k + 1]
            amb = amb[: k + 1]
        from labctl.sim.ecm import _rc_recurrence

        th = self.cell.m.thermal
        temperature = np.full(len(grid), temp)
        if th.heat_transfer_w_per_k > 0 and len(grid) > 1:
            r0, _, _ = self.cell.params(soc[:-1], temp)
            i_mid = 0.5 * (cur[1:] + cur[:-1])
            heat = i_mid**2 * r0 + i_mid * v_rc[:-1].sum(axis=1)
            log_a = -np.diff(grid) * (th.heat_transfer_w_per_k / th.heat_capacity_j_per_k)
            drive = -np.expm1(log_a) * (amb[:-1] + heat / th.heat_transfer_w_per_k)
            temperature = _rc_recurrence(temp, log_a, drive)
        volt = np.full(len(grid), step.value)
        return Trajectory(grid, soc, v_rc, volt, cur, temperature)

    # -- bookkeeping ---------------------------------------------------------------------------
    def _moved(self, traj, totals: np.ndarray) -> np.ndarray:
        """Cumulative charge in/out (Ah) and energy in/out (Wh), trapezoid on the fine grid."""
        dt_h = np.diff(traj.t) * (1.0 / 3600.0)
        cur = traj.current_a
        power = cur * traj.voltage_v
        moved = np.empty((4, len(traj.t)))
        moved[:, 0] = totals
        inc = np.empty((4, len(dt_h)))
        q = 0.5 * (cur[1:] + cur[:-1]) * dt_h
        e = 0.5 * (power[1:] + power[:-1]) * dt_h
        np.maximum(q, 0.0, out=inc[0])
        np.maximum(-q, 0.0, out=inc[1])
        np.maximum(e, 0.0, out=inc[2])
        np.maximum(-e, 0.0, out=inc[3])
        np.cumsum(inc, axis=1, out=moved[:, 1:])
        moved[:, 1:] += totals[:, None]
        return moved

    def _first_hit(self, step, limits, traj, moved, extra, tau, duration, first) -> _Hit | None:
        start = 0 if first else 1
        v, i, temp = traj.voltage_v, traj.current_a, traj.temperature_c
        charge = moved[0] + moved[1]
        best: _Hit | None = None

        def consider(mask: np.ndarray, make) -> None:
            nonlocal best
            if start:
                mask = mask[start:]
            if mask.any():
                k = int(np.argmax(mask)) + start
                if best is None or k < best.index:
                    best = make(k)

        values = {Quantity.VOLTAGE: v, Quantity.CURRENT: np.abs(i), Quantity.CHARGE: charge,
                  Quantity.TEMPERATURE: temp}
        for ci, cond in enumerate(step.until):
            arr = values[cond.quantity]
            mask = arr >= cond.value if cond.op == ">=" else arr <= cond.value
            if cond.quantity is Quantity.CURRENT and step.mode is Mode.VOLTAGE and not _in_cv(traj):
                continue
            consider(mask, lambda k, c=cond, j=ci: _Hit(k, EndKind.CONDITION, _reason(c, values[c.quantity][k]), c, j))
        for q, op, value, reason in extra:
            arr = values[q]
            consider(arr >= value if op == ">=" else arr <= value,
                     lambda k, q=q, op=op, value=value, reason=reason: _Hit(k, EndKind.CONDITION, reason, EndCondition(q, op, value)))
        # Safety limits on the true values: the same check the engine runs on measurements.
        violation = limits.first_violation(v[start:], i[start:], temp[start:])
        if violation is not None:
            k = violation[0] + start
            if best is None or k < best.index:
                best = _Hit(k, EndKind.SAFETY, violation[1])
        return best

    def _truncate(self, step, traj, moved, hit: _Hit, tau, origin, kind):
        k = hit.index
        if k == 0:
            sl = slice(0, 1)
            return _cut(traj, sl), moved[:, sl]
        cond = hit.cond
        t0, t1 = traj.t[k - 1], traj.t[k]
        delta = t1 - t0
        state_k = EcmState(float(traj.soc[k - 1]), traj.v_rc[k - 1].copy(), float(traj.temperature_c[k - 1]))
        i_k = float(traj.current_a[k - 1])
        if cond is not None and kind == "current" and cond.quantity is Quantity.VOLTAGE:
            temp = self.state.temperature_c  # the chunk's parameter temperature

            def f(d: float) -> float:
                return voltage_within(self.cell, state_k, i_k, d, temp) - cond.value

            try:
                delta = find_root(f, 0.0, t1 - t0, xtol=1e-5)
            except ValueError:
                delta = t1 - t0
        elif cond is not None and kind == "current" and cond.quantity is Quantity.CHARGE and i_k != 0:
            moved0 = moved[0, k - 1] + moved[1, k - 1]
            delta = min(max((cond.value - moved0) * 3600 / abs(i_k), 0.0), t1 - t0)
        elif cond is not None and kind == "cv" and cond.quantity is Quantity.CURRENT:
            def f(d):
                cur, _, _, _, _ = hold_voltage(self.cell, self.state, step.value, np.array([t0 + d]), self.state.temperature_c)
                return abs(cur[0]) - cond.value
            try:
                delta = find_root(f, 0.0, t1 - t0, xtol=1e-5)
            except ValueError:
                delta = t1 - t0
        grid = np.append(traj.t[:k], t0 + delta)
        if kind == "cv":
            new = self._cv(step, grid, self._ambient(origin, tau, grid))
            return new, self._moved(new, moved[:, 0])
        # Keep the chunk up to k-1 and add the one partial interval that ends at the crossing.
        last = run_current(self.cell, state_k, np.array([0.0, delta]), np.array([i_k]),
                           self._ambient(origin, tau + t0, np.array([0.0, delta])),
                           param_temperature_c=self.state.temperature_c)
        new = Trajectory(
            grid,
            np.append(traj.soc[:k], last.soc[1]),
            np.vstack([traj.v_rc[:k], last.v_rc[1:]]),
            np.append(traj.voltage_v[:k], last.voltage_v[1]),
            np.append(traj.current_a[:k], i_k),
            np.append(traj.temperature_c[:k], last.temperature_c[1]),
        )
        return new, self._moved(new, moved[:, 0])

    def _batch(self, traj, moved, tau, every, logging, first, hit) -> SampleBatch:
        n = len(traj.t)
        keep = np.zeros(n, dtype=bool)
        keep[::every] = True
        if logging.delta_v:
            lv = np.floor(traj.voltage_v / logging.delta_v)
            keep[1:] |= lv[1:] != lv[:-1]
        if logging.delta_i:
            li = np.floor(traj.current_a / logging.delta_i)
            keep[1:] |= li[1:] != li[:-1]
        keep[-1] = True
        if not first:
            keep[0] = False  # the previous batch already logged this instant
        idx = np.nonzero(keep)[0]
        return SampleBatch(
            step_time_s=tau + traj.t[idx],
            voltage_v=self._measure("voltage_v", traj.voltage_v[idx]),
            current_a=self._measure("current_a", traj.current_a[idx]),
            temperature_c=self._measure("temperature_c", traj.temperature_c[idx]),
            charge_ah=moved[0, idx], discharge_ah=moved[1, idx],
            charge_wh=moved[2, idx], discharge_wh=moved[3, idx],
        )


def _in_cv(traj) -> bool:
    return bool(np.all(traj.voltage_v == traj.voltage_v[0]))


def _cut(traj, sl):
    return Trajectory(traj.t[sl], traj.soc[sl], traj.v_rc[sl], traj.voltage_v[sl], traj.current_a[sl],
                      traj.temperature_c[sl])


def _reason(cond: EndCondition, value: float) -> str:
    if cond.quantity is Quantity.CURRENT:
        return f"current fell to {cond.value:.4g} A" if cond.op == "<=" else f"current reached {cond.value:.4g} A"
    if cond.quantity is Quantity.CHARGE:
        return f"moved {cond.value:.4g} Ah"
    return f"reached {cond.value:.4g} {_UNITS[cond.quantity]}" + (f" ({cond.text})" if cond.text and "limit" in cond.text else "")
