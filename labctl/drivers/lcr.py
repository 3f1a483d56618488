"""Keysight/Agilent E4980A and 4284A LCR meters as the potentiostat for pellet impedance.

An LCR meter measures one frequency at a time: the driver sets the frequency, triggers
over the bus (`*TRG`, which returns |Z|, phase in degrees and a status) and builds
the spectrum point by point, in ZTD mode. The test signal level is RMS, as labctl's
`EisSweep.amplitude` is: volts (PEIS) or amperes (GEIS). DC bias is not applied by
this driver (pellets between blocking electrodes are measured at 0 V). PyMeasure's
`AgilentE4980` and `Agilent4284A` classes do the talking.
Safe state: test signal to its minimum, trigger on hold (no measurement running).
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
    open_pymeasure,
    parse_idn,
)
from labctl.errors import InstrumentError, LabctlError
from labctl.station_spec import InstrumentSpec

# Standard instruments (no power/bias options): frequency, RMS level limits.
HARDWARE = {
    "keysight-e4980a": dict(min_frequency_hz=20.0, max_frequency_hz=2e6, max_amplitude_v=2.0,
                            max_amplitude_a=0.02, max_voltage_v=2.0 * math.sqrt(2),
                            max_current_a=0.02 * math.sqrt(2)),
    "agilent-4284a": dict(min_frequency_hz=20.0, max_frequency_hz=1e6, max_amplitude_v=2.0,
                          max_amplitude_a=0.02, max_voltage_v=2.0 * math.sqrt(2),
                          max_current_a=0.02 * math.sqrt(2)),
}
STATUS = {-1: "no data", 1: "analog bridge unbalanced (overload)", 2: "A/D converter not working",
          3: "signal source overloaded", 4: "ALC unable to regulate"}


class LcrPotentiostat:
    def __init__(self, inst: Any, family: str, ranges: PotentiostatRanges, clock: Any, *,
                 name: str, calibration_due: str | None = None):
        self.inst = inst
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
        problems = sweep_problems(sweep, self.ranges)
        if sweep.dc_bias not in (None, 0.0):
            problems.append(("dc_bias", "this LCR-meter driver measures at 0 V / 0 A DC only"))
        if problems:
            raise InstrumentError(f"{self.name}: " + "; ".join(m for _, m in problems))
        freqs = sweep.frequencies_hz()
        mag, phase, elapsed = (np.empty(len(freqs)) for _ in range(3))
        t0 = self.clock.now()
        with guarded(self.name):
            if sweep.mode is EisMode.PEIS:
                self.inst.ac_voltage = sweep.amplitude
            else:
                self.inst.ac_current = sweep.amplitude
            self.inst.write(f":APER MED,{int(sweep.averages)}")
            for k, f in enumerate(freqs):
                self.inst.frequency = float(f)
                a, b, status = self.inst.values("*TRG")[:3]
                if int(status) != 0:
                    raise InstrumentError(f"{self.name}: at {f:g} Hz: status {int(status)} "
                                          f"({STATUS.get(int(status), 'unknown')})")
                mag[k], phase[k] = a, b
                elapsed[k] = self.clock.now() - t0
        z = mag * np.exp(1j * np.radians(phase))
        return EisResult(frequency_hz=freqs, z_real_ohm=z.real, z_imag_ohm=z.imag,
                         elapsed_s=elapsed)

    def safe_state(self) -> None:
        with guarded(self.name):
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

    check_settings(binding, VISA_SETTINGS | {"name"})
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
                           calibration_due=binding.calibration_due)


def make_e4980a(binding: InstrumentSpec, context: Any) -> LcrPotentiostat:
    return _make(binding, context, "keysight-e4980a")


def make_4284a(binding: InstrumentSpec, context: Any) -> LcrPotentiostat:
    return _make(binding, context, "agilent-4284a")
