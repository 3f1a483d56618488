"""Turn an instrument's sample batches into journal rows.

Adds run time, unix time, step and cycle indices, and keeps the cycler-style
capacity and energy counters that are cumulative within a cycle. When the
instrument integrates charge itself (the simulator does, exactly) its numbers
are used; otherwise the logged samples are integrated by the trapezoid rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labctl.capabilities.cycler import SampleBatch
from labctl.np_kernels import filled
from labctl.records import SAMPLE_COLUMNS

COUNTERS = ("charge_capacity_ah", "discharge_capacity_ah", "charge_energy_wh", "discharge_energy_wh")


@dataclass
class CycleCounter:
    """Cycle index and the counters cumulative within the current cycle."""

    cycle_index: int = 1
    charge_capacity_ah: float = 0.0
    discharge_capacity_ah: float = 0.0
    charge_energy_wh: float = 0.0
    discharge_energy_wh: float = 0.0
    active: bool = False  # the cycle has moved charge already

    def start_new_cycle(self) -> bool:
        """Begin a new cycle unless the present one is still empty; True if it advanced."""
        if not self.active:
            return False
        self.cycle_index += 1
        for name in COUNTERS:
            setattr(self, name, 0.0)
        self.active = False
        return True

    def values(self) -> tuple[float, float, float, float]:
        return tuple(getattr(self, name) for name in COUNTERS)  # type: ignore[return-value]


class StepAccounting:
    """Columns for one step; call `columns(batch)` for each batch in order."""

    def __init__(
        self,
        counter: CycleCounter,
        step_index: int,
        step_start_test_time_s: float,
        unix_origin_s: float,
    ):
        self.counter = counter
        self.step_index = step_index
        self.t0 = step_start_test_time_s
        self.unix_origin_s = unix_origin_s
        self.base = np.array(counter.values())  # cycle counters when this segment began
        self._last: tuple[float, float, float] | None = None  # t, V, I for trapezoid
        self._integrated = np.zeros(4)  # own integration when the instrument has none

    def columns(self, batch: SampleBatch, drop_first: bool = False) -> dict[str, np.ndarray]:
        if drop_first and len(batch) > 0:
            batch = _slice(batch, 1)
        n = len(batch)
        t = self.t0 + np.asarray(batch.step_time_s, dtype=float)
        v = np.asarray(batch.voltage_v, dtype=float)
        i = np.asarray(batch.current_a, dtype=float)
        if batch.charge_ah is not None:
            # The instrument's counters plus the cycle's, written straight into one array
            # (what np.vstack then += did, without the copy and vstack's overhead).
            cum = np.empty((4, n))
            base = self.base.tolist()
            for k, col in enumerate((batch.charge_ah, batch.discharge_ah, batch.charge_wh,
                                     batch.discharge_wh)):
                np.add(np.asarray(col, dtype=float), base[k], out=cum[k])
        else:
            cum = self._integrate(t, v, i)  # a fresh array
            cum += self.base[:, None]  # in place: one array fewer per batch
        cols = {
            "test_time_s": t,
            "unix_time_s": self.unix_origin_s + t,
            "step_index": filled(n, self.step_index, SAMPLE_COLUMNS["step_index"]),
            "cycle_index": filled(n, self.counter.cycle_index, SAMPLE_COLUMNS["cycle_index"]),
            "voltage_v": v,
            "current_a": i,
            "temperature_c": np.asarray(batch.temperature_c, dtype=float),
        }
        for k, name in enumerate(COUNTERS):
            cols[name] = cum[k]
        if n:
            last = cum[:, -1]
            for k, name in enumerate(COUNTERS):
                setattr(self.counter, name, float(last[k]))
            if last[0] > self.base[0] or last[1] > self.base[1]:
                self.counter.active = True
        return cols

    def _integrate(self, t: np.ndarray, v: np.ndarray, i: np.ndarray) -> np.ndarray:
        """Trapezoid integration of the logged samples, continued across batches."""
        if len(t) == 0:
            return np.zeros((4, 0))
        if self._last is not None:
            t = np.concatenate([[self._last[0]], t])
            v = np.concatenate([[self._last[1]], v])
            i = np.concatenate([[self._last[2]], i])
        dt = np.diff(t)
        i_mid = 0.5 * (i[1:] + i[:-1])
        p_mid = 0.5 * (i[1:] * v[1:] + i[:-1] * v[:-1])
        steps = np.vstack(
            [
                np.clip(i_mid, 0, None) * dt / 3600.0,
                np.clip(-i_mid, 0, None) * dt / 3600.0,
                np.clip(p_mid, 0, None) * dt / 3600.0,
                np.clip(-p_mid, 0, None) * dt / 3600.0,
            ]
        )
        cum = self._integrated[:, None] + np.cumsum(steps, axis=1)
        if self._last is None:  # the very first sample has moved nothing yet
            cum = np.hstack([self._integrated[:, None], cum])
        self._integrated = cum[:, -1].copy()
        self._last = (float(t[-1]), float(v[-1]), float(i[-1]))
        return cum


def _slice(batch: SampleBatch, start: int) -> SampleBatch:
    def cut(a):
        return None if a is None else a[start:]

    return SampleBatch(
        step_time_s=batch.step_time_s[start:],
        voltage_v=batch.voltage_v[start:],
        current_a=batch.current_a[start:],
        temperature_c=batch.temperature_c[start:],
        charge_ah=cut(batch.charge_ah),
        discharge_ah=cut(batch.discharge_ah),
        charge_wh=cut(batch.charge_wh),
        discharge_wh=cut(batch.discharge_wh),
        state=batch.state,
    )


def truncate(cols: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """The first `n` rows of a column set."""
    return {k: v[:n] for k, v in cols.items()}
