"""`sim-pybamm`: a simulated cycler channel whose cell is a PyBaMM model.

labctl's own simulator (`labctl.sim.cycler`) runs the cell file's equivalent-circuit
model, written here. This channel runs the same electrical steps on a model nobody
here wrote — PyBaMM's Thevenin equivalent circuit, SPMe or DFN with one of its
parameter sets — so labctl's analyses can be checked against it.

Each labctl step becomes one or more `pybamm.step` objects solved through PyBaMM's
experiment machinery (`pybamm.Simulation(..., experiment=...)` continued with
`starting_solution`). The step's `until` conditions and the safety limits are PyBaMM
termination events (`pybamm.step.CustomTermination`), so PyBaMM's solver locates each
cut-off itself and the step's last sample *is* the cut-off. Long steps are solved in
chunks (one PyBaMM step of at most CHUNK_INTERVALS logging intervals each, continued
from the previous chunk's last state): memory stays flat, every chunk is one sample
batch, and the shared virtual clock is advanced to each batch's end.

Mapping (PyBaMM's current is positive on discharge, labctl's on charge):

- rest, constant current: `pybamm.step.current`;
- CV hold with a current limit: a constant current at the limit towards the hold
  voltage until it is reached (as a cycler does), then `pybamm.step.voltage`; the CV
  current itself is not clamped (it decays from the limit in practice);
- constant power: `pybamm.step.power` (its current limit is enforced only through the
  safety limits);
- current / power profiles: one PyBaMM step per constant segment (labctl holds each
  value until the next time; PyBaMM's drive cycles interpolate linearly).

End conditions: voltage, |current|, temperature and the charge moved in the step
(Thevenin: |ΔSoC| x capacity, i.e. net charge; lithium-ion models: PyBaMM's throughput
capacity, i.e. gross charge). The chamber's air temperature (a `sim-chamber` on the same
station) is the model's ambient temperature, taken at the start of every step.

State: `get_state()` holds the values of the model's state variables at the last
sample (JSON lists), `set_state()` restarts the model from them, so `labctl resume`
and reconnects continue from the same cell for every model.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from labctl.capabilities.cycler import CyclerRanges, EndKind, SampleBatch, StepEnd
from labctl.capabilities.limits import SafetyLimits
from labctl.capabilities.steps import ElectricalStep, LoggingPolicy, Mode
from labctl.errors import InstrumentError, LabctlError
from labctl.sim.channel_checks import current_limit_a, refuse_impossible_step
from labctl.sim.events import Watch, condition_watches, safety_watches
from labctl.sim.logging_grid import LogGrid
from labctl.sim.measure import Meter
from labctl.sim.pcg64 import default_rng
from labctl.sim.snapshots import check_version, rng_decoded, rng_snapshot

MODELS = ("thevenin", "spme", "spm", "dfn")
DEFAULT_PARAMETER_SET = {"thevenin": "ECM_Example", "spme": "Chen2020", "spm": "Chen2020",
                         "dfn": "Chen2020"}
CHUNK_INTERVALS = 20000  # logged intervals per PyBaMM solve (one sample batch)
MAX_STEP_S = 30 * 86400.0  # a step that nothing else ends stops here (EndKind.LIMIT)
PACED_BATCH_WALL_S = 0.5  # with a paced clock a batch lasts at most this much wall time
CAPACITY_MISMATCH = 0.05  # the cell file's capacity must match the model's within this
STATE_VERSION = 2  # 2: the noise generator's state as strings (sim/snapshots.py)
_START_S = 1e-3  # length of the rest that produces the first state (PyBaMM needs a solve)
_EVENT = re.compile(r"labctl (until|safety|phase) (\d+)")
INSTALL_HINT = "sim-pybamm needs PyBaMM: pip install -e '.[pybamm]'"
# No network from a lab PC. Set at import, not where a channel's thread imports PyBaMM:
# changing the environment while another thread reads it is not safe in C.
os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")


def import_pybamm() -> Any:
    """PyBaMM, or the LabctlError that says how to install it."""
    try:
        import pybamm
    except ImportError:
        raise LabctlError(INSTALL_HINT) from None
    return pybamm


@dataclass
class _Phase:
    """One PyBaMM control held for part of a labctl step."""

    key: tuple  # identifies the control (PyBaMM simulations are cached per key and length)
    make: Callable[[float, float, list], Any]  # (duration, period, terminations) -> pybamm step
    until_s: float | None = None  # a phase of a profile ends at this step time
    phase_event: Callable[[dict], Any] | None = None  # ends only this phase (CV's CC part)


class PybammCyclerChannel:
    """One simulated cycler channel with a PyBaMM cell on it."""

    def __init__(self, world: Any, *, ranges: CyclerRanges, model: str = "thevenin",
                 parameter_set: str | None = None, parameters: dict | None = None,
                 options: dict | None = None, initial_soc: float = 1.0,
                 noise: dict | None = None, resolution: dict | None = None, seed: int = 0,
                 name: str = "pybamm", max_step_s: float = MAX_STEP_S):
        pybamm = import_pybamm()
        self.pybamm = pybamm
        self.world = world
        self.ranges = ranges
        self.name = str(name)
        self.seed = int(seed)
        self.max_step_s = float(max_step_s)
        self.rng = default_rng(self.seed)
        self.meter = Meter(noise, resolution, self.rng)
        model = str(model).lower()
        if model not in MODELS:
            raise LabctlError(f"sim-pybamm: model must be one of {', '.join(MODELS)}, got {model!r}")
        self.model_name = model
        self.parameter_set = str(parameter_set or DEFAULT_PARAMETER_SET[model])
        self.ecm = model == "thevenin"
        opts = dict(options or {})
        try:
            if self.ecm:
                self.model = pybamm.equivalent_circuit.Thevenin(options=opts or None)
            else:
                opts.setdefault("thermal", "lumped")  # a cell temperature to log and watch
                opts.setdefault("calculate discharge energy", "true")  # throughput capacity
                cls = {"spme": pybamm.lithium_ion.SPMe, "spm": pybamm.lithium_ion.SPM,
                       "dfn": pybamm.lithium_ion.DFN}[model]
                self.model = cls(options=opts)
            self.values = pybamm.ParameterValues(self.parameter_set)
        except Exception as exc:  # unknown parameter set or option: say which
            raise LabctlError(f"sim-pybamm: cannot set up {model} with parameter set "
                              f"{self.parameter_set!r}: {exc}") from None
        if parameters:
            self.values.update(dict(parameters))
        if self.ecm:
            self.values["Initial SoC"] = float(initial_soc)
        self.capacity_ah = float(self.values["Cell capacity [A.h]" if self.ecm
                                             else "Nominal cell capacity [A.h]"])
        self._t_var = "Cell temperature [degC]" if self.ecm else "Volume-averaged cell temperature [C]"
        self._sims: dict[tuple, Any] = {}
        self._last = self._first_state(float(initial_soc))
        self._state_time = world.clock.now()
        self.output_on = False
        self.current_a = 0.0
        self.max_batch_s: float | None = None  # set by the engine to look between samples

    # -- identity, state -------------------------------------------------------------------
    def identify(self) -> dict[str, str]:
        return {"make": "PyBaMM", "model": f"sim-pybamm {self.model_name} / {self.parameter_set}",
                "serial": f"PYBAMM-{self.name}-{self.seed}",
                "firmware": str(self.pybamm.__version__)}

    def _state_variables(self) -> list[Any]:
        """The model's state variables by name (concatenations split into their parts)."""
        out = []
        for var in self.model.initial_conditions:
            if isinstance(var, self.pybamm.Concatenation):
                out.extend(var.orphans)
            else:
                out.append(var)
        return out

    def get_state(self) -> dict:
        """JSON-serialisable snapshot: the model's state variables at the last sample."""
        last = self._last
        variables = {}
        for var in self._state_variables():
            entries = np.asarray(last[var.name].entries)
            variables[var.name] = np.asarray(entries[..., -1]).reshape(-1, order="F").tolist()
        return {"version": STATE_VERSION, "model": self.model_name,
                "parameter_set": self.parameter_set, "variables": variables,
                "rng": rng_snapshot(self.rng)}

    def set_state(self, state: dict) -> None:
        try:
            check_version(state.get("version", 1), STATE_VERSION, "sim-pybamm")
            rng = rng_decoded(self.rng, state["rng"]) if "rng" in state else None
            if state.get("model") != self.model_name:
                raise ValueError(f"it is for model {state.get('model')!r}, this channel runs "
                                 f"{self.model_name!r}")
            values = {k: np.asarray(v, dtype=float) for k, v in state["variables"].items()}
            model = self.model.set_initial_conditions_from(values, inplace=False)
            self._last = self._solve_start(model)
        except (KeyError, TypeError, ValueError, self.pybamm.ModelError) as exc:
            raise LabctlError(f"sim-pybamm: unusable saved state ({exc})") from None
        self._state_time = self.world.clock.now()
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
        self._check(step)
        self.output_on = True
        try:
            return (yield from self._run(step, limits, logging))
        finally:
            self.safe_state()  # also when the engine closes the generator early

    def _run(self, step: ElectricalStep, limits: SafetyLimits, logging: LoggingPolicy):
        pybamm = self.pybamm
        clock = self.world.clock
        origin = clock.now()
        self._relax_until(origin)
        grid = LogGrid.from_policy(logging)
        end_t, end_kind, end_reason = self._time_limit(step)
        watches = safety_watches(limits) + condition_watches(step.until)
        q0 = self._charge_now()
        ambient_k = float(self.world.ambient_c_at(np.array([origin]))[0]) + 273.15
        terms = [pybamm.step.CustomTermination(
            f"labctl {'safety' if w.kind is EndKind.SAFETY else 'until'} {i}",
            self._event_function(w, q0)) for i, w in enumerate(watches)]
        tag = (id(step), ambient_k)  # terminations hold this step's start charge
        t_step = 0.0
        k = 0
        first = True
        totals = np.zeros(4)  # charge Ah, discharge Ah, charge Wh, discharge Wh
        for phase in self._phases(step):
            phase_end = end_t if phase.until_s is None else min(end_t, phase.until_s)
            phase_terms = list(terms)
            if phase.phase_event is not None:
                phase_terms.append(pybamm.step.CustomTermination("labctl phase 0",
                                                                 phase.phase_event))
            while t_step < phase_end - 1e-9 * max(1.0, phase_end):
                chunk = self._chunk_s(grid, phase_end - t_step)
                sim = self._simulation(tag + phase.key, chunk, grid.dt_s, phase, phase_terms,
                                       ambient_k)
                try:
                    sol = sim.solve(starting_solution=self._last)
                except pybamm.SolverError as exc:
                    raise InstrumentError(f"{self.name}: PyBaMM solver failed: {exc}") from None
                sub = sol.sub_solutions[-1]
                termination = str(sol.termination)
                ran = len(sol.sub_solutions) > 1  # else PyBaMM refused the step at its start
                if not ran and "initial conditions" not in termination:
                    raise InstrumentError(f"{self.name}: PyBaMM cannot run this step from the "
                                          f"cell's present state ({termination})")
                if not ran:
                    sub = self._probe(phase, ambient_k)
                    ev = self._fires_at_start(watches, sub, q0)
                    if ev is None and phase.phase_event is not None:
                        break  # the CV hold's CC part is not needed: the next phase
                    if ev is None:
                        raise InstrumentError(f"{self.name}: PyBaMM refused the step at its "
                                              f"start ({termination})")
                    termination = f"event: labctl {ev}"
                else:
                    self._last = sol.last_state
                t, v, i, temp = self._arrays(sub)
                t = t - t[0] + t_step
                end, phase_done = self._ending(termination, watches, v, i, temp, sub, q0)
                if end is None and not phase_done and t[-1] >= end_t - 1e-9 * max(1.0, end_t):
                    end = StepEnd(end_kind, end_reason)
                batch = self._batch(t, v, i, temp, grid, k, first, totals)
                k += len(t) - 1
                t_step = float(t[-1])
                self.current_a = float(i[-1])
                self._state_time = origin + t_step
                clock.sleep_until(self._state_time)
                batch.state = self.get_state()
                yield batch
                first = False
                if end is not None:
                    return end
                if phase_done:
                    break
            if t_step >= end_t - 1e-9 * max(1.0, end_t):
                break
        return StepEnd(end_kind, end_reason)

    # -- pieces of _run ----------------------------------------------------------------------
    def _phases(self, step: ElectricalStep) -> list[_Phase]:
        pybamm = self.pybamm
        mode = step.mode

        def current(amps: float) -> Callable[[float, float, list], Any]:
            return lambda d, p, terms: pybamm.step.current(-amps, duration=d, period=p,
                                                           termination=terms)

        if mode is Mode.REST:
            return [_Phase(("rest",), current(0.0))]
        if mode is Mode.CURRENT:
            return [_Phase(("i", step.value), current(float(step.value)))]
        if mode is Mode.POWER:
            watts = float(step.value)
            return [_Phase(("p", watts), lambda d, p, terms: pybamm.step.power(
                -watts, duration=d, period=p, termination=terms))]
        if mode is Mode.VOLTAGE:
            hold = float(step.value)
            limit = self._current_limit(step)
            v_now = float(np.asarray(self._last["Voltage [V]"].entries).reshape(-1)[-1])
            sign = 1.0 if hold > v_now else -1.0

            def reached(var: dict) -> Any:  # positive until the hold voltage is reached
                return sign * (hold - var["Voltage [V]"])

            cc = _Phase(("cv-cc", hold, sign * limit), current(sign * limit), phase_event=reached)
            cv = _Phase(("cv", hold), lambda d, p, terms: pybamm.step.voltage(
                hold, duration=d, period=p, termination=terms))
            return [cc, cv]
        prof = step.profile
        assert prof is not None
        times = list(prof.time_s)
        # Each value is held until the next time; the last one for one more interval.
        last_dt = times[-1] - times[-2] if len(times) > 1 else 0.0
        ends = times[1:] + [times[-1] + last_dt]
        phases = []
        for value, stop in zip(prof.value, ends, strict=True):
            if mode is Mode.CURRENT_PROFILE:
                make = current(float(value))
            else:
                watts = float(value)
                make = (lambda w: lambda d, p, terms: pybamm.step.power(
                    -w, duration=d, period=p, termination=terms))(watts)
            phases.append(_Phase((mode.value, float(value)), make, until_s=float(stop)))
        return phases

    def _simulation(self, key: tuple, duration: float, period: float, phase: _Phase,
                    terms: list, ambient_k: float) -> Any:
        """A PyBaMM simulation of one chunk; reused for chunks of the same control and length."""
        pybamm = self.pybamm
        full = key + (round(duration, 9), period, phase.phase_event is not None)
        sim = self._sims.get(full)
        if sim is None:
            if len(self._sims) > 64:  # keep the cache to the steps in use
                self._sims.clear()
            values = self.values.copy()
            values["Ambient temperature [K]"] = ambient_k
            pstep = phase.make(duration, min(period, duration), terms)
            sim = pybamm.Simulation(self.model, parameter_values=values,
                                    experiment=pybamm.Experiment([pstep]))
            self._sims[full] = sim
        return sim

    def _chunk_s(self, grid: LogGrid, left_s: float) -> float:
        n = CHUNK_INTERVALS
        clock = self.world.clock
        speed = getattr(clock, "speed", None) if getattr(clock, "is_virtual", True) else 1.0
        cap = PACED_BATCH_WALL_S * speed if speed else None
        if self.max_batch_s is not None:
            cap = self.max_batch_s if cap is None else min(cap, self.max_batch_s)
        if cap is not None:
            n = min(n, max(1, int(cap / grid.dt_s)))
        chunk = n * grid.dt_s
        # Do not leave a sliver of a chunk for the end (PyBaMM steps must have a length).
        return left_s if left_s <= chunk * 1.5 else chunk

    def _event_function(self, w: Watch, q0: float) -> Callable[[dict], Any]:
        """PyBaMM event expression for a watch: positive before it holds, zero when it does."""
        value = self._symbol_for(w.key, q0)

        def event(var: dict) -> Any:
            x = value(var)
            return (w.threshold - x) if w.rising else (x - w.threshold)

        return event

    def _symbol_for(self, key: str, q0: float) -> Callable[[dict], Any]:
        if key == "v":
            return lambda var: var["Voltage [V]"]
        if key == "i":
            return lambda var: -var["Current [A]"]
        if key == "-i":
            return lambda var: var["Current [A]"]
        if key == "i_abs":
            return lambda var: abs(var["Current [A]"])
        if key == "temp":
            return lambda var: var[self._t_var]
        if self.ecm:  # charge moved in the step: net, from the SoC
            return lambda var: abs(var["SoC"] - q0) * self.capacity_ah
        return lambda var: var["Throughput capacity [A.h]"] - q0

    def _charge_now(self) -> float:
        name = "SoC" if self.ecm else "Throughput capacity [A.h]"
        return float(np.asarray(self._last[name].entries).reshape(-1)[-1])

    def _arrays(self, sol: Any) -> tuple[np.ndarray, ...]:
        t = np.asarray(sol["Time [s]"].entries, dtype=float).reshape(-1)
        v = np.asarray(sol["Voltage [V]"].entries, dtype=float).reshape(-1)
        i = -np.asarray(sol["Current [A]"].entries, dtype=float).reshape(-1)
        temp = np.asarray(sol[self._t_var].entries, dtype=float).reshape(-1)
        return t, v, i, temp

    def _ending(self, termination: str, watches: list[Watch], v: np.ndarray, i: np.ndarray,
                temp: np.ndarray, sol: Any, q0: float) -> tuple[StepEnd | None, bool]:
        """(why the step ended or None, whether only the phase ended)."""
        if termination == "final time":
            return None, False
        m = _EVENT.search(termination)
        if m is None:  # one of the model's own events (voltage cut-off, stoichiometry...)
            return StepEnd(EndKind.LIMIT, f"PyBaMM model event: {termination}"), False
        what, index = m.group(1), int(m.group(2))
        if what == "phase":
            return None, True
        w = watches[index]
        if w.key == "q":
            name = "SoC" if self.ecm else "Throughput capacity [A.h]"
            now = float(np.asarray(sol[name].entries).reshape(-1)[-1])
            value = abs(now - q0) * self.capacity_ah if self.ecm else now - q0
        else:
            values = {"v": v, "i": i, "-i": -i, "i_abs": np.abs(i), "temp": temp}
            value = float(values[w.key][-1])
        return StepEnd(w.kind, w.reason(value), w.condition_index), False

    def _probe(self, phase: _Phase, ambient_k: float) -> Any:
        """The cell just after the control switched (the step's end conditions left out)."""
        sim = self._simulation(("probe",) + phase.key, 1e-6, 1e-6, phase, [], ambient_k)
        sol = sim.solve(starting_solution=self._last)
        if len(sol.sub_solutions) < 2:
            raise InstrumentError(f"{self.name}: PyBaMM cannot run this step from the cell's "
                                  f"present state ({sol.termination})")
        return sol.sub_solutions[-1]

    def _fires_at_start(self, watches: list[Watch], sol: Any, q0: float) -> str | None:
        """Which watch holds right at the start ("until 2"...), safety first."""
        _, v, i, temp = self._arrays(sol)
        values = {"v": v[-1], "i": i[-1], "-i": -i[-1], "i_abs": abs(i[-1]), "temp": temp[-1],
                  "q": 0.0}
        for index, w in enumerate(watches):
            if w.margin(float(values[w.key])) >= 0:
                return f"{'safety' if w.kind is EndKind.SAFETY else 'until'} {index}"
        return None

    def _batch(self, t: np.ndarray, v: np.ndarray, i: np.ndarray, temp: np.ndarray,
               grid: LogGrid, k: int, first: bool, totals: np.ndarray) -> SampleBatch:
        # Charge and energy by the trapezoid rule on the solver's output grid (the internal
        # logging grid): exact for constant current, and at its resolution otherwise.
        dt = np.diff(t) / 3600.0
        dq = 0.5 * (i[1:] + i[:-1]) * dt
        de = 0.5 * (i[1:] * v[1:] + i[:-1] * v[:-1]) * dt
        cum = []
        for j, x in enumerate((np.maximum(dq, 0), np.maximum(-dq, 0), np.maximum(de, 0),
                               np.maximum(-de, 0))):
            c = np.concatenate([[0.0], np.cumsum(x)]) + totals[j]
            cum.append(c)
        totals[:] = [c[-1] for c in cum]
        sel = grid.select(k, v, i, None, first)
        voltage, current, temperature = self.meter.read_all(v[sel], i[sel], temp[sel])
        return SampleBatch(step_time_s=t[sel], voltage_v=voltage, current_a=current,
                           temperature_c=temperature, charge_ah=cum[0][sel],
                           discharge_ah=cum[1][sel], charge_wh=cum[2][sel],
                           discharge_wh=cum[3][sel])

    def _first_state(self, initial_soc: float) -> Any:
        if not 0.0 <= initial_soc <= 1.0:
            raise LabctlError(f"sim-pybamm: initial_soc must be within 0..1, got {initial_soc}")
        try:
            return self._solve_start(self.model, None if self.ecm else initial_soc)
        except self.pybamm.SolverError as exc:
            raise LabctlError(f"sim-pybamm: cannot start {self.model_name} / "
                              f"{self.parameter_set}: {exc}") from None

    def _solve_start(self, model: Any, initial_soc: float | None = None) -> Any:
        """The model's state after a very short rest: PyBaMM continues from solutions."""
        pybamm = self.pybamm
        sim = pybamm.Simulation(model, parameter_values=self.values.copy(),
                                experiment=pybamm.Experiment([pybamm.step.rest(
                                    duration=_START_S, period=_START_S)]))
        sol = sim.solve() if initial_soc is None else sim.solve(initial_soc=initial_soc)
        return sol.last_state

    def _relax_until(self, now: float) -> None:
        """Output off between steps: the cell rests (relaxes, meets the ambient)."""
        gap = now - self._state_time
        if gap <= 1e-6:
            return
        ambient_k = float(self.world.ambient_c_at(np.array([self._state_time]))[0]) + 273.15
        phase = _Phase(("rest",), lambda d, p, terms: self.pybamm.step.rest(
            duration=d, period=p, termination=terms))
        sim = self._simulation(("relax",), gap, gap / 4, phase, [], ambient_k)
        self._last = sim.solve(starting_solution=self._last).last_state
        self._state_time = now

    def _current_limit(self, step: ElectricalStep) -> float:
        return current_limit_a(step, self.ranges)

    def _time_limit(self, step: ElectricalStep) -> tuple[float, EndKind, str]:
        if step.duration_s is not None:
            return float(step.duration_s), EndKind.TIME, "time elapsed"
        if step.profile is not None and step.profile.time_s[-1] > 0:
            times = step.profile.time_s
            last = times[-1] + (times[-1] - times[-2] if len(times) > 1 else 0.0)
            return float(last), EndKind.TIME, "profile finished"
        days = self.max_step_s / 86400.0
        return self.max_step_s, EndKind.LIMIT, f"maximum step time reached ({days:g} days)"

    def _check(self, step: ElectricalStep) -> None:
        """Refuse what the channel cannot do (validation should have caught it already)."""
        refuse_impossible_step(step, self.ranges, self.name)


def check_cell_matches(cell: Any, channel: PybammCyclerChannel) -> None:
    """The procedure's C-rates come from the cell file: its capacity must be the model's."""
    if not math.isfinite(cell.capacity_ah) or abs(cell.capacity_ah / channel.capacity_ah - 1) \
            > CAPACITY_MISMATCH:
        raise LabctlError(
            f"sim-pybamm: cell {cell.name!r} has {cell.capacity_ah:g} Ah but the PyBaMM "
            f"parameter set {channel.parameter_set!r} has {channel.capacity_ah:g} Ah; use a cell "
            "file describing that cell (docs/characterization.md, 'Checking against PyBaMM')")
