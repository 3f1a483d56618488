"""Potentiostat capability: impedance spectroscopy (EIS) sweeps.

A driver (simulated potentiostat, LCR meter, real potentiostat) implements
`Potentiostat`: it gets an `EisSweep` and returns an `EisResult`, one spectrum
with Z = z_real_ohm + 1j * z_imag_ohm (a capacitive arc has z_imag_ohm < 0).

Conventions a driver must follow:
- `amplitude` is the RMS amplitude of the AC excitation: volts for PEIS,
  amperes for GEIS (LCR meters and most potentiostats state RMS; peak = sqrt(2) x RMS).
- `dc_bias` is the DC potential in V for PEIS (None = at open circuit, no DC
  current) and the DC current in A for GEIS (None = 0 A); current positive = charge.
- Points run from `start_frequency_hz` to `stop_frequency_hz` (either direction),
  log-spaced, `points_per_decade` per decade, both ends included (`frequencies_hz`).
- `measure_spectrum` blocks until the sweep is done (a simulated instrument
  advances the shared virtual clock instead) and returns the points in the
  order measured. Problems are raised as `labctl.errors.InstrumentError`.

No I/O here: `sweep_problems` is the pure range check used by validation and drivers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Protocol, runtime_checkable

import numpy as np


class EisMode(str, Enum):
    PEIS = "PEIS"  # potentiostatic: AC voltage excitation, current measured
    GEIS = "GEIS"  # galvanostatic: AC current excitation, voltage measured

    @property
    def amplitude_unit(self) -> str:
        return "V" if self is EisMode.PEIS else "A"


@dataclass(frozen=True)
class PotentiostatRanges:
    """What the instrument can do (station file `ranges:` of the pstat role).

    `max_current_a` / `max_voltage_v` bound DC plus AC peak (compliance);
    `max_amplitude_v` / `max_amplitude_a` bound the RMS excitation (None = only
    the compliance limits apply). `modes` lists the sweep modes supported.
    """

    min_frequency_hz: float
    max_frequency_hz: float
    max_current_a: float
    max_voltage_v: float
    max_amplitude_v: float | None = None
    max_amplitude_a: float | None = None
    modes: tuple[str, ...] = ("PEIS", "GEIS")

    @classmethod
    def from_mapping(cls, ranges: Mapping[str, object]) -> PotentiostatRanges:
        """From a station file's `ranges:` (defaults: a typical lab potentiostat)."""
        def num(key: str, default: float | None) -> float | None:
            value = ranges.get(key, default)
            return None if value is None else float(value)  # type: ignore[arg-type]

        modes = ranges.get("modes", ("PEIS", "GEIS"))
        if isinstance(modes, str):
            modes = (modes,)
        return cls(
            min_frequency_hz=num("min_frequency_hz", 10e-6),
            max_frequency_hz=num("max_frequency_hz", 1e6),
            max_current_a=num("max_current_a", 1.0),
            max_voltage_v=num("max_voltage_v", 10.0),
            max_amplitude_v=num("max_amplitude_v", None),
            max_amplitude_a=num("max_amplitude_a", None),
            modes=tuple(str(m).upper() for m in modes),  # type: ignore[union-attr]
        )


@dataclass(frozen=True)
class EisSweep:
    """One EIS sweep as a procedure asks for it (SI values)."""

    mode: EisMode = EisMode.PEIS
    start_frequency_hz: float = 100e3
    stop_frequency_hz: float = 0.1
    points_per_decade: float = 10.0
    amplitude: float = 0.010  # RMS; V for PEIS, A for GEIS
    dc_bias: float | None = None  # PEIS: V (None = open circuit); GEIS: A (None = 0 A)
    cycles: int = 1  # excitation periods integrated per frequency
    averages: int = 1  # repeats per frequency, averaged
    settle_periods: float = 1.0  # periods waited at each new frequency before integrating

    def frequencies_hz(self) -> np.ndarray:
        """The measured frequencies, in sweep order (log-spaced, both ends included)."""
        f0, f1 = float(self.start_frequency_hz), float(self.stop_frequency_hz)
        decades = abs(math.log10(f1 / f0))
        n = max(2, int(round(decades * self.points_per_decade)) + 1) if f0 != f1 else 1
        return np.logspace(math.log10(f0), math.log10(f1), n)

    def point_durations_s(self) -> np.ndarray:
        """Time each point takes: (settle + cycles x averages) periods."""
        periods = self.settle_periods + self.cycles * self.averages
        return periods / self.frequencies_hz()

    def duration_s(self) -> float:
        """Time the sweep takes on an ideal instrument (instruments add their own overhead)."""
        return float(self.point_durations_s().sum())

    def describe(self) -> str:
        unit = self.mode.amplitude_unit
        amp = f"{self.amplitude * 1e3:g} m{unit}" if self.amplitude < 1 else f"{self.amplitude:g} {unit}"
        bias = ""
        if self.dc_bias is not None:
            bias = f", DC {self.dc_bias:g} {unit}"
        return (f"{self.mode.value} {_hz(self.start_frequency_hz)} to {_hz(self.stop_frequency_hz)}, "
                f"{self.points_per_decade:g}/decade, {amp} rms{bias}")


@dataclass
class Spectrum:
    """One impedance spectrum; Z = z_real_ohm + 1j * z_imag_ohm."""

    frequency_hz: np.ndarray
    z_real_ohm: np.ndarray
    z_imag_ohm: np.ndarray

    @property
    def z(self) -> np.ndarray:
        return np.asarray(self.z_real_ohm) + 1j * np.asarray(self.z_imag_ohm)

    @property
    def z_mod_ohm(self) -> np.ndarray:
        return np.abs(self.z)

    @property
    def phase_deg(self) -> np.ndarray:
        return np.degrees(np.angle(self.z))


@dataclass
class EisResult(Spectrum):
    """A measured spectrum plus the DC conditions at each point (NaN = not measured).

    `elapsed_s`: time from the sweep's start to the end of each point.
    """

    dc_voltage_v: np.ndarray | None = None
    dc_current_a: np.ndarray | None = None
    temperature_c: np.ndarray | None = None
    elapsed_s: np.ndarray | None = None

    def column(self, name: str) -> np.ndarray:
        """A per-point column; missing ones are NaN of the right length."""
        value = getattr(self, name)
        n = len(self.frequency_hz)
        if value is None:
            return np.full(n, np.nan)
        return np.broadcast_to(np.asarray(value, dtype=float), (n,)).copy()


@runtime_checkable
class Potentiostat(Protocol):
    ranges: PotentiostatRanges

    def identify(self) -> dict[str, str]: ...

    def measure_spectrum(self, sweep: EisSweep) -> EisResult:
        """Run one sweep on the connected cell and return its spectrum (blocks until done)."""
        ...

    def safe_state(self) -> None:
        """Excitation off, cell at open circuit."""
        ...

    def close(self) -> None: ...


def sweep_problems(sweep: EisSweep, ranges: PotentiostatRanges) -> list[tuple[str, str]]:
    """(field, message) for every way `sweep` leaves `ranges`; empty when it fits.

    Fields are the sweep's: mode, start, stop, points_per_decade, amplitude,
    dc_bias, cycles, averages.
    """
    out: list[tuple[str, str]] = []
    if sweep.mode.value not in ranges.modes:
        out.append(("mode", f"{sweep.mode.value} is not supported by this potentiostat; "
                            f"allowed: {', '.join(ranges.modes)}"))
    span = f"allowed: {_hz(ranges.min_frequency_hz)} to {_hz(ranges.max_frequency_hz)}"
    for key, f in (("start", sweep.start_frequency_hz), ("stop", sweep.stop_frequency_hz)):
        if not (math.isfinite(f) and f > 0):
            out.append((key, f"{key} frequency must be a positive number of Hz, got {f!r}"))
        elif f > ranges.max_frequency_hz * (1 + 1e-9):
            out.append((key, f"{key} frequency {_hz(f)} is above the potentiostat's "
                             f"max_frequency_hz {_hz(ranges.max_frequency_hz)}; {span}"))
        elif f < ranges.min_frequency_hz * (1 - 1e-9):
            out.append((key, f"{key} frequency {_hz(f)} is below the potentiostat's "
                             f"min_frequency_hz {_hz(ranges.min_frequency_hz)}; {span}"))
    if not (math.isfinite(sweep.points_per_decade) and 0 < sweep.points_per_decade <= 100):
        out.append(("points_per_decade", f"points_per_decade must be within 0..100 (excl. 0), "
                                         f"got {sweep.points_per_decade!r}"))
    for key, n in (("cycles", sweep.cycles), ("averages", sweep.averages)):
        if not (isinstance(n, int) and n >= 1):
            out.append((key, f"{key} must be a whole number >= 1, got {n!r}"))
    if not (math.isfinite(sweep.settle_periods) and sweep.settle_periods >= 0):
        out.append(("settle_periods", f"settle_periods must be >= 0, got {sweep.settle_periods!r}"))
    unit = sweep.mode.amplitude_unit
    amp = sweep.amplitude
    if not (math.isfinite(amp) and amp > 0):
        out.append(("amplitude", f"amplitude must be a positive number of {unit}, got {amp!r}"))
        return out
    bias = 0.0 if sweep.dc_bias is None else float(sweep.dc_bias)
    if not math.isfinite(bias):
        out.append(("dc_bias", f"dc_bias must be a finite number of {unit}"))
        return out
    max_amp = ranges.max_amplitude_v if sweep.mode is EisMode.PEIS else ranges.max_amplitude_a
    if max_amp is not None and amp > max_amp * (1 + 1e-9):
        out.append(("amplitude", f"amplitude {amp:g} {unit} rms is above the potentiostat's "
                                 f"max_amplitude_{unit.lower()} {max_amp:g} {unit}; "
                                 f"allowed: up to {max_amp:g} {unit}"))
    compliance = ranges.max_voltage_v if sweep.mode is EisMode.PEIS else ranges.max_current_a
    name = "max_voltage_v" if sweep.mode is EisMode.PEIS else "max_current_a"
    peak = abs(bias) + math.sqrt(2.0) * amp
    if peak > compliance * (1 + 1e-9):
        what = "dc_bias" if abs(bias) > compliance else "amplitude"
        out.append((what, f"DC bias {abs(bias):g} {unit} + AC peak {math.sqrt(2) * amp:g} {unit} = "
                          f"{peak:g} {unit} is above the potentiostat's {name} {compliance:g} "
                          f"{unit}"))
    return out


def _hz(f: float) -> str:
    for scale, unit in ((1e6, "MHz"), (1e3, "kHz"), (1.0, "Hz"), (1e-3, "mHz")):
        if abs(f) >= scale:
            return f"{f / scale:g} {unit}"
    return f"{f * 1e6:g} µHz"
