"""numpy's compiled kernels, called without their Python-level wrappers.

A simulated step (labctl/sim/) and the engine's per-batch accounting make dozens of
numpy calls on arrays of a few thousand values; at that size the wrappers (`np.interp`'s argument checks, `np.cumsum` and `arr.sum()`
dispatching through `fromnumeric`, `np.full`'s dtype handling) cost as much as the
arithmetic. These call the same kernels with the same arguments, so the results are
bit-identical to the wrapped functions'.
"""

from __future__ import annotations

import numpy as np

try:  # the compiled kernel behind np.interp for real values (numpy >= 2)
    from numpy._core.multiarray import interp as _interp
except ImportError:  # pragma: no cover - numpy 1.26
    try:
        from numpy.core.multiarray import interp as _interp
    except ImportError:
        _interp = None

accumulate = np.add.accumulate  # np.cumsum(x, out=...) without fromnumeric
amin, amax, total = np.minimum.reduce, np.maximum.reduce, np.add.reduce


def interp(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """np.interp(x, xp, fp) for real float64 tables."""
    if _interp is None:  # pragma: no cover
        return np.interp(x, xp, fp)
    return _interp(x, xp, fp, None, None)


def scalar(x: object) -> bool:
    """np.ndim(x) == 0 for the numbers and arrays the simulator passes, without np.ndim's
    wrapper (it converts its argument with asarray: ~1 us a call, several calls a batch)."""
    return not isinstance(x, np.ndarray) or x.ndim == 0


def filled(n: int, value: float, dtype: np.dtype | type = float) -> np.ndarray:
    """np.full(n, value, dtype) (float64 by default)."""
    out = np.empty(n, dtype=dtype)
    out.fill(value)
    return out


__all__ = ["accumulate", "amax", "amin", "filled", "interp", "scalar", "total"]
