"""Simulated stack-pressure rig: the pressure ramps linearly to the set-point, then holds.

Like the simulated chamber, the history is kept as (time, pressure) breakpoints
on the shared clock, so the pressure at any instant (for instance at each
frequency of an EIS sweep) is one np.interp. The rig attaches itself to the
`SimWorld`; the simulated potentiostat reads the stack pressure from there.
"""

from __future__ import annotations

import math

import numpy as np

import labctl
from labctl.capabilities.pressure import PressureRanges
from labctl.errors import InstrumentError
from labctl.sim.pcg64 import default_rng

_MAX_BREAKPOINTS = 10_000


class SimPressureRig:
    def __init__(self, world, ranges: PressureRanges, *, initial_pressure_mpa: float = 0.0,
                 default_ramp_mpa_per_s: float = 0.5, noise_mpa: float = 0.0, seed: int = 0):
        if not default_ramp_mpa_per_s > 0:
            raise ValueError("default_ramp_mpa_per_s must be > 0")
        self.world = world
        self.ranges = ranges
        self.default_ramp_mpa_per_s = float(default_ramp_mpa_per_s)
        self.noise_mpa = float(noise_mpa)
        self.seed = int(seed)
        self.rng = default_rng(seed)
        now = world.clock.now()
        self._times = [now]
        self._values = [float(initial_pressure_mpa)]
        self.setpoint_mpa = float(initial_pressure_mpa)
        world.attach_press(self)

    def identify(self) -> dict[str, str]:
        return {"make": "labctl", "model": "sim-press", "serial": f"SIM-PR-{self.seed}",
                "firmware": labctl.__version__}

    def pressure_at(self, t: np.ndarray) -> np.ndarray:
        """True stack pressure at clock times `t` (vectorised)."""
        return np.interp(t, self._times, self._values)

    def pressure_mpa(self) -> float:
        value = float(self.pressure_at(np.array([self.world.clock.now()]))[0])
        if self.noise_mpa > 0:
            value += float(self.rng.normal(0.0, self.noise_mpa))
        return value

    def set_pressure(self, pressure_mpa: float, ramp_mpa_per_s: float | None = None) -> None:
        r = self.ranges
        if not (math.isfinite(pressure_mpa)
                and r.min_pressure_mpa <= pressure_mpa <= r.max_pressure_mpa):
            raise InstrumentError(f"pressure set-point {pressure_mpa:g} MPa outside the rig's range "
                                  f"{r.min_pressure_mpa:g}..{r.max_pressure_mpa:g} MPa")
        rate = self.default_ramp_mpa_per_s if ramp_mpa_per_s is None else float(ramp_mpa_per_s)
        if r.max_ramp_mpa_per_s:
            if ramp_mpa_per_s is None:
                rate = min(rate, r.max_ramp_mpa_per_s)
            elif rate > r.max_ramp_mpa_per_s * (1 + 1e-9):
                raise InstrumentError(f"pressure ramp {rate:g} MPa/s is faster than the rig's "
                                      f"max_ramp_mpa_per_s {r.max_ramp_mpa_per_s:g}")
        if not (math.isfinite(rate) and rate > 0):
            raise InstrumentError(f"pressure ramp must be > 0 MPa/s, got {rate:g}")
        self._move(float(pressure_mpa), rate)

    def _move(self, target: float, rate: float) -> None:
        now = self.world.clock.now()
        here = float(np.interp(now, self._times, self._values))
        # The planned future is replaced: the new ramp starts now from where the stack is.
        while self._times and self._times[-1] > now:
            self._times.pop()
            self._values.pop()
        self._times.append(now)
        self._values.append(here)
        if target != here:
            self._times.append(now + abs(target - here) / rate)
            self._values.append(target)
        self.setpoint_mpa = target
        if len(self._times) > _MAX_BREAKPOINTS:
            del self._times[: len(self._times) - _MAX_BREAKPOINTS]
            del self._values[: len(self._values) - _MAX_BREAKPOINTS]

    def safe_state(self) -> None:
        """Hold where the stack is now (a sudden release can delaminate the cell)."""
        now = self.world.clock.now()
        self._move(float(np.interp(now, self._times, self._values)), self.default_ramp_mpa_per_s)

    def close(self) -> None:
        self.safe_state()
