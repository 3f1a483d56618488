"""Keysight/Agilent E4980A and 4284A LCR meters as the potentiostat for pellet impedance.

An LCR meter measures one frequency at a time: the driver sets the frequency, triggers
over the bus (`*TRG`, which returns |Z|, phase in degrees and a status) and builds
the spectrum point by point, in ZTD mode. The test signal level is RMS, as labctl's
`EisSweep.amplitude` is: volts (PEIS) or amperes (GEIS). PyMeasure's `AgilentE4980`
and `Agilent4284A` classes do the talking.

DC bias (PEIS `dc_bias`, volts): the standard instruments' internal bias source, on for
the sweep and off after it. E4980A: `:BIAS:VOLT <V>`, `:BIAS:STAT ON|OFF`, 0 to +-2 V
without option 001; 4284A: `BIAS:VOLT <V>`, `BIAS:STAT 1|0` (PyMeasure's
`bias_voltage`/`bias_enabled`), only 0, 1.5 or 2 V without option 001 (its standard
bias source has these three levels; data-sheet figures as recalled, not re-checked). A DC bias *current* (GEIS) needs option 001 and
is refused.

Time: with a virtual station clock each point advances the clock by an estimate of the
meter's measurement time, max(the sweep's own (settle + cycles x averages) periods,
averages x `point_time_s`), so records carry plausible times; with a wall clock the
instrument's real time passes by itself. `point_time_s` defaults are estimates for
the MED aperture (set your instrument's value in the station file).
Safe state: DC bias off, test signal to its minimum, trigger on hold.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from labctl.capabilities.potentiostat import (
    EisMode,
    EisResult,
    EisSweep,
    PotentiostatRanges,
    sweep_problems,
)
from labctl.drivers.visa_link import (
    VISA_SETTINGS,
    check_settings,
    guarded,
    number,
    open_pymeasure,
    parse_idn,
)
from labctl.errors import InstrumentError, LabctlError
from labctl.stations.spec import InstrumentSpec

# Standard instruments (no power/bias options): frequency, RMS level limits.
HARDWARE = {
    "keysight-e4980a": dict(min_frequency_hz=20.0, max_frequency_hz=2e6, max_amplitude_v=2.0,
                            max_amplitude_a=0.02, max_voltage_v=2.0 * math.sqrt(2),
                            max_current_a=0.02 * math.sqrt(2)),
    "agilent-4284a": dict(min_frequency_hz=20.0, max_frequency_hz=1e6, max_amplitude_v=2.0,
                          max_amplitude_a=0.02, max_voltage_v=2.0 * math.sqrt(2),
                          max_current_a=0.02 * math.sqrt(2)),
}
# Standard DC bias without option 001 (V): E4980A any level within +-2 V; 4284A 0/1.5/2 V.
BIAS_MAX_V = {"keysight-e4980a": 2.0, "agilent-4284a": 2.0}
BIAS_LEVELS_V = {"agilent-4284a": (0.0, 1.5, 2.0)}
# Estimated time per measurement at the MED aperture (s); station setting point_time_s.
POINT_TIME_S = {"keysight-e4980a": 0.1, "agilent-4284a": 0.2}
STATUS = {-1: "no data", 1: "analog bridge unbalanced (overload)", 2: "A/D converter not working",
          3: "signal source overloaded", 4: "ALC unable to regulate"}


class LcrPotentiostat:
    def __init__(self, inst: Any, family: str, ranges: PotentiostatRanges, clock: Any, *,
                 name: str, calibration_due: str | None = None,
                 point_time_s: float | None = None):
        self.inst = inst
        self.point_time_s = POINT_TIME_S[family] if point_time_s is None else point_time_s
        self.family = family
        self.ranges = ranges
        self.clock = clock
        self.name = name
        self.calibration_due = calibration_due
        with guarded(name):
            if family == "keysight-e4980a":
                inst.mode = "ZTD"
            else:
                inst.impedance_mode = "ZTD"
            inst.trigger_source = "BUS"

    def identify(self) -> dict[str, str]:
        with guarded(self.name):
            out = parse_idn(self.inst.ask("*IDN?"))
        if self.calibration_due:
            out["calibration_due"] = self.calibration_due
        return out

    def measure_spectrum(self, sweep: EisSweep) -> EisResult:
        problems = sweep_problems(sweep, self.ranges) + self._bias_problems(sweep)
        if problems:
            raise InstrumentError(f"{self.name}: " + "; ".join(m for _, m in problems))
        bias = float(sweep.dc_bias or 0.0)
        freqs = sweep.frequencies_hz()
        # The meter's time per point (estimate): never faster than the signal periods asked for.
        durations = np.maximum(sweep.point_durations_s(), int(sweep.averages) * self.point_time_s)
        mag, phase, elapsed = (np.empty(len(freqs)) for _ in range(3))
        t0 = self.clock.now()
        with guarded(self.name):
            if sweep.mode is EisMode.PEIS:
                self.inst.ac_voltage = sweep.amplitude
            else:
                self.inst.ac_current = sweep.amplitude
            self.inst.write(f":APER MED,{int(sweep.averages)}")
            if bias != 0.0:
                self._set_bias(bias)
            try:
                for k, f in enumerate(freqs):
                    start = self.clock.now()
                    self.inst.frequency = float(f)
                    a, b, status = self.inst.values("*TRG")[:3]
                    if self.clock.is_virtual:  # a wall clock has already moved by itself
                        self.clock.sleep_until(start + float(durations[k]))
                    if int(status) != 0:
                        raise InstrumentError(f"{self.name}: at {f:g} Hz: status {int(status)} "
                                              f"({STATUS.get(int(status), 'unknown')})")
                    mag[k], phase[k] = a, b
                    elapsed[k] = self.clock.now() - t0
            finally:
                if bias != 0.0:
                    self._bias_off()
        z = mag * np.exp(1j * np.radians(phase))
        return EisResult(frequency_hz=freqs, z_real_ohm=z.real, z_imag_ohm=z.imag,
                         elapsed_s=elapsed)

    def _bias_problems(self, sweep: EisSweep) -> list[tuple[str, str]]:
        bias = sweep.dc_bias
        if bias in (None, 0.0):
            return []
        if sweep.mode is EisMode.GEIS:
            return [("dc_bias", "a DC bias current needs the meter's option 001; not supported")]
        top = BIAS_MAX_V[self.family]
        if abs(bias) > top * (1 + 1e-9):
            return [("dc_bias", f"DC bias {bias:g} V is beyond the {self.family}'s +-{top:g} V")]
        levels = BIAS_LEVELS_V.get(self.family)
        if levels is not None and not any(abs(bias - x) < 1e-9 for x in levels):
            return [("dc_bias", f"the {self.family}'s standard DC bias is "
                                f"{', '.join(f'{x:g}' for x in levels)} V only, not {bias:g} V")]
        return []

    def _set_bias(self, volts: float) -> None:
        if self.family == "keysight-e4980a":
            self.inst.write(f":BIAS:VOLT {volts:g}")  # E4980A: not in PyMeasure's class
            self.inst.write(":BIAS:STAT ON")
        else:
            self.inst.bias_voltage = volts  # BIAS:VOLT (PyMeasure)
            self.inst.bias_enabled = True  # BIAS:STAT 1

    def _bias_off(self) -> None:
        if self.family == "keysight-e4980a":
            self.inst.write(":BIAS:STAT OFF")
        else:
            self.inst.bias_enabled = False

    def safe_state(self) -> None:
        with guarded(self.name):
            self._bias_off()
            self.inst.trigger_source = "HOLD"
            # The 4284A's level cannot go below 5 mV; the E4980A's can be 0.
            self.inst.ac_voltage = 0.0 if self.family == "keysight-e4980a" else 0.005

    def close(self) -> None:
        try:
            self.safe_state()
        finally:
            with guarded(self.name):
                self.inst.adapter.close()


def _make(binding: InstrumentSpec, context: Any, family: str) -> LcrPotentiostat:
    from pymeasure.instruments.agilent import Agilent4284A, AgilentE4980

    check_settings(binding, VISA_SETTINGS | {"name", "point_time_s"})
    hw = HARDWARE[family]
    merged = {**hw, "modes": ("PEIS", "GEIS"), **binding.ranges}
    for key, top in hw.items():
        if key.startswith("max") and merged[key] > top * (1 + 1e-9):
            raise LabctlError(f"{binding.role}: {key} {merged[key]:g} exceeds the {family}'s "
                              f"{top:g}")
    if merged["min_frequency_hz"] < hw["min_frequency_hz"]:
        raise LabctlError(f"{binding.role}: min_frequency_hz below the {family}'s "
                          f"{hw['min_frequency_hz']:g} Hz")
    ranges = PotentiostatRanges.from_mapping(merged)
    cls = AgilentE4980 if family == "keysight-e4980a" else Agilent4284A
    inst = open_pymeasure(cls, binding, context.station.source)
    name = str(binding.settings.get("name", f"{binding.role} ({family})"))
    return LcrPotentiostat(inst, family, ranges, context.clock, name=name,
                           calibration_due=binding.calibration_due,
                           point_time_s=number(binding, "point_time_s", None, 0.0))


def make_e4980a(binding: InstrumentSpec, context: Any) -> LcrPotentiostat:
    return _make(binding, context, "keysight-e4980a")


def make_4284a(binding: InstrumentSpec, context: Any) -> LcrPotentiostat:
    return _make(binding, context, "agilent-4284a")
