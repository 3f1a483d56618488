"""A CellModel's tables resampled on a uniform SoC grid, for lookups over many cells at once.

`Table.__call__` interpolates with np.interp (a binary search per value); on a
uniform grid the index is just soc * (n - 1), which keeps a filter step over
10,000 cells at a handful of gathers. All cells share one model and one
temperature per step (the chamber's); their states and capacities differ.

Temperature follows the simulator's rule (labctl.sim.ecm.Cell.params):
resistance tables that depend only on SoC are scaled by the model's Arrhenius
factor, tables over SoC x temperature are used as they are; time constants are
not scaled.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from labctl.cells.spec import CellModel
from labctl.errors import LabctlError


@dataclass(frozen=True)
class GridAtTemperature:
    """Parameters on SoC = 0, h, 2h, ..., 1 at one temperature."""

    ocv_v: np.ndarray  # (N,)
    ocv_slope: np.ndarray  # (N-1,) dOCV/dSoC of each segment (V per unit SoC)
    r0_ohm: np.ndarray  # (N,)
    r0_slope: np.ndarray  # (N-1,)
    r_ohm: np.ndarray  # (n_rc, N)
    tau_s: np.ndarray  # (n_rc, N)
    # Per segment, stacked so one np.take serves a lookup: ocv at its start, ocv slope,
    # r0 at its start, r0 slope. (np.take along an axis gathers several times faster
    # than fancy indexing with a 2-D index.)
    segments: np.ndarray  # (4, N-1)

    @property
    def n(self) -> int:
        return len(self.ocv_v)

    def segment(self, soc: np.ndarray) -> np.ndarray:
        """Index of the grid segment each SoC falls in (ends extend the end segments)."""
        j = (soc * (self.n - 1)).astype(np.intp)  # truncation; clipped below for soc < 0
        # maximum/minimum in place: np.clip's per-call overhead shows on small arrays.
        np.maximum(j, 0, out=j)
        np.minimum(j, self.n - 2, out=j)
        return j

    def nearest(self, soc: np.ndarray) -> np.ndarray:
        k = np.rint(soc * (self.n - 1)).astype(np.intp)
        np.maximum(k, 0, out=k)
        np.minimum(k, self.n - 1, out=k)
        return k

    def lookup(self, soc: np.ndarray) -> tuple[np.ndarray, ...]:
        """(ocv, dOCV/dsoc, r0, dR0/dsoc) at each SoC; linear beyond 0 and 1 (end slopes)."""
        j = self.segment(soc)
        ocv0, slope, r00, r0_slope = np.take(self.segments, j, axis=1)
        ds = soc - j * (1.0 / (self.n - 1))
        return ocv0 + ds * slope, slope, r00 + ds * r0_slope, r0_slope

    def transition(self, dt_s: float) -> np.ndarray:
        """(2 n_rc, N) on the grid: rows a_j then b_j, v' = a v + b I over dt,
        a = exp(-dt/tau), b = R (1 - a)."""
        a = np.exp(-dt_s / self.tau_s)
        return np.concatenate([a, self.r_ohm * (1.0 - a)])


class EcmGrid:
    """Grids of a CellModel per temperature (cached), using its first `n_rc` RC pairs."""

    def __init__(self, model: CellModel, n_rc: int | None = None, n_points: int = 1001,
                 cache_size: int = 64):
        if n_rc is None:
            n_rc = len(model.rc_pairs)
        if not 0 <= n_rc <= len(model.rc_pairs):
            raise LabctlError(f"n_rc={n_rc}: the cell model has {len(model.rc_pairs)} RC pair(s)")
        if n_points < 3:
            raise LabctlError(f"n_points must be >= 3, got {n_points}")
        self.model, self.n_rc, self.n_points = model, n_rc, n_points
        self.soc = np.linspace(0.0, 1.0, n_points)
        self._cache: OrderedDict[float, GridAtTemperature] = OrderedDict()
        self._cache_size = cache_size

    def at(self, temperature_c: float | None = None) -> GridAtTemperature:
        """The grid at a temperature (default: the model's reference), cached to 0.01 °C."""
        t = self.model.reference_temperature_c if temperature_c is None else float(temperature_c)
        key = round(t, 2)
        grid = self._cache.get(key)
        if grid is None:
            grid = self._build(key)
            self._cache[key] = grid
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return grid

    def _build(self, t: float) -> GridAtTemperature:
        m, s = self.model, self.soc
        f = m.arrhenius_factor(t)

        def resistance(table):
            return table(s, t) * (1.0 if table.depends_on_temperature else f)

        ocv = np.asarray(m.ocv_v(s, t), dtype=float)
        r0 = np.asarray(resistance(m.r0_ohm), dtype=float)
        pairs = m.rc_pairs[: self.n_rc]
        r = np.array([resistance(p.r_ohm) for p in pairs]).reshape(self.n_rc, len(s))
        tau = np.array([p.tau_s(s, t) for p in pairs], dtype=float).reshape(self.n_rc, len(s))
        h = 1.0 / (len(s) - 1)
        ocv_slope, r0_slope = np.diff(ocv) / h, np.diff(r0) / h
        segments = np.stack([ocv[:-1], ocv_slope, r0[:-1], r0_slope])
        return GridAtTemperature(ocv, ocv_slope, r0, r0_slope, r, tau, segments)
