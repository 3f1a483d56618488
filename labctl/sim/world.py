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
        # Set by the drivers: the simulated cycler channel holding the cell (so a simulated
        # potentiostat measures the same cell) and the pressure rig pressing it.
        self.cell_channel: Any | None = None
        self.press: Any | None = None

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

    def attach_press(self, rig: Any) -> None:
        """The rig's pressure becomes the stack pressure of the simulated cell."""
        self.press = rig

    def stack_pressure_mpa(self, t: float | None = None) -> float | None:
        """The stack pressure at clock time `t` (now if None); None without a pressure rig."""
        if self.press is None:
            return None
        when = self.clock.now() if t is None else t
        return float(self.press.pressure_at(np.array([when]))[0])
