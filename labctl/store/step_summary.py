"""One step's summary row, accumulated batch by batch while the step runs.

Kept apart from the table builders so the engine imports numpy only (no pandas,
no pyarrow) on its way to the first sample.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from labctl.records import StepResult

CUMULATIVE = ("charge_capacity_ah", "discharge_capacity_ah", "charge_energy_wh",
              "discharge_energy_wh")


def _pair_sums_dot(y: np.ndarray, dt: np.ndarray) -> float:
    """sum((y[1:] + y[:-1]) * dt) without np.dot: numpy hands a dot product to OpenBLAS,
    which above 10 000 elements wakes its thread pool, and the pool's threads then
    spin-wait for more work (~40 ms of CPU after such a call on a 2-core machine, more
    than a whole 250 k-row import's Parquet write); its result also depends on the
    number of threads. numpy's own pairwise sum is deterministic and as accurate."""
    s = np.add(y[1:], y[:-1])
    s *= dt
    return float(np.add.reduce(s))


class StepAccumulator:
    """Summary of one step, fed batch by batch in O(1) memory."""

    def __init__(self, step_index: int, cycle_index: int, kind: str, text: str, path: str):
        self.step_index, self.cycle_index = int(step_index), int(cycle_index)
        self.kind, self.text, self.path = kind, text, path
        self.n_samples = 0
        self._t0 = self._v0 = math.nan
        self._first = [0.0] * len(CUMULATIVE)
        self._last = [0.0] * len(CUMULATIVE)
        self._t = self._v = self._i = self._temp = math.nan  # the last sample so far
        self._vdt = 0.0  # integral of voltage over time
        self._idt = 0.0  # integral of current over time
        self._max_temp = math.nan

    def feed(self, columns: Mapping[str, np.ndarray]) -> None:
        """Add the next samples of the step (in time order)."""
        t = np.asarray(columns["test_time_s"], dtype=np.float64)
        n = len(t)
        if n == 0:
            return
        v = np.asarray(columns["voltage_v"], dtype=np.float64)
        i = np.asarray(columns["current_a"], dtype=np.float64)
        temp = np.asarray(columns["temperature_c"], dtype=np.float64)
        if self.n_samples == 0:
            self._t0, self._v0 = float(t[0]), float(v[0])
            self._first = [float(columns[name][0]) for name in CUMULATIVE]
        else:  # the interval from the previous batch's last sample to this one's first
            dt = float(t[0]) - self._t
            self._vdt += 0.5 * (self._v + float(v[0])) * dt
            self._idt += 0.5 * (self._i + float(i[0])) * dt
        if n > 1:
            dt = np.subtract(t[1:], t[:-1])  # np.diff's own arithmetic, without its wrapper
            self._vdt += 0.5 * _pair_sums_dot(v, dt)
            self._idt += 0.5 * _pair_sums_dot(i, dt)
        self._max_temp = float(np.fmax(self._max_temp, np.fmax.reduce(temp)))  # NaN-safe
        self._t, self._v, self._i, self._temp = float(t[-1]), float(v[-1]), float(i[-1]), \
            float(temp[-1])
        self._last = [float(columns[name][-1]) for name in CUMULATIVE]
        self.n_samples += n

    def moved_ah(self) -> float:
        """Charge moved so far (charge plus discharge), as `result` would count it."""
        if self.n_samples == 0:
            return 0.0
        return max(0.0, self._last[0] - self._first[0]) + max(0.0, self._last[1] - self._first[1])

    def result(self, end_kind: str, end_reason: str,
               clock_span: tuple[float, float] | None = None) -> StepResult:
        """The step's row (cheap: the engine calls it while the step runs).

        Its start, end and duration are those of its samples, or, given `clock_span`
        (start, end test time of the step), the wider of the two: a step that records
        its measurements elsewhere (an ARC step's thermal records) lasts as long as it
        ran, not only while the cycler logged (the means stay those of the samples)."""
        nan = math.nan
        if self.n_samples == 0:
            start, end = clock_span if clock_span is not None else (nan, nan)
            duration = end - start if clock_span is not None else 0.0
            return StepResult(self.step_index, self.cycle_index, self.kind, self.text, self.path,
                              end_kind, end_reason, start, end, duration, 0, 0.0, 0.0, 0.0,
                              0.0, nan, nan, nan, nan, nan, nan, nan)
        duration = self._t - self._t0
        mean_v = self._vdt / duration if duration > 0 else self._v
        mean_i = self._idt / duration if duration > 0 else self._i
        moved = [max(0.0, b - a) for a, b in zip(self._first, self._last, strict=True)]
        start, end = self._t0, self._t
        if clock_span is not None:
            start, end = min(start, clock_span[0]), max(end, clock_span[1])
        return StepResult(
            step_index=self.step_index, cycle_index=self.cycle_index, kind=self.kind,
            text=self.text, path=self.path, end_kind=end_kind, end_reason=end_reason,
            start_time_s=start, end_time_s=end, duration_s=end - start,
            n_samples=self.n_samples,
            charge_capacity_ah=moved[0], discharge_capacity_ah=moved[1],
            charge_energy_wh=moved[2], discharge_energy_wh=moved[3],
            start_voltage_v=self._v0, end_voltage_v=self._v,
            mean_voltage_v=mean_v, mean_current_a=mean_i, end_current_a=self._i,
            max_temperature_c=self._max_temp, end_temperature_c=self._temp,
        )


