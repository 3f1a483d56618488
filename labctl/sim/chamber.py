"""Simulated thermal chamber: the air ramps linearly to the set-point, then holds.

The air temperature's history is kept as breakpoints (time, temperature) on the
shared clock, so the simulated cycler can ask for it at any instant of a step at
once (`air_temperature_at` is one np.interp).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right

import numpy as np

import labctl
from labctl.capabilities.chamber import ChamberRanges
from labctl.errors import InstrumentError, LabctlError
from labctl.sim.pcg64 import default_rng
from labctl.sim.snapshots import check_version, rng_decoded, rng_snapshot

# Resume snapshots: 2 holds the noise generator's state as strings (sim/snapshots.py).
_STATE_VERSION = 2

_MAX_BREAKPOINTS = 10_000  # older history is dropped beyond this (it is never asked for again)


class SimChamber:
    def __init__(self, world, ranges: ChamberRanges, *, default_ramp_c_per_min: float = 2.0,
                 noise_c: float = 0.0, seed: int = 0, safe_setpoint_c: float = 25.0):
        if not default_ramp_c_per_min > 0:
            raise ValueError("default_ramp_c_per_min must be > 0")
        self.world = world
        self.ranges = ranges
        self.default_ramp_c_per_min = float(default_ramp_c_per_min)
        self.noise_c = float(noise_c)
        self.seed = int(seed)
        self.rng = default_rng(seed)
        self.safe_setpoint_c = float(safe_setpoint_c)
        now = world.clock.now()
        self._times = [now]
        self._temps = [world.ambient_c]
        self.setpoint_c = world.ambient_c
        world.attach_chamber(self)

    def identify(self) -> dict[str, str]:
        return {"make": "labctl", "model": "sim-chamber", "serial": f"SIM-CH-{self.seed}",
                "firmware": labctl.__version__ if hasattr(labctl, "__version__") else "sim"}

    # -- the air -------------------------------------------------------------------------
    def air_temperature_at(self, t: np.ndarray) -> np.ndarray:
        return np.interp(t, self._times, self._temps)

    def constant_between(self, t0: float, t1: float) -> float | None:
        """The air temperature if it is the same all through [t0, t1], else None."""
        if t0 >= self._times[-1]:  # after the last breakpoint the air holds (the usual case)
            return float(self._temps[-1])
        value = float(np.interp(t0, self._times, self._temps))
        if float(np.interp(t1, self._times, self._temps)) != value:
            return None
        inside = self._temps[bisect_right(self._times, t0) : bisect_left(self._times, t1)]
        return value if all(x == value for x in inside) else None

    def temperature_c(self) -> float:
        """Measured air temperature now."""
        value = float(self.air_temperature_at(np.array([self.world.clock.now()]))[0])
        if self.noise_c > 0:
            value += float(self.rng.normal(0.0, self.noise_c))
        return value

    # -- control -------------------------------------------------------------------------
    def set_temperature(self, setpoint_c: float, ramp_c_per_min: float | None = None) -> None:
        r = self.ranges
        if not (math.isfinite(setpoint_c) and r.min_temperature_c <= setpoint_c <= r.max_temperature_c):
            raise InstrumentError(f"chamber set-point {setpoint_c:g} °C outside its range "
                                  f"{r.min_temperature_c:g}..{r.max_temperature_c:g} °C")
        if ramp_c_per_min is None:
            rate = self.default_ramp_c_per_min
            if r.max_ramp_c_per_min:
                rate = min(rate, r.max_ramp_c_per_min)
        else:
            rate = float(ramp_c_per_min)
            if not rate > 0 or (r.max_ramp_c_per_min and rate > r.max_ramp_c_per_min):
                raise InstrumentError(f"chamber ramp {ramp_c_per_min:g} °C/min not possible; "
                                      f"allowed: > 0 and <= {r.max_ramp_c_per_min or math.inf:g}")
        now = self.world.clock.now()
        air_now = float(np.interp(now, self._times, self._temps))
        # The planned future is replaced: the new ramp starts now from where the air is.
        keep = bisect_right(self._times, now)
        self._times = self._times[:keep]
        self._temps = self._temps[:keep]
        if self._times[-1] < now:
            self._times.append(now)
            self._temps.append(air_now)
        else:
            self._temps[-1] = air_now
        if setpoint_c != air_now:
            self._times.append(now + abs(setpoint_c - air_now) / (rate / 60.0))
            self._temps.append(float(setpoint_c))
        self.setpoint_c = float(setpoint_c)
        if len(self._times) > _MAX_BREAKPOINTS:
            half = len(self._times) // 2
            self._times, self._temps = self._times[half:], self._temps[half:]

    def safe_state(self) -> None:
        """Go to the safe set-point (within the chamber's range)."""
        r = self.ranges
        self.set_temperature(min(max(self.safe_setpoint_c, r.min_temperature_c), r.max_temperature_c))

    def close(self) -> None:
        pass

    # -- resume ----------------------------------------------------------------------------
    def get_state(self) -> dict:
        return {"version": _STATE_VERSION, "times": list(self._times),
                "temps": list(self._temps), "setpoint_c": self.setpoint_c,
                "rng": rng_snapshot(self.rng)}

    def set_state(self, state: dict) -> None:
        try:
            check_version(state.get("version", 1), _STATE_VERSION, "simulated chamber")
            times = [float(x) for x in state["times"]]
            temps = [float(x) for x in state["temps"]]
            setpoint_c = float(state["setpoint_c"])
            rng = rng_decoded(self.rng, state["rng"]) if "rng" in state else None
        except (KeyError, TypeError, ValueError) as exc:
            raise LabctlError(f"simulated chamber: unusable saved state ({exc})") from None
        self._times, self._temps, self.setpoint_c = times, temps, setpoint_c
        if rng is not None:
            self.rng.bit_generator.state = rng
