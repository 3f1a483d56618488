"""Coulomb counting, with optional injected current-sensor offset and noise."""

from __future__ import annotations

import numpy as np

from labctl.analysis.soc.run import as_columns
from labctl.errors import LabctlError


def coulomb_count(time_s, current_a, capacity_ah, initial_soc, *, current_offset_a=0.0,
                  current_noise_std_a: float = 0.0, rng: np.random.Generator | int | None = None
                  ) -> np.ndarray:
    """SoC at each sample by integrating the current (zero-order hold), shape like current_a.

    `current_a` is (n_steps,) or (n_steps, n_cells); capacity, initial SoC and the
    offset are scalars or per cell. The offset (A, a sensor bias) and the noise are
    ADDED to the current before integrating, to study how the estimate drifts:
    an offset b makes it drift by b * t / (3600 Q).
    """
    t = np.asarray(time_s, dtype=float)
    if t.ndim != 1 or len(t) == 0:
        raise LabctlError("time_s: expected a non-empty 1-D array of sample times")
    i_in = np.asarray(current_a, dtype=float)
    n_cells = 1 if i_in.ndim == 1 else i_in.shape[1]
    i = as_columns(i_in, len(t), n_cells, "current_a") + np.asarray(current_offset_a, float)
    if current_noise_std_a:
        i = i + np.random.default_rng(rng).normal(0.0, current_noise_std_a, i.shape)
    cap = np.asarray(capacity_ah, dtype=float)
    if np.any(cap <= 0):
        raise LabctlError("capacity_ah must be > 0")
    soc = np.empty(i.shape)
    soc[0] = 0.0
    np.cumsum(i[:-1] * np.diff(t)[:, None], axis=0, out=soc[1:])
    soc = soc / (3600.0 * cap) + np.asarray(initial_soc, dtype=float)
    return soc[:, 0] if i_in.ndim == 1 else soc
