"""Step-response figures of a source (rise time, overshoot, settling), for qualification.

Pure functions on a sampled trace; a reference digitiser or a simulated source
provides the trace.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StepResponse:
    rise_time_s: float  # 10 % to 90 % of the step
    overshoot: float  # peak beyond the final value, as a fraction of the step (0 = none)
    settling_time_s: float  # last time outside ±settle_band of the step around the final value


def step_response(time_s: np.ndarray, value: np.ndarray, initial: float, final: float,
                  settle_band: float = 0.01) -> StepResponse:
    """Figures of a step from `initial` to `final` sampled at `time_s` (step at t = 0)."""
    t = np.asarray(time_s, dtype=float)
    y = np.asarray(value, dtype=float)
    span = final - initial
    if span == 0 or len(t) < 3:
        raise ValueError("a step response needs a non-zero step and at least 3 samples")
    x = (y - initial) / span  # 0 -> 1
    t10 = _first_crossing(t, x, 0.1)
    t90 = _first_crossing(t, x, 0.9)
    overshoot = max(0.0, float(x.max()) - 1.0)
    outside = np.flatnonzero(np.abs(x - 1.0) > settle_band)
    settling = float(t[outside[-1] + 1]) if len(outside) and outside[-1] + 1 < len(t) else (
        float("inf") if len(outside) else float(t[0]))
    return StepResponse(t90 - t10, overshoot, settling)


def _first_crossing(t: np.ndarray, x: np.ndarray, level: float) -> float:
    above = np.flatnonzero(x >= level)
    if not len(above):
        return float("inf")
    k = int(above[0])
    if k == 0:
        return float(t[0])
    # Linear interpolation between the samples around the crossing.
    return float(t[k - 1] + (level - x[k - 1]) * (t[k] - t[k - 1]) / (x[k] - x[k - 1]))


def second_order_step(time_s: np.ndarray, initial: float, final: float, natural_hz: float,
                      damping: float) -> np.ndarray:
    """A second-order control loop's step response (a simulated source's current loop)."""
    t = np.asarray(time_s, dtype=float)
    wn = 2 * np.pi * natural_hz
    z = damping
    if z >= 1.0:  # critically/over-damped: use the critically damped form
        x = 1 - (1 + wn * t) * np.exp(-wn * t)
    else:
        wd = wn * np.sqrt(1 - z * z)
        x = 1 - np.exp(-z * wn * t) * (np.cos(wd * t) + z / np.sqrt(1 - z * z) * np.sin(wd * t))
    return initial + (final - initial) * np.where(t >= 0, x, 0.0)
