"""Running a SoC filter over recorded (or simulated) series of many cells."""

from __future__ import annotations

import numpy as np

from labctl.analysis.soc.filters import _SocFilter
from labctl.errors import LabctlError


def as_columns(values, n_steps: int, n_cells: int, name: str) -> np.ndarray:
    """(n_steps,) or (n_steps, n_cells) -> (n_steps, n_cells) float array (broadcast view)."""
    a = np.asarray(values, dtype=float)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] != n_steps or a.shape[1] not in (1, n_cells):
        raise LabctlError(f"{name}: expected shape ({n_steps},) or ({n_steps}, {n_cells}), "
                          f"got {np.shape(values)}")
    return np.broadcast_to(a, (n_steps, n_cells))


def run_filter(flt: _SocFilter, time_s, current_a, voltage_v, temperature_c=None) -> np.ndarray:
    """SoC estimates (n_steps, n_cells) after each sample.

    Zero-order hold, as the cyclers log: the current at sample k flows until
    sample k+1. So the filter updates with sample 0, then for each later sample
    predicts over the interval with the previous sample's current and updates with
    this one. `temperature_c`: None, one value, or one per step (shared by all cells).
    """
    t = np.asarray(time_s, dtype=float)
    if t.ndim != 1 or len(t) == 0:
        raise LabctlError("time_s: expected a non-empty 1-D array of sample times")
    if np.any(np.diff(t) < 0):
        raise LabctlError("time_s must not decrease")
    n, m = len(t), flt.n_cells
    i = as_columns(current_a, n, m, "current_a")
    v = as_columns(voltage_v, n, m, "voltage_v")
    if temperature_c is None or np.ndim(temperature_c) == 0:
        temps = [temperature_c] * n
    else:
        temps = np.asarray(temperature_c, dtype=float)
        if temps.shape != (n,):
            raise LabctlError(f"temperature_c: expected one value or ({n},), got {temps.shape}")
    # A single column broadcasts: pass it as a scalar so the filter's rows stay contiguous.
    one_i, one_v = i.strides[1] == 0, v.strides[1] == 0
    out = np.empty((n, m))
    dt = np.diff(t)
    for k in range(n):
        if k:
            cur = i[k - 1, 0] if one_i else i[k - 1]
            flt.predict(cur, dt[k - 1], temps[k - 1])
        out[k] = flt.update(i[k, 0] if one_i else i[k], v[k, 0] if one_v else v[k], temps[k])
    return out
