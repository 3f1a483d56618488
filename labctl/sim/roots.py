"""Where, between two samples, a condition starts to hold.

A small bracketing search (Illinois, falling back to bisection) rather than
scipy.optimize, whose import alone costs more than a long simulated run.
"""

from __future__ import annotations

from collections.abc import Callable

TIME_TOLERANCE_S = 1e-6


def crossing_time(g: Callable[[float], float], t_lo: float, t_hi: float,
                  xtol: float = TIME_TOLERANCE_S, max_iter: int = 200) -> float:
    """A time in (t_lo, t_hi] within `xtol` of where g turns >= 0, on the side where it holds.

    g(t_lo) < 0 is assumed (the condition did not hold at the earlier sample). When
    g(t_hi) < 0 too, the condition holds only from t_hi on (a jump of the control at
    the sample), so t_hi is the answer.
    """
    g_lo, g_hi = g(t_lo), g(t_hi)
    if g_hi < 0 or g_lo >= 0:
        return t_hi
    lo, hi = t_lo, t_hi
    side = 0
    for _ in range(max_iter):
        if hi - lo <= xtol:
            break
        x = (lo * g_hi - hi * g_lo) / (g_hi - g_lo)
        # Keep a little inside the bracket: near the root the next evaluation then
        # usually lands on the other side and closes the bracket.
        x = min(max(x, lo + 0.4 * xtol), hi - 0.4 * xtol)
        if not lo < x < hi:
            x = 0.5 * (lo + hi)
        g_x = g(x)
        if g_x >= 0:
            hi, g_hi = x, g_x
            if side == 1:
                g_lo *= 0.5
            side = 1
        else:
            lo, g_lo = x, g_x
            if side == -1:
                g_hi *= 0.5
            side = -1
    return hi
