"""Fitting RC pairs to one current pulse and its relaxation.

Model of the window (a few seconds of rest before the pulse edge t_e, the pulse,
the rest after it):

    V(t) = V0 + R0 I(t) + k q(t) + sum_j [ R_j x_j(t) + c_j exp(-(t - t_e) / tau_j) ]

q(t): charge moved since t_e (Ah), so k (V/Ah) follows the OCV as SoC moves
during the pulse; when the OCV curve is known the term k q(t) is replaced by the
known OCV change along the window (`ocv_change_v`), which takes a parameter that
trades off against R1 out of the fit; x_j: the response of a unit
resistor RC pair with time constant tau_j to the logged current (exact for a
zero-order hold), started from a relaxed state: either the current history given
from a long rest on (the HPPC charge pulse follows the discharge pulse after only
~40 s, and the history carries that), or, without history, from zero at the
window start with c_j, what is left of earlier RC voltages at t_e, fitted. R0 is fitted
with the rest unless given: a slightly wrong fixed R0 leaves a step the size of
the pulse that a fast RC pair would absorb, biasing R1 and tau1.

Given the tau_j everything else is linear, so the fit is a variable projection:
scipy's least_squares adjusts log(tau_j) and each residual evaluation solves the
linear least squares for the rest. The starting taus come from a coarse grid search.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

LOG_CHUNK = 500.0  # keep exp() of cumulative decays inside float64 range


def unit_rc_response(time_s: np.ndarray, current_a: np.ndarray, tau_s: float) -> np.ndarray:
    """x with x[0] = 0 and x[m+1] = a x[m] + (1 - a) i[m], a = exp(-dt/tau), vectorised.

    With P_m the running product of the a's, x[m+1] = P_m sum_{j<=m} b_j / P_j; the
    span is cut and restarted where P would underflow.
    """
    n = len(time_s)
    out = np.zeros(n)
    if n < 2:
        return out
    log_a = -np.diff(time_s) / tau_s
    b = -np.expm1(log_a) * current_a[:-1]
    start = 0
    m = n - 1
    while start < m:
        cum = np.cumsum(log_a[start:])
        stop = m
        if cum[-1] < -LOG_CHUNK:
            stop = start + max(int(np.searchsorted(-cum, LOG_CHUNK)), 1)
            cum = cum[: stop - start]
        p = np.exp(cum)
        out[start + 1: stop + 1] = p * (out[start] + np.cumsum(b[start:stop] / p))
        start = stop
    return out


@dataclass(frozen=True)
class RcFit:
    r_ohm: tuple[float, ...]  # R_j, ascending tau
    tau_s: tuple[float, ...]
    r0_ohm: float  # fitted (or the fixed value given)
    ocv_v: float  # V0: the open-circuit voltage at the pulse edge
    ocv_slope_v_per_ah: float  # k fitted; NaN when the OCV change was given
    initial_v: tuple[float, ...]  # c_j: RC voltages left at the edge
    rmse_v: float
    success: bool


class _Problem:
    """The linear part of the model for given taus (variable projection)."""

    def __init__(self, t, v, i, edge_time_s, r0_ohm, ocv_change_v, fit_initial, history,
                 fit_slope):
        self.t, self.i = t, i
        self.n_hist = 0 if history is None else len(history[0])
        # Times and currents the RC responses are integrated over (history, then window).
        self.t_all = t if history is None else np.concatenate([history[0], t])
        self.i_all = i if history is None else np.concatenate([history[1], i])
        q = np.zeros(len(t))
        q[1:] = np.cumsum(i[:-1] * np.diff(t)) / 3600.0
        self.q = q - np.interp(edge_time_s, t, q)
        self.te = edge_time_s
        self.fixed_r0 = r0_ohm
        self.y = v if r0_ohm is None else v - r0_ohm * i
        self.fixed_slope = not fit_slope
        if ocv_change_v is not None:
            self.y = self.y - ocv_change_v
        self.fit_initial = fit_initial

    def design(self, taus):
        cols = [np.ones_like(self.t)]
        if self.fixed_r0 is None:
            cols.append(self.i)
        if not self.fixed_slope:
            cols.append(self.q)
        cols += [unit_rc_response(self.t_all, self.i_all, tau)[self.n_hist:] for tau in taus]
        if self.fit_initial:
            cols += [np.exp(-(self.t - self.te) / tau) for tau in taus]
        return np.column_stack(cols)

    def solve(self, taus):
        a = self.design(taus)
        scale = np.linalg.norm(a, axis=0)
        scale[scale == 0] = 1.0
        beta, *_ = np.linalg.lstsq(a / scale, self.y, rcond=None)
        beta = beta / scale
        return beta, self.y - a @ beta

    def residual(self, log_taus):
        return self.solve(np.exp(log_taus))[1]


def fit_rc(time_s: np.ndarray, voltage_v: np.ndarray, current_a: np.ndarray, edge_time_s: float,
           r0_ohm: float | None = None, n_rc: int = 1, tau_bounds_s: tuple[float, float] | None = None,
           ocv_change_v: np.ndarray | None = None,
           history: tuple[np.ndarray, np.ndarray] | None = None,
           fit_initial: bool | None = None, fit_slope: bool | None = None) -> RcFit:
    """Fit n_rc RC pairs (1 or 2) to a pulse window; see the module docstring for the model.

    `ocv_change_v`: OCV(SoC(t)) - OCV(SoC(t_e)) at each sample, when the OCV curve is known.
    `history`: (time_s, current_a) of the samples before the window, from a point where
    the RC pairs had relaxed. `fit_initial` (fit the c_j) defaults to "no history".
    `fit_slope`: fit k q(t) (defaults to "OCV change not given"); with the OCV change
    given as well, k q(t) takes up what is left: the voltage of RC pairs much slower
    than the window (R x(t) ~ (R/tau) * 3600 q(t) while t << tau), which would
    otherwise bias the fitted fast pair.
    """
    if fit_initial is None:
        fit_initial = history is None
    if fit_slope is None:
        fit_slope = ocv_change_v is None
    from scipy.optimize import least_squares  # import cost only when fitting

    t = np.asarray(time_s, dtype=float)
    v = np.asarray(voltage_v, dtype=float)
    i = np.asarray(current_a, dtype=float)
    if n_rc not in (1, 2):
        raise ValueError(f"n_rc must be 1 or 2, got {n_rc}")
    if tau_bounds_s is None:
        dt = float(np.median(np.diff(t)))
        tau_bounds_s = (max(2.0 * dt, 0.05), 3.0 * (t[-1] - edge_time_s))
    lo, hi = math.log(tau_bounds_s[0]), math.log(tau_bounds_s[1])
    prob = _Problem(t, v, i, edge_time_s, r0_ohm, ocv_change_v, fit_initial, history, fit_slope)
    grid = np.linspace(lo, hi, 14)[1:-1]
    # Starting point: the best of a coarse grid (pairs at least a factor e apart).
    starts = ([(g,) for g in grid] if n_rc == 1 else
              [p for p in itertools.combinations(grid, 2) if p[1] - p[0] >= 1.0])
    x0 = min(starts, key=lambda p: float(np.sum(prob.residual(np.array(p)) ** 2)))
    res = least_squares(prob.residual, np.array(x0), bounds=(lo, hi), x_scale=1.0,
                        diff_step=1e-4, xtol=1e-10, ftol=1e-12)
    taus = np.exp(res.x)
    order = np.argsort(taus)
    beta, resid = prob.solve(taus[order])
    taus = taus[order]
    coef = list(beta)
    ocv_v = float(coef.pop(0))
    r0 = float(coef.pop(0)) if r0_ohm is None else float(r0_ohm)
    slope = float(coef.pop(0)) if fit_slope else math.nan
    rs = tuple(float(x) for x in coef[:n_rc])
    cs = tuple(float(x) for x in coef[n_rc:]) if fit_initial else (0.0,) * n_rc
    return RcFit(rs, tuple(float(x) for x in taus), r0, ocv_v, slope, cs,
                 float(np.sqrt(np.mean(resid**2))), bool(res.success))
