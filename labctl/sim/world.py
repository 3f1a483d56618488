"""The simulated world: one clock and one ambient temperature shared by all simulated instruments."""

from __future__ import annotations

from typing import Any

import numpy as np


class SimWorld:
    def __init__(self, clock: Any, ambient_c: float = 25.0):
        self.clock = clock
        self.ambient_c = float(ambient_c)
        self.chamber: Any = None  # a SimChamber registers itself here

    def ambient_c_at(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        if self.chamber is None:
            return np.full(t.shape, self.ambient_c)
        return self.chamber.air_temperature_at(t)
