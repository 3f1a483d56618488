"""The simulated cycler channel: runs labctl steps on a cell's equivalent-circuit model.

A step is computed in batches of at most MAX_BATCH_INTERVALS internal intervals,
each all at once (no Python loop over samples):

1. the electrical solution over the batch's grid, in closed form piece by piece
   (`control.solve_span`). Every temperature dependence of the model (Arrhenius
   factor, 2-D tables) is evaluated once per batch, at the batch's mean cell
   temperature: predicted from the lumped thermal model (`_plan`), checked after
   the batch and recomputed once if the prediction missed;
2. the cell temperature from the exact interval heats (`thermal.temperatures`).
   Batches are planned, and if need be cut, so the cell drifts at most so far that
   its resistances change by MAX_PARAM_CHANGE within one: they stay within that of
   their true value, and mostly within half of it;
3. the first sample where an `until` condition or a safety limit holds, then the
   instant between that sample and the one before by root finding on the same
   closed form; that instant becomes the step's last sample.

End conditions and safety limits are judged on the true values; noise and
quantisation are applied to the logged values only.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import numpy as np

from labctl.capabilities.cycler import CyclerRanges, EndKind, SampleBatch, StepEnd
from labctl.capabilities.limits import SafetyLimits
from labctl.capabilities.steps import ElectricalStep, LoggingPolicy
from labctl.cells.spec import BOLTZMANN_EV_PER_K, ZERO_C_IN_K, CellSpec
from labctl.errors import LabctlError
from labctl.np_kernels import scalar, total
from labctl.sim.ageing import AgeingModel, AgeingState
from labctl.sim.batching import (
    aged_params,
    batch_intervals,
    batch_times,
    gross_charge,
    split_cumulative,
)
from labctl.sim.channel_checks import current_limit_a, refuse_impossible_step
from labctl.sim.control import Control, make_control, solve_span
from labctl.sim.ecm import CellState, CurrentPiece, Track
from labctl.sim.events import (
    Watch,
    condition_watches,
    safety_watches,
)
from labctl.sim.logging_grid import LogGrid
from labctl.sim.measure import Meter
from labctl.sim.params import Params, model_key, shared_params
from labctl.sim.pcg64 import default_rng
from labctl.sim.snapshots import check_version, rng_decoded, rng_snapshot
from labctl.sim.step_end import electrical_probe, end_at, first_event, needs_charge
from labctl.sim.thermal import (
    cooling,
    mean_temperature,
    temperatures,
    time_to_drift,
)

MAX_BATCH_INTERVALS = 4000  # memory stays flat on week-long steps
MAX_STEP_S = 30 * 86400.0  # a step that nothing else ends stops here (EndKind.LIMIT)
# Resistances move ~4 %/K at 0.3 eV. A batch evaluates the model at its (predicted, then
# checked) mean cell temperature and ends once the cell has moved so far that the
# Arrhenius factor changed by MAX_PARAM_CHANGE: resistances stay within it (mostly half).
MAX_PARAM_CHANGE = 0.12
DEFAULT_DRIFT_K = 2.0  # the same for models with temperature tables instead of Ea
PARAM_TEMPERATURE_STEP_K = 0.1  # the model is evaluated at temperatures rounded to this
HORIZON_MARGIN = 1.1  # plan batches a little past the predicted drift (the cut is exact)
PACED_BATCH_WALL_S = 0.5  # with a paced clock a batch lasts at most this much wall time
STATE_VERSION = 2  # 2: the noise generator's state as strings (sim/snapshots.py)
# The aged capacity and resistances are applied from step to step, and only once they
# have moved this much (relative) since the model was last rebuilt: rebuilding it every
# step cost 40 % of a cycle-life run's time, and 0.05 % is far below any fade one reads.
AGEING_REFRESH = 5e-4
AGEING_REFRESH_R = 2e-3  # resistances: 0.2 % of a 50 mOhm cell moves 1C voltage by 0.02 mV


class SimCyclerChannel:
    """One simulated cycler channel with one simulated cell on it."""

    def __init__(self, world: Any, cell: CellSpec, *, ranges: CyclerRanges,
                 noise: dict | None = None, resolution: dict | None = None, seed: int = 0,
                 initial_soc: float | None = None, name: str = "sim",
                 max_step_s: float = MAX_STEP_S):
        if cell.model is None:
            raise LabctlError(f"cell {cell.name!r} has no 'model:' section, so it cannot be simulated")
        self.world = world
        self.cell = cell
        self.model = cell.model
        self.ranges = ranges
        self.name = str(name)
        self.seed = int(seed)
        self.max_step_s = float(max_step_s)
        self.rng = default_rng(self.seed)  # PCG64 (sim/pcg64.py): its state is plain JSON
        self.meter = Meter(noise, resolution, self.rng)
        soc = self.model.initial_soc if initial_soc is None else float(initial_soc)
        self._state = CellState(soc, (0.0,) * len(self.model.rc_pairs),
                                float(self.model.initial_temperature_c))
        self._state_time = world.clock.now()
        m = self.model
        tables = [m.ocv_v, m.r0_ohm] + [t for pair in m.rc_pairs for t in (pair.r_ohm, pair.tau_s)]
        self._temperature_dependent = m.activation_energy_ev != 0.0 or any(
            t.depends_on_temperature for t in tables)
        self._two_d_tables = any(t.depends_on_temperature for t in tables)
        self._base_params: Params | None = None
        self._params_cache: dict[float, Params] = {}
        self._model_key = model_key(self.model, cell.capacity_ah)
        # The model before ageing, per temperature: an ageing refresh only rescales these
        # (building Params from the tables on every refresh cost ~10 % of a long run).
        self._fresh_params: dict[float, Params] = {}
        self._watch_cache: dict[tuple, list[Watch]] = {}
        self._grid_cache: dict[LoggingPolicy, LogGrid] = {}
        self._setup_cache: dict[tuple, tuple] = {}
        self._setup_by_id: dict[int, tuple] = {}
        # Ageing (labctl/sim/ageing.py): the state ages batch by batch; the model in use
        # carries the capacity fraction and resistance factor in `aged_params`.
        params = getattr(self.model, "ageing", None)
        self.ageing = None if params is None else AgeingModel(params, cell.capacity_ah)
        self.age = AgeingState()
        self._aged = (1.0, 1.0)
        self.output_on = False
        self.current_a = 0.0
        # Longest span of one batch (virtual s), set by the engine when hard interlocks
        # must be looked at between samples; None = as long as is efficient.
        self.max_batch_s: float | None = None

    # -- identity, state -------------------------------------------------------------------
    def identify(self) -> dict[str, str]:
        import labctl

        return {"make": "labctl", "model": "sim-cycler", "serial": f"SIM-{self.name}-{self.seed}",
                "firmware": labctl.__version__}

    @property
    def true_state(self) -> CellState:
        """The cell's noise-free state (SoC, RC voltages, temperature) at its last sample."""
        return self._state

    def get_state(self) -> dict:
        """JSON-serialisable snapshot: the cell, its ageing and the noise generator."""
        s = self._state
        return {"version": STATE_VERSION, "soc": s.soc, "v_rc": list(s.v_rc),
                "temperature_c": s.temperature_c, "rng": rng_snapshot(self.rng),
                "ageing": self.age.as_dict()}

    def ageing_summary(self) -> dict[str, float]:
        """The true ageing state: capacity fraction, resistance factor, throughput, age."""
        out = dict(self.age.as_dict())
        if self.ageing is None:
            out.update(capacity_fraction=1.0, resistance_factor=1.0)
        else:
            out.update(capacity_fraction=self.ageing.capacity_fraction(self.age),
                       resistance_factor=self.ageing.resistance_factor(self.age))
        return out

    def set_state(self, state: dict) -> None:
        try:
            check_version(state.get("version", 1), STATE_VERSION, "simulated cycler")
            v_rc = tuple(float(x) for x in state["v_rc"])
            new = CellState(float(state["soc"]), v_rc, float(state["temperature_c"]))
            # States saved before ageing existed carry none: the cell keeps its own.
            age = AgeingState.from_dict(state["ageing"]) if "ageing" in state else None
            rng = rng_decoded(self.rng, state["rng"]) if "rng" in state else None
        except (KeyError, TypeError, ValueError) as exc:
            raise LabctlError(f"simulated cycler: unusable saved state ({exc})") from None
        if len(v_rc) != len(self.model.rc_pairs):
            raise LabctlError(f"simulated cycler: saved state has {len(v_rc)} RC voltages, the "
                              f"cell model has {len(self.model.rc_pairs)} RC pairs")
        self._state = new
        self._state_time = self.world.clock.now()
        if age is not None:
            self.age = age
            self._refresh_ageing()
        if rng is not None:
            self.rng.bit_generator.state = rng

    def safe_state(self) -> None:
        self.output_on = False
        self.current_a = 0.0

    def close(self) -> None:
        self.safe_state()

    # -- running a step --------------------------------------------------------------------
    def run_step(self, step: ElectricalStep, limits: SafetyLimits,
                 logging: LoggingPolicy) -> Generator[SampleBatch, None, StepEnd]:
        setup = self._setup(step, limits, logging)
        if setup is None:  # checked once per distinct step
            self._check(step)
            setup = self._new_setup(step, limits, logging)
        self.output_on = True
        try:
            return (yield from self._run(setup))
        finally:
            # Also when the engine closes the generator early: output off, and the
            # state stays at the last sample yielded.
            self.safe_state()

    def _run(self, setup: tuple):
        clock = self.world.clock
        origin = clock.now()
        self._relax_until(origin)
        self._refresh_ageing()
        control, grid, (end_t, end_kind, end_reason), watches, probe, with_charge = setup
        extra = control.extra_times()
        span_cap = self._span_cap(control)
        k = 0
        totals = np.zeros(4)  # charge Ah, discharge Ah, charge Wh, discharge Wh
        first = True
        heat_w = None  # the last interval's heat and the temperature it was computed at
        heat_at_c = 0.0
        while True:
            state = self._state
            drift_k = self._max_drift_k(state.temperature_c)
            left_s = end_t - k * grid.dt_s
            n, param_temperature_c = self._plan(grid, control, state, heat_w, heat_at_c,
                                                span_cap, drift_k, left_s)
            times, on_grid, step_s = batch_times(grid, k, n, end_t, extra)
            for attempt in range(2):
                p = self._params(param_temperature_c)
                span = solve_span(control, p, state, times, on_grid, step_s, probe)
                temps = self._temperatures(state.temperature_c, span.track, origin, p,
                                           span.step_s)
                # (min, max) of temps, worked out once for the checks below.
                t_range = ((float(np.minimum.reduce(temps)), float(np.maximum.reduce(temps)))
                           if len(temps) else None)
                # A prediction that missed by more than the drift allowed (a chamber ramp,
                # a changing current): once more, at the batch's real mean temperature.
                if attempt or not self._temperature_dependent or max(
                    t_range[1] - param_temperature_c, param_temperature_c - t_range[0]
                ) <= drift_k:
                    break
                param_temperature_c = float(temps.mean())
            track, on_grid = span.track, span.on_grid
            cut = self._drift_cut(temps, state.temperature_c, grid, k, on_grid, drift_k,
                                  t_range)
            if cut is not None:
                track, temps = track.head(cut), temps[: cut + 1]
                on_grid = None if on_grid is None else on_grid[: cut + 1]
            q_gross = gross_charge(totals, track.dq_ah) if with_charge else None
            # The whole batch's temperature range bounds the (cut) track's: it only rules
            # watches out, the firing sample is still searched on the values themselves.
            hit = first_event(watches, span, track, temps, q_gross, p, self.world, origin,
                               0 if first else 1, t_range)
            end: StepEnd | None = None
            if hit is not None:
                j, t_e, watch, value, restarted = hit
                track, temps, on_grid = end_at(track, temps, on_grid, j, t_e, restarted,
                                                p, self.world, origin)
                end = StepEnd(watch.kind, watch.reason(value), watch.condition_index)
            elif cut is None and track.t[-1] >= end_t:
                end = StepEnd(end_kind, end_reason)
            if len(track.heat_w):
                heat_w, heat_at_c = float(track.heat_w[-1]), p.temperature_c
            batch = self._batch(track, temps, on_grid, grid, k, first, totals)
            k += (len(track) if on_grid is None else int(np.count_nonzero(on_grid))) - 1
            if self.ageing is not None:
                self._age_over(track, temps)
            self._state = CellState(float(track.soc[-1]), tuple(track.v_rc[:, -1].tolist()),
                                    float(temps[-1]))
            self.current_a = float(track.current_a[-1])
            self._state_time = origin + float(track.t[-1])
            clock.sleep_until(self._state_time)
            batch.state = self.get_state()
            yield batch
            first = False
            if end is not None:
                return end

    # -- pieces of _run ----------------------------------------------------------------------
    def _params(self, temperature_c: float) -> Params:
        """The model at this temperature (to PARAM_TEMPERATURE_STEP_K, so runs reuse them),
        with the aged capacity and resistances."""
        m = self.model
        capacity_ah = self.cell.capacity_ah * self._aged[0]
        if self._base_params is None:
            self._base_params = self._shared(None, lambda: aged_params(
                self._fresh(m.reference_temperature_c, capacity_ah), self._aged[1]))
        if not self._temperature_dependent:
            return self._base_params
        key = round(temperature_c / PARAM_TEMPERATURE_STEP_K) * PARAM_TEMPERATURE_STEP_K
        p = self._params_cache.get(key)
        if p is None:
            if self._two_d_tables:
                p = self._shared(key, lambda: aged_params(self._fresh(key, capacity_ah),
                                                          self._aged[1]))
            else:  # SoC-only tables: only the resistances change, by the Arrhenius factor
                p = self._shared(key, lambda: self._base_params.scaled(
                    m.arrhenius_factor(key), key))
            if len(self._params_cache) >= 256:
                self._params_cache.clear()
            self._params_cache[key] = p
        return p

    def _shared(self, temperature_key: float | None, build: Any) -> Params:
        """Params shared with the other simulated cells of this process (params.py)."""
        key = None if self._model_key is None else (self._model_key, self._aged,
                                                    temperature_key)
        return shared_params(key, build)

    def _fresh(self, temperature_c: float, capacity_ah: float) -> Params:
        """The unaged model at this temperature, with the given (aged) capacity."""
        p = self._fresh_params.get(temperature_c)
        if p is None:
            if len(self._fresh_params) >= 256:
                self._fresh_params.clear()
            p = Params(self.model, self.cell.capacity_ah, temperature_c)
            self._fresh_params[temperature_c] = p
        return p if capacity_ah == p.capacity_ah else p.with_capacity(capacity_ah)

    def _setup(self, step: ElectricalStep, limits: SafetyLimits, logging: LoggingPolicy
               ) -> tuple | None:
        """What `_run` derives from a step alone, once it has been made for this step (a
        cycle-life run repeats a handful of steps), else None.

        Looked up by identity first: the engine hands the same step objects over every
        cycle, and hashing a frozen step (all its fields) cost more than the lookup."""
        hit = self._setup_by_id.get(id(step))
        if hit is not None and hit[0] is step and hit[1] is limits and hit[2] is logging:
            return hit[3]
        try:
            setup = self._setup_cache.get((step, limits, logging))
        except TypeError:  # an unhashable step (a list from a Python procedure)
            return None
        if setup is not None:
            self._remember(step, limits, logging, setup)
        return setup

    def _remember(self, step: ElectricalStep, limits: SafetyLimits, logging: LoggingPolicy,
                  setup: tuple) -> None:
        # The entry holds the three objects, so their ids cannot be reused while it lives.
        if len(self._setup_by_id) >= 256:
            self._setup_by_id.clear()
        self._setup_by_id[id(step)] = (step, limits, logging, setup)

    def _new_setup(self, step: ElectricalStep, limits: SafetyLimits,
                   logging: LoggingPolicy) -> tuple:
        """(control, logging grid, time limit, watches, probe, needs charge) for a step that
        passed `_check`. Controls hold no state of their own, so one serves every run of
        the step."""
        control = make_control(step, self._current_limit(step))
        watches = self._watches(limits, step)
        setup = (control, self._grid(logging), self._time_limit(step), watches,
                 electrical_probe(watches), needs_charge(watches))
        try:
            if len(self._setup_cache) >= 256:
                self._setup_cache.clear()
            self._setup_cache[(step, limits, logging)] = setup
        except TypeError:
            return setup  # unhashable: made afresh every time, as its fields may change
        self._remember(step, limits, logging, setup)
        return setup

    def _watches(self, limits: SafetyLimits, step: ElectricalStep) -> list[Watch]:
        """Safety and end-condition watches (cached: the same few steps repeat all run)."""
        key = (limits, step.until)  # frozen dataclasses (a list from a Python procedure is not)
        try:
            watches = self._watch_cache.get(key)
        except TypeError:
            return safety_watches(limits) + condition_watches(step.until)
        if watches is None:
            if len(self._watch_cache) >= 256:
                self._watch_cache.clear()
            watches = self._watch_cache[key] = (safety_watches(limits)
                                                + condition_watches(step.until))
        return watches

    def _grid(self, logging: LoggingPolicy) -> LogGrid:
        try:
            grid = self._grid_cache.get(logging)
        except TypeError:  # not a (hashable) LoggingPolicy
            return LogGrid.from_policy(logging)
        if grid is None:
            if len(self._grid_cache) >= 256:
                self._grid_cache.clear()
            grid = self._grid_cache[logging] = LogGrid.from_policy(logging)
        return grid

    def _refresh_ageing(self) -> None:
        """Use the aged capacity and resistances once they have moved far enough."""
        if self.ageing is None:
            return
        aged = self.ageing.capacity_and_resistance(self.age)
        if (abs(aged[0] - self._aged[0]) > AGEING_REFRESH
                or abs(aged[1] / self._aged[1] - 1.0) > AGEING_REFRESH_R):
            self._aged = aged
            self._base_params = None
            self._params_cache.clear()

    def _age_over(self, track: Track, temps: np.ndarray) -> None:
        """Age the cell over one batch at its throughput, mean temperature, SoC and C-rate.

        The C-rate is the batch's mean |current| (a batch is part of one step: one CC
        level, or a CV hold whose current decays smoothly).
        """
        t = track.t
        duration = float(t[-1] - t[0])
        if duration <= 0:
            return
        if track.dq_const is not None:
            throughput = abs(track.dq_const) * (len(t) - 1)
        else:
            throughput = float(total(np.abs(track.dq_ah)))
        c_rate = throughput * 3600.0 / duration / self.cell.capacity_ah
        # sum / n is what temps.mean() computes (the same pairwise sum), without its overhead
        # (arr.sum() goes through numpy's Python-level _methods._sum to the same reduction).
        mean_c = float(total(temps)) / len(temps)
        self.ageing.advance(self.age, duration_s=duration, temperature_c=mean_c,
                            soc=0.5 * float(track.soc[0] + track.soc[-1]),
                            throughput_ah=throughput, c_rate=c_rate)

    def _max_drift_k(self, temperature_c: float) -> float:
        """How far the cell may drift within a batch: MAX_PARAM_CHANGE of the resistances."""
        ea = self.model.activation_energy_ev
        if ea <= 0:
            return DEFAULT_DRIFT_K
        sensitivity = ea / BOLTZMANN_EV_PER_K / (temperature_c + ZERO_C_IN_K) ** 2  # 1/K
        return min(5.0, max(0.5, MAX_PARAM_CHANGE / sensitivity))

    def _plan(self, grid: LogGrid, control: Control, state: CellState, heat_w: float | None,
              heat_at_c: float, span_cap: float | None, drift_k: float,
              left_s: float) -> tuple[int, float]:
        """Internal intervals of the next batch, and the temperature to evaluate the model at.

        With a temperature-dependent model the cell's heating or cooling is predicted
        (constant heat and ambient: an exponential approach to T_amb + q/h); the batch
        stops where the cell would have moved `drift_k` (or the chamber air would), and
        the model is evaluated at the batch's predicted mean temperature.
        """
        n = batch_intervals(grid, MAX_BATCH_INTERVALS, span_cap)
        if not self._temperature_dependent:
            return n, self.model.reference_temperature_c
        n = min(n, batch_intervals(grid, math.ceil(left_s / grid.dt_s - 1e-9), None))
        base = self._params(self.model.reference_temperature_c)
        m = self.model
        if heat_w is None:  # first batch of a step: estimate from the control
            i = control.nominal_current(base, state)
            r, _ = base.rc1(state.soc)
            heat_w = i * i * (base.r01(state.soc) + sum(r))  # at the reference temperature
            heat_at_c = m.reference_temperature_c
        # The heat scales with the resistances, which follow the cell temperature.
        heat_ref = heat_w / m.arrhenius_factor(heat_at_c)
        heat_w = heat_ref * m.arrhenius_factor(state.temperature_c)
        c_th, h = base.heat_capacity_j_per_k, base.heat_transfer_w_per_k
        now = self._state_time
        ambient = self.world.constant_ambient_c(now, now + n * grid.dt_s)
        ramping = ambient is None
        if ramping:  # a chamber ramp: keep the batch's change of ambient small too
            for _ in range(64):
                amb_now, amb_end = self.world.ambient_c_at(np.array([now, now + n * grid.dt_s]))
                if abs(amb_end - amb_now) <= drift_k or n <= grid.every:
                    break
                n = batch_intervals(grid, n // 2, None)
            ambient = 0.5 * float(amb_now + amb_end)
        seconds = time_to_drift(state.temperature_c, ambient, heat_w, drift_k, c_th, h)
        if seconds * HORIZON_MARGIN < n * grid.dt_s:
            n = batch_intervals(grid, max(1, math.ceil(seconds * HORIZON_MARGIN / grid.dt_s)),
                                 None)
            if ramping:
                ambient = float(self.world.ambient_c_at(np.array([now + 0.5 * n * grid.dt_s]))[0])
        # Mean temperature of the batch, consistent with the heat at that temperature.
        mean = state.temperature_c
        for _ in range(4):
            mean = mean_temperature(state.temperature_c, ambient,
                                    heat_ref * m.arrhenius_factor(mean), n * grid.dt_s, c_th, h)
        return n, mean

    def _temperatures(self, t0_c: float, track: Track, origin: float, p: Params,
                      step_s: float | None = None) -> np.ndarray:
        t = track.t
        ambient = self.world.constant_ambient_c(origin + t[0], origin + t[-1])
        if ambient is None:
            ambient = self.world.ambient_c_at(origin + t)
        if track.dq_const == 0.0 and step_s is not None and scalar(ambient):
            out = cooling(t0_c, float(ambient), step_s, len(t), p.heat_capacity_j_per_k,
                          p.heat_transfer_w_per_k)
            if out is not None:
                return out
        dt = step_s if step_s is not None else t[1:] - t[:-1]
        return temperatures(t0_c, dt, track.heat_w, ambient,
                            p.heat_capacity_j_per_k, p.heat_transfer_w_per_k)

    def _drift_cut(self, temps: np.ndarray, t0_c: float, grid: LogGrid, k: int,
                   on_grid: np.ndarray | None, drift_k: float,
                   t_range: tuple[float, float] | None = None) -> int | None:
        """Where the batch must end because the cell has warmed or cooled too far.
        `t_range`: (min, max) of temps when known."""
        if not self._temperature_dependent or len(temps) < 2:
            return None
        lo, hi = t_range if t_range is not None else (temps.min(), temps.max())
        if hi - t0_c <= drift_k and t0_c - lo <= drift_k:
            return None
        far = np.abs(temps - t0_c) > drift_k
        m = int(far.argmax())
        # Batches end on logged instants (the snapshot must match a logged sample).
        g = np.ones(len(temps), dtype=bool) if on_grid is None else on_grid
        index = k + np.cumsum(g) - 1
        ends = np.flatnonzero(g & (index % grid.every == 0))
        ends = ends[ends > 0]
        if len(ends) == 0 or ends[0] >= len(temps) - 1:
            return None
        before = ends[ends <= m]
        return int(before[-1] if len(before) else ends[0])

    def _batch(self, track: Track, temps: np.ndarray, on_grid: np.ndarray | None, grid: LogGrid,
               k: int, first: bool, totals: np.ndarray) -> SampleBatch:
        charge_ah, discharge_ah = split_cumulative(totals[0], totals[1], track.dq_ah,
                                                    track.dq_const)
        charge_wh, discharge_wh = split_cumulative(totals[2], totals[3], track.de_wh,
                                                    0.0 if track.dq_const == 0.0 else None)
        totals[:] = (charge_ah[-1], discharge_ah[-1], charge_wh[-1], discharge_wh[-1])
        sel = grid.select(k, track.voltage_v, track.current_a, on_grid, first)
        voltage, current, temperature = self.meter.read_all(
            track.voltage_v[sel], track.current_a[sel], temps[sel])
        return SampleBatch(
            step_time_s=track.t[sel],
            voltage_v=voltage,
            current_a=current,
            temperature_c=temperature,
            charge_ah=charge_ah[sel],
            discharge_ah=discharge_ah[sel],
            charge_wh=charge_wh[sel],
            discharge_wh=discharge_wh[sel],
        )

    def _relax_until(self, now: float) -> None:
        """Output off between steps: the RC voltages decay and the cell meets the ambient."""
        gap = now - self._state_time
        if gap <= 0:
            return
        state = self._state
        p = self._params(state.temperature_c)
        t = np.linspace(0.0, gap, int(min(256, max(1, math.ceil(gap / 60.0)))) + 1)
        track = CurrentPiece(p, state, 0.0, 0.0).solve(t)
        temps = self._temperatures(state.temperature_c, track, self._state_time, p)
        if self.ageing is not None:  # calendar ageing while the output is off
            self.ageing.advance(self.age, duration_s=gap, temperature_c=float(temps.mean()),
                                soc=state.soc)
        self._state = CellState(state.soc, tuple(float(x) for x in track.v_rc[:, -1]),
                                float(temps[-1]))
        self._state_time = now

    def _current_limit(self, step: ElectricalStep) -> float:
        return current_limit_a(step, self.ranges)

    def _time_limit(self, step: ElectricalStep) -> tuple[float, EndKind, str]:
        if step.duration_s is not None:
            return float(step.duration_s), EndKind.TIME, "time elapsed"
        if step.profile is not None and step.profile.time_s[-1] > 0:
            return float(step.profile.time_s[-1]), EndKind.TIME, "profile finished"
        days = self.max_step_s / 86400.0
        return self.max_step_s, EndKind.LIMIT, f"maximum step time reached ({days:g} days)"

    def _span_cap(self, control: Control) -> float | None:
        clock = self.world.clock
        speed = getattr(clock, "speed", None) if getattr(clock, "is_virtual", True) else 1.0
        cap = PACED_BATCH_WALL_S * speed if speed else None
        if self.max_batch_s is not None:  # the engine wants to look between samples
            cap = self.max_batch_s if cap is None else min(cap, self.max_batch_s)
        if control.max_span_s is not None:
            cap = control.max_span_s if cap is None else min(cap, control.max_span_s)
        return cap

    def _check(self, step: ElectricalStep) -> None:
        """Refuse what the channel cannot do (validation should have caught it already)."""
        refuse_impossible_step(step, self.ranges, self.name)
