"""`sim-calorimeter`: a simulated abuse-rated chamber / accelerating-rate calorimeter.

It holds one simulated cell (an `AbusePreset`: heat capacity, heat exchange,
decomposition reactions) and measures the cell's temperature. Its air is a
program (ramp to a set-point, adiabatic tracking of the cell, heaters off) and
the cell's heat balance is integrated lazily on the shared clock: whoever asks
(a step reading samples, the engine polling the interlocks, the simulated cycler
asking for the air around its cell) first brings the model up to `clock.now()`.

Hard interlocks, latched until the instrument is rebuilt and never overridable
by a procedure: over-temperature (cell or air at `interlock_temperature_c`,
found exactly by an event of the integration), door/lid open, emergency stop,
lost communication. Tests inject them with `inject_fault(kind, at_s)` or the
station setting `faults: {door_open: 1800}` (seconds after the instrument was built).
When one trips the heaters go off at that instant (the air cools towards the room);
lost communication additionally stops all readings, and `interlock_fault()` raises.
"""

from __future__ import annotations

import math
from bisect import bisect_right

import numpy as np

from labctl.capabilities.chamber import ChamberRanges, ThermalSamples
from labctl.errors import InstrumentError
from labctl.sim.abuse.cellthermal import ADIABATIC, DSC, OFF, RAMP, AirProgram, CellThermal
from labctl.sim.abuse.reactions import AbusePreset

FAULT_KINDS = ("over_temperature", "door_open", "emergency_stop", "lost_communication")
_FAULT_TEXT = {
    "over_temperature": "over-temperature",
    "door_open": "door/lid open",
    "emergency_stop": "emergency stop pressed",
    "lost_communication": "lost communication",
}
MAX_BUFFER = 200_000  # unread samples kept (older ones are dropped)
MAX_HISTORY = 20_000


class SimCalorimeter:
    def __init__(self, world, preset: AbusePreset, ranges: ChamberRanges, *, capacity_ah: float,
                 interlock_temperature_c: float, room_c: float = 25.0, soc: float = 1.0,
                 faults: dict[str, float] | None = None, default_ramp_c_per_min: float = 2.0,
                 air_time_constant_s: float = 900.0, name: str = "sim-calorimeter"):
        self.world = world
        self.clock = world.clock
        self.preset = preset
        self.ranges = ranges
        self.model = CellThermal(preset, capacity_ah)
        self.interlock_temperature_c = float(interlock_temperature_c)
        self.room_c = float(room_c)
        self.default_ramp_c_per_min = float(default_ramp_c_per_min)
        self.air_tau_s = float(air_time_constant_s)
        self.name = name
        self.t = self.clock.now()
        self.y = np.concatenate([[self.room_c, float(soc)], np.zeros(len(preset.reactions))])
        self.program = AirProgram(OFF, self.t, self.room_c, self.room_c, tau_s=self.air_tau_s)
        self.mode = "off"
        self.current_a = 0.0
        self.voltage_v = 0.0
        self.period_s = 10.0
        self.delta_c: float | None = 1.0
        self._next_grid = self.t
        self._last_pushed = -math.inf
        self._buf: list[dict[str, np.ndarray]] = []
        self._buf_n = 0
        self._hist_t = [self.t]
        self._hist_air = [self.room_c]
        self.tripped: str | None = None  # the reason, latched
        self.trip_kind: str | None = None
        self.trip_time: float | None = None
        self._scheduled: dict[str, float] = {}
        for kind, after_s in (faults or {}).items():
            self.inject_fault(kind, self.t + float(after_s))
        world.attach_chamber(self)

    # -- identity and the chamber capability ---------------------------------------------------
    def identify(self) -> dict[str, str]:
        return {"make": "labctl", "model": "sim-calorimeter", "serial": f"SIM-ARC-{self.preset.name}",
                "firmware": "sim", "preset": self.preset.name}

    @property
    def heater_on(self) -> bool:
        return self.mode in ("ramp", "adiabatic", "dsc")

    def temperature_c(self) -> float:
        """Chamber air temperature now."""
        self._catch_up()
        self._require_link()
        return self._air_now()

    def cell_temperature_c(self) -> float:
        self._catch_up()
        self._require_link()
        return float(self.y[0])

    @property
    def sample_heat_capacity_j_per_k(self) -> float:
        """The heat capacity of what is inside (stated with every measurement)."""
        return self.preset.heat_capacity_j_per_k

    @property
    def soc(self) -> float:
        return float(self.y[1])

    def set_temperature(self, setpoint_c: float, ramp_c_per_min: float | None = None) -> None:
        r = self.ranges
        if not (math.isfinite(setpoint_c) and r.min_temperature_c <= setpoint_c <= r.max_temperature_c):
            raise InstrumentError(f"calorimeter set-point {setpoint_c:g} °C outside its range "
                                  f"{r.min_temperature_c:g}..{r.max_temperature_c:g} °C")
        rate = self.default_ramp_c_per_min if ramp_c_per_min is None else float(ramp_c_per_min)
        if not rate > 0 or (r.max_ramp_c_per_min and rate > r.max_ramp_c_per_min * (1 + 1e-9)):
            raise InstrumentError(f"calorimeter ramp {rate:g} °C/min not possible; allowed: > 0 and "
                                  f"<= {r.max_ramp_c_per_min or math.inf:g}")
        self._command()
        self.program = AirProgram(RAMP, self.t, self._air_now(), float(setpoint_c), rate / 60.0)
        self.mode = "ramp"

    def set_dsc_ramp(self, target_c: float, rate_c_per_min: float) -> None:
        """Power-compensated ramp: the cell is held on a linear program from its present temperature."""
        self.set_temperature(target_c, rate_c_per_min)  # the same range checks
        self.program = AirProgram(DSC, self.t, float(self.y[0]), float(target_c),
                                  float(rate_c_per_min) / 60.0)
        self.mode = "dsc"

    def set_adiabatic(self) -> None:
        self._command()
        self.program = AirProgram(ADIABATIC, self.t, float(self.y[0]))
        self.mode = "adiabatic"

    def heaters_off(self) -> None:
        self._catch_up()
        self._off(self.t)

    def set_electrical_input(self, current_a: float, voltage_v: float) -> None:
        self._catch_up()
        self.current_a, self.voltage_v = float(current_a), float(voltage_v)

    def safe_state(self) -> None:
        self._catch_up()
        self._off(self.t)
        self.current_a = self.voltage_v = 0.0
        if self.trip_kind == "lost_communication":
            raise InstrumentError("no answer (lost communication); its own watchdog switched "
                                  "the heaters off")

    def close(self) -> None:
        pass

    # -- interlocks ------------------------------------------------------------------------------
    def inject_fault(self, kind: str, at_s: float | None = None) -> None:
        """Trip interlock `kind` at clock time `at_s` (now when None)."""
        if kind not in FAULT_KINDS:
            raise InstrumentError(f"unknown fault {kind!r}; allowed: {', '.join(FAULT_KINDS)}")
        self._scheduled[kind] = self.clock.now() if at_s is None else float(at_s)

    def interlock_fault(self) -> str | None:
        """The tripped interlock, or None; raises InstrumentError when communication is lost."""
        self._catch_up()
        self._require_link()
        return self.tripped

    def _require_link(self) -> None:
        if self.trip_kind == "lost_communication":
            raise InstrumentError(f"{self.name}: no answer since t = {self.trip_time:.1f} s")

    def _command(self) -> None:
        self._catch_up()
        self._require_link()
        if self.tripped:
            raise InstrumentError(f"{self.name}: interlock tripped ({self.tripped}); heaters stay "
                                  "off until a person resets it")

    def _trip(self, kind: str, t: float, detail: str = "") -> None:
        if self.tripped:
            return
        self.trip_kind, self.trip_time = kind, t
        self.tripped = _FAULT_TEXT[kind] + (f" ({detail})" if detail else "")
        self._scheduled.pop(kind, None)
        self._off(t)

    def _off(self, t: float) -> None:
        self.program = AirProgram(OFF, t, self._air_now(), self.room_c, tau_s=self.air_tau_s)
        self.mode = "off"

    # -- measuring -------------------------------------------------------------------------------
    def set_logging(self, period_s: float, delta_c: float | None) -> None:
        self._catch_up()
        self.period_s = float(period_s)
        self.delta_c = delta_c
        self._next_grid = self.t
        self._buf, self._buf_n = [], 0

    def advance(self, until_s: float, *, stop_above_c: float | None = None,
                stop_rate_above_c_per_min: float | None = None) -> ThermalSamples:
        """Integrate to `until_s` (or a stop), wait for it on the clock, return the unread samples."""
        stop, reason = self._integrate(until_s, stop_above_c, stop_rate_above_c_per_min,
                                       sample_end=True)
        self.clock.sleep_until(self.t)
        return self._drain(stop, reason)

    def _catch_up(self) -> None:
        now = self.clock.now()
        if now > self.t:
            self._integrate(now, None, None, sample_end=False)

    def _integrate(self, until_s: float, stop_above_c: float | None,
                   stop_rate: float | None, sample_end: bool) -> tuple[str, str]:
        while self.t < until_s:
            due = {k: t for k, t in self._scheduled.items() if t <= until_s}
            t_fault = min(due.values(), default=math.inf)
            if self.tripped is None and self.y[0] >= self.interlock_temperature_c:
                self._trip("over_temperature", self.t, f"cell {self.y[0]:.1f} °C >= limit "
                                                       f"{self.interlock_temperature_c:g} °C")
                return "fault", self.tripped or ""
            if t_fault <= self.t:
                kind = min(due, key=due.get)
                self._trip(kind, self.t, "injected" if kind == "over_temperature" else "")
                return "fault", self.tripped or ""
            t_end = min(until_s, t_fault, self.program.ramp_end if self.program.ramp_end > self.t
                        else math.inf)
            hit = self._segment(t_end, stop_above_c, stop_rate, sample_end)
            if hit is not None:
                return hit
        return "time", ""

    def _segment(self, t_end: float, stop_above_c: float | None, stop_rate: float | None,
                 sample_end: bool) -> tuple[str, str] | None:
        model, program = self.model, self.program
        i_a, v_v = self.current_a, self.voltage_v
        limit = self.interlock_temperature_c
        events, names = [], []
        if self.tripped is None:
            events.append(_event(lambda t, y: y[0] - limit))
            names.append("interlock")
        if stop_above_c is not None:
            events.append(_event(lambda t, y: y[0] - stop_above_c))
            names.append("temperature")
        if stop_rate is not None:
            events.append(_event(lambda t, y: model.rhs(t, y, program, i_a, v_v)[0] * 60.0
                                 - stop_rate))
            names.append("rate")
        t0 = self.t
        sol = model.integrate(t0, self.y, t_end, program, i_a, v_v, events)
        if sol.status == -1:
            raise InstrumentError(f"{self.name}: cell model integration failed: {sol.message}")
        t1 = float(sol.t[-1])
        which = None
        if sol.status == 1:
            which = next(names[k] for k, te in enumerate(sol.t_events) if len(te))
        due = [k for k, t in self._scheduled.items() if t <= t1]
        faulting = which == "interlock" or bool(due)
        # The sample at a fault instant is taken after the trip: it shows the heaters off.
        self._sample(sol, t0, t1, keep_end=(sample_end or which is not None) and not faulting)
        self.t, self.y = t1, np.array(sol.y[:, -1])
        self._remember_air(t1)
        if which == "interlock":
            self._trip("over_temperature", t1, f"cell {self.y[0]:.1f} °C >= limit {limit:g} °C")
        elif due:
            kind = min(due, key=lambda k: self._scheduled[k])
            self._trip(kind, t1, "injected" if kind == "over_temperature" else "")
        if faulting:
            self._sample_now(t1)
            return "fault", self.tripped or ""
        if which is not None:
            return which, f"{which} reached"
        return None

    def _sample(self, sol, t0: float, t1: float, keep_end: bool) -> None:
        grid = np.arange(self._next_grid, t1 + 1e-9, self.period_s)
        times = [grid]
        if self.delta_c:
            lev = np.floor(sol.y[0] / self.delta_c)
            times.append(sol.t[1:][lev[1:] != lev[:-1]])
        if keep_end:
            times.append(np.array([t1]))
        t = np.unique(np.concatenate(times))
        t = t[(t >= t0) & (t <= t1) & (t > self._last_pushed)]
        if len(grid):
            self._next_grid = float(grid[-1]) + self.period_s
        if len(t) == 0:
            return
        y = sol.sol(t) if sol.sol is not None else np.repeat(sol.y[:, -1:], len(t), axis=1)
        self._push(t, y)

    def _sample_now(self, t: float) -> None:
        self._push(np.array([t]), self.y[:, None])

    def _push(self, t: np.ndarray, y: np.ndarray) -> None:
        if self.trip_kind == "lost_communication":
            keep = t < (self.trip_time or math.inf)
            t, y = t[keep], y[:, keep]
            if not len(t):
                return
        model = self.model
        q = np.array([model.heat_flow_w(y[:, k], self.current_a, self.voltage_v) for k in range(len(t))])
        if self.program.kind == ADIABATIC:
            air = y[0].copy()
        else:
            air = np.asarray(self.program.air_c(t), dtype=float)
        on = self.heater_on
        self._buf.append({"time_s": t, "cell_temperature_c": y[0].copy(),
                          "chamber_temperature_c": air, "heat_flow_w": q,
                          "heater_on": np.full(len(t), on), "mode": np.full(len(t), self.mode),
                          "soc": y[1].copy()})
        self._buf_n += len(t)
        self._last_pushed = float(t[-1])
        while self._buf_n > MAX_BUFFER and len(self._buf) > 1:
            self._buf_n -= len(self._buf.pop(0)["time_s"])
        self._hist_t.extend(t.tolist())
        self._hist_air.extend(air.tolist())
        if len(self._hist_t) > MAX_HISTORY:
            half = len(self._hist_t) // 2
            self._hist_t, self._hist_air = self._hist_t[half:], self._hist_air[half:]

    def _drain(self, stop: str, reason: str) -> ThermalSamples:
        keys = ("time_s", "cell_temperature_c", "chamber_temperature_c", "heat_flow_w",
                "heater_on", "mode", "soc")
        if self._buf:
            cols = {k: np.concatenate([b[k] for b in self._buf]) for k in keys}
        else:
            cols = {k: np.array([]) for k in keys}
        self._buf, self._buf_n = [], 0
        return ThermalSamples(**cols, stop=stop, stop_reason=reason)

    # -- the air, as the simulated world's ambient ------------------------------------------------
    def _air_now(self) -> float:
        if self.program.kind == ADIABATIC:
            return float(self.y[0])
        return float(self.program.air_c(self.t))

    def _remember_air(self, t: float) -> None:
        if t > self._hist_t[-1]:
            self._hist_t.append(t)
            self._hist_air.append(self._air_now())

    def air_temperature_at(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        past = np.interp(t, self._hist_t, self._hist_air)
        if self.program.kind == ADIABATIC:
            future = np.full(t.shape, float(self.y[0]))
        else:
            future = np.asarray(self.program.air_c(t), dtype=float)
        return np.where(t <= self._hist_t[-1], past, future)

    def constant_between(self, t0: float, t1: float) -> float | None:
        inside = [x for x in self._hist_t[bisect_right(self._hist_t, t0):] if x < t1]
        probe = np.array([t0, t1, *inside, *([self.program.ramp_end]
                                             if t0 < self.program.ramp_end < t1 else [])])
        values = self.air_temperature_at(probe)
        return float(values[0]) if np.all(values == values[0]) else None


def _event(fn):
    fn.terminal = True
    fn.direction = 1
    return fn
