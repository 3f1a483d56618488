"""Simulated thermal chamber: the air ramps linearly to the set-point, then holds."""

from __future__ import annotations

from typing import Any

import numpy as np

from labctl.capabilities.chamber import ChamberRanges
from labctl.errors import InstrumentError


class SimChamber:
    def __init__(self, world: Any, ranges: ChamberRanges, *, default_ramp_c_per_min: float = 2.0,
                 noise_c: float = 0.0, seed: int = 0, safe_setpoint_c: float = 25.0):
        self.world = world
        self.ranges = ranges
        self.default_ramp = default_ramp_c_per_min
        self.noise_c = noise_c
        self.rng = np.random.default_rng(seed)
        self.safe_setpoint_c = safe_setpoint_c
        now = world.clock.now()
        self._times = [now]
        self._temps = [world.ambient_c]
        self.setpoint_c = world.ambient_c
        world.chamber = self

    def identify(self) -> dict[str, str]:
        return {"make": "labctl", "model": "sim-chamber", "serial": "SIM-CH", "firmware": "virtual"}

    def air_temperature_at(self, t: np.ndarray) -> np.ndarray:
        return np.interp(t, self._times, self._temps)

    def set_temperature(self, setpoint_c: float, ramp_c_per_min: float | None = None) -> None:
        if not self.ranges.min_temperature_c <= setpoint_c <= self.ranges.max_temperature_c:
            raise InstrumentError(f"chamber set-point {setpoint_c} °C outside its range")
        now = self.world.clock.now()
        current = float(self.air_temperature_at(np.array([now]))[0])
        # Forget the planned future: the new ramp starts now from where the air is.
        keep = [i for i, t in enumerate(self._times) if t < now]
        self._times = [self._times[i] for i in keep] + [now]
        self._temps = [self._temps[i] for i in keep] + [current]
        rate = (ramp_c_per_min or self.default_ramp) / 60.0
        if self.ranges.max_ramp_c_per_min:
            rate = min(rate, self.ranges.max_ramp_c_per_min / 60.0)
        duration = abs(setpoint_c - current) / rate if rate > 0 else 0.0
        self._times.append(now + max(duration, 1e-9))
        self._temps.append(setpoint_c)
        self.setpoint_c = setpoint_c

    def temperature_c(self) -> float:
        value = float(self.air_temperature_at(np.array([self.world.clock.now()]))[0])
        if self.noise_c > 0:
            value += float(self.rng.normal(0, self.noise_c))
        return value

    def safe_state(self) -> None:
        self.set_temperature(self.safe_setpoint_c)

    def close(self) -> None:
        pass

    def get_state(self) -> dict:
        return {"times": self._times, "temps": self._temps, "setpoint_c": self.setpoint_c}

    def set_state(self, state: dict) -> None:
        self._times = list(state["times"])
        self._temps = list(state["temps"])
        self.setpoint_c = float(state["setpoint_c"])
