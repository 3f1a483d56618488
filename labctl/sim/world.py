"""The simulated world: one clock and one ambient temperature shared by all simulated instruments.

The simulated cycler asks the world for the air around the cell; when a simulated
chamber is attached, that is the chamber's air, so a chamber set-point reaches the cell.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from labctl.clock import Clock


class AmbientSource(Protocol):
    def air_temperature_at(self, t: np.ndarray) -> np.ndarray: ...

    def constant_between(self, t0: float, t1: float) -> float | None: ...


class SimWorld:
    def __init__(self, clock: Clock, ambient_c: float = 25.0):
        self.clock = clock
        self.ambient_c = float(ambient_c)
        self.chamber: AmbientSource | None = None

    def attach_chamber(self, chamber: Any) -> None:
        """The chamber's air becomes the ambient of every simulated cell."""
        self.chamber = chamber

    def ambient_c_at(self, t: np.ndarray) -> np.ndarray:
        """Ambient temperature at clock times `t` (vectorised)."""
        t = np.asarray(t, dtype=float)
        if self.chamber is None:
            return np.full(t.shape, self.ambient_c)
        return self.chamber.air_temperature_at(t)

    def constant_ambient_c(self, t0: float, t1: float) -> float | None:
        """The ambient if it does not change between clock times t0 and t1, else None."""
        if self.chamber is None:
            return self.ambient_c
        return self.chamber.constant_between(t0, t1)
