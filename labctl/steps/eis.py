"""The `eis` step: measure one impedance spectrum on the station's potentiostat.

    - eis: {mode: PEIS, start: 100 kHz, stop: 100 mHz, points_per_decade: 10,
            amplitude: 10 mV, rest: 5 min, label: "after formation"}

Keys: mode (PEIS | GEIS, default PEIS), start, stop (frequencies), points_per_decade,
amplitude (V for PEIS, A or a C-rate for GEIS; RMS), dc_bias (V for PEIS, absent =
at open circuit; A for GEIS), cycles, averages, settle_periods, rest (time the cell
rests on the cycler before the sweep, logged), label (text kept with the spectrum).

Each spectrum becomes rows of the record table `spectra` (one per frequency),
identified by the step's `step_index` (unique per executed step, loops included;
every row also gets cycle_index): point (0.. in sweep order), label, frequency_hz, z_real_ohm,
z_imag_ohm, z_mod_ohm, phase_deg, dc voltage_v / current_a / temperature_c at
each point, pressure_mpa (when the station has a pressure rig), mode, amplitude
and test_time_s of each point. Works inside `repeat:` loops (every pass adds a
spectrum). Validation (before the run) checks the sweep against the pstat's
ranges in the station file and the cell's limits, naming the offending key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labctl.capabilities.cycler import EndKind, StepEnd
from labctl.capabilities.potentiostat import EisMode, EisSweep, PotentiostatRanges, sweep_problems
from labctl.capabilities.steps import SourceRef
from labctl.errors import Problem
from labctl.units import CURRENT, FREQUENCY, NUMBER, TIME, VOLTAGE

KEYS = ("mode", "start", "stop", "points_per_decade", "amplitude", "dc_bias", "cycles",
        "averages", "settle_periods", "rest", "label")
TABLE = "spectra"
MARK_S = 1e-3
DEFAULT_AMPLITUDE = {EisMode.PEIS: 0.010, EisMode.GEIS: None}  # 10 mV; GEIS needs one


@dataclass(frozen=True)
class EisStep:
    sweep: EisSweep
    rest_s: float = 0.0
    label: str = ""
    text: str = "eis"
    source: SourceRef = field(default_factory=SourceRef)
    sources: tuple[tuple[str, SourceRef], ...] = ()  # key -> where it was written
    kind: str = "eis"
    roles: tuple[str, ...] = ("pstat",)

    def _where(self, key: str) -> SourceRef:
        return dict(self.sources).get(key, self.source)

    def check(self, checker: Any) -> None:
        def add(key: str, message: str) -> None:
            src = self._where(key)
            checker.problems.append(Problem(src.file, src.line, src.column, src.field, message))

        ranges = checker.ranges("pstat")
        if ranges is not None:  # {} = the station gives no ranges: the defaults apply
            where = f" (pstat ranges in station {checker.station.name!r})"
            for key, message in sweep_problems(self.sweep, PotentiostatRanges.from_mapping(ranges)):
                add(key, message + where)
        limits = checker.cell.limits
        s = self.sweep
        peak = math.sqrt(2.0) * s.amplitude
        if s.mode is EisMode.PEIS and s.dc_bias is not None:
            lo, hi = s.dc_bias - peak, s.dc_bias + peak
            if hi > limits.max_voltage_v or lo < limits.min_voltage_v:
                add("dc_bias", f"DC bias {s.dc_bias:g} V +- {peak:g} V peak leaves the cell's "
                               f"voltage window {limits.min_voltage_v:g}..{limits.max_voltage_v:g} V "
                               f"({checker.cell.name})")
        if s.mode is EisMode.GEIS:
            dc = s.dc_bias or 0.0
            top = max(dc + peak, 0.0)
            bottom = max(-(dc - peak), 0.0)
            if top > limits.max_charge_current_a or bottom > limits.max_discharge_current_a:
                add("amplitude", f"GEIS current up to {max(top, bottom):g} A (DC {dc:g} A + "
                                 f"{peak:g} A peak) is above the cell's current limits "
                                 f"({limits.max_charge_current_a:g} A charge, "
                                 f"{limits.max_discharge_current_a:g} A discharge)")

    def execute(self, run: Any) -> StepEnd:
        pstat = run.instrument("pstat")
        # With a cycler, a (1 ms) rest sample before and after the sweep makes the steps
        # table show when the step began and ended; the cycler's output is off meanwhile.
        marks = run.optional_instrument("cycler") is not None
        if self.rest_s > 0 or marks:
            end = run.wait(max(self.rest_s, MARK_S))
            if end.kind is not EndKind.TIME:
                return end
        reason = run.stop_reason()
        if reason:
            return StepEnd(EndKind.ABORTED, reason)
        start = run.test_time()
        run.log("info", f"EIS {self.sweep.describe()}")
        result = pstat.measure_spectrum(self.sweep)
        n = len(result.frequency_hz)
        elapsed = result.column("elapsed_s")
        times = start + np.where(np.isfinite(elapsed), elapsed, run.test_time() - start)
        press = run.optional_instrument("press")
        pressure = float(press.pressure_mpa()) if press is not None else math.nan
        run.record(TABLE, {
            "point": np.arange(n),
            "label": [self.label] * n,
            "mode": [self.sweep.mode.value] * n,
            "amplitude": [self.sweep.amplitude] * n,
            "frequency_hz": result.frequency_hz,
            "z_real_ohm": result.z_real_ohm,
            "z_imag_ohm": result.z_imag_ohm,
            "z_mod_ohm": result.z_mod_ohm,
            "phase_deg": result.phase_deg,
            "voltage_v": result.column("dc_voltage_v"),
            "current_a": result.column("dc_current_a"),
            "temperature_c": result.column("temperature_c"),
            "pressure_mpa": [pressure] * n,
            "test_time_s": times,
        })
        if marks:
            end = run.wait(MARK_S)
            if end.kind is not EndKind.TIME:
                return end
        return StepEnd(EndKind.CONDITION, f"spectrum of {n} points in "
                                          f"{times[-1] - start:.0f} s")


def compile_eis(spec: Any) -> EisStep | None:
    """`StepTypeInfo.compile` for `eis:`."""
    if not spec.mapping(KEYS):
        return None
    mode_text = spec.choice("mode", ("PEIS", "GEIS"), default="PEIS")
    mode = EisMode(mode_text) if mode_text else EisMode.PEIS
    start = spec.quantity("start", FREQUENCY, 100e3, positive=True)
    stop = spec.quantity("stop", FREQUENCY, 0.1, positive=True)
    ppd = spec.quantity("points_per_decade", NUMBER, 10.0, positive=True, maximum=100.0)
    amp_kind = VOLTAGE if mode is EisMode.PEIS else CURRENT
    amplitude = spec.quantity("amplitude", amp_kind, DEFAULT_AMPLITUDE[mode], positive=True,
                              required=mode is EisMode.GEIS)
    dc_bias = spec.quantity("dc_bias", amp_kind, None)
    cycles = spec.integer("cycles", 1)
    averages = spec.integer("averages", 1)
    settle = spec.quantity("settle_periods", NUMBER, 1.0, minimum=0.0)
    rest = spec.quantity("rest", TIME, 0.0, minimum=0.0)
    label = spec.text("label", "") or ""
    if not spec.ok or None in (start, stop, ppd, amplitude, cycles, averages, settle, rest):
        return None
    if start == stop:
        spec.error("stop", "start and stop frequencies must differ")
        return None
    sweep = EisSweep(mode, start, stop, ppd, amplitude, dc_bias, cycles, averages, settle)
    sources = tuple((key, spec.source(key)) for key in KEYS if spec.raw(key) is not None)
    text = f"EIS {sweep.describe()}" + (f" [{label}]" if label else "")
    return EisStep(sweep, rest, label, text=text, source=spec.source(), sources=sources)
