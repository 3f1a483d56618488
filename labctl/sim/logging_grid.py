"""Which computed instants become logged samples.

The simulator computes the cell on an internal grid of step `period_s / every`
seconds from the step's start. Without delta rules `every` is 1: the internal
grid *is* the logging grid. With `delta_v` / `delta_i` the internal grid is at
most `DELTA_RESOLUTION_S` fine, and an extra sample is logged wherever the true
voltage (current) enters a new band of a fixed `delta_v` (`delta_i`) ladder
between two internal points: level crossings of a fixed grid, decided for all
points at once, rather than "moved by delta since the last logged sample", which
would need a loop over samples. The first and the last sample of a step are
always logged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from labctl.capabilities.steps import LoggingPolicy
from labctl.sim.ecm import grid_index

DELTA_RESOLUTION_S = 0.1


@dataclass(frozen=True)
class LogGrid:
    """A step's logging policy as the simulator samples it (period, decimation, V/I deltas)."""

    period_s: float
    every: int
    delta_v: float | None = None
    delta_i: float | None = None
    # The internal grid's spacing, period_s / every: worked out once (read ~10 times a step).
    dt_s: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dt_s", self.period_s / self.every)

    @classmethod
    def from_policy(cls, policy: LoggingPolicy) -> LogGrid:
        period = float(policy.period_s)
        if not (math.isfinite(period) and period > 0):
            raise ValueError(f"logging period must be > 0 s, got {policy.period_s!r}")
        dv = policy.delta_v if policy.delta_v else None
        di = policy.delta_i if policy.delta_i else None
        every = 1
        if dv or di:
            every = max(1, math.ceil(period / DELTA_RESOLUTION_S - 1e-9))
        return cls(period, every, dv, di)

    def times(self, k0: int, k1: int) -> np.ndarray:
        """Internal grid times k0..k1 (inclusive); multiples of `every` land exactly on periods."""
        k = grid_index(k1 - k0 + 1) + k0
        if self.every == 1:
            k *= self.period_s
            return k
        k /= self.every
        k *= self.period_s
        return k

    def select(self, k0: int, voltage_v: np.ndarray, current_a: np.ndarray,
               on_grid: np.ndarray | None, first: bool) -> np.ndarray | slice:
        """Indices of the batch's points to log.

        Point 0 is the previous batch's last point (logged there) unless `first`;
        the batch's last point is always logged. `k0` is point 0's internal index.
        """
        n = len(voltage_v)
        if on_grid is None and self.every == 1 and not (self.delta_v or self.delta_i):
            return slice(0 if first else 1, n)
        grid = np.ones(n, dtype=bool) if on_grid is None else on_grid
        index = k0 + np.cumsum(grid) - 1  # internal index of each grid point
        keep = grid & (index % self.every == 0)
        on = np.flatnonzero(grid)
        for delta, values in ((self.delta_v, voltage_v), (self.delta_i, current_a)):
            if delta:
                band = np.floor(values[on] / delta)
                keep[on[1:][band[1:] != band[:-1]]] = True
        keep[0] = first
        keep[-1] = True
        return np.flatnonzero(keep)
