"""Vectorised equivalent-circuit physics: OCV + R0 + RC pairs, lumped thermal.

Current is held constant over each grid interval (zero-order hold), which makes
the RC recurrence exact: v[k+1] = a_k v[k] + R_k (1 - a_k) i_k with
a_k = exp(-dt_k / tau_k). Parameters are evaluated per interval at the SoC at
its start and at one temperature per call (the caller keeps calls short).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labctl.cells.spec import CellModel

LOG_CHUNK = 600.0
OVERRUN_V_PER_SOC = 20.0  # +0.2 V per 1 % SoC beyond the table  # keep exp() of cumulative decays inside float64 range


@dataclass
class EcmState:
    soc: float
    v_rc: np.ndarray  # (n_rc,)
    temperature_c: float


@dataclass
class Trajectory:
    """Values at grid times t[0..n]; interval k uses current i[k] (len n)."""

    t: np.ndarray
    soc: np.ndarray
    v_rc: np.ndarray  # (n+1, n_rc)
    voltage_v: np.ndarray  # terminal voltage at each grid time, with the current in force there
    current_a: np.ndarray  # current reported at each grid time (n+1)
    temperature_c: np.ndarray


class Cell:
    """A cell model bound to its capacity, with parameter lookups."""

    def __init__(self, model: CellModel, capacity_ah: float):
        self.m = model
        self.q_as = capacity_ah * 3600.0
        self.n_rc = len(model.rc_pairs)

    def params(self, soc: np.ndarray, temperature_c: float):
        # Arrhenius scaling applies only to tables that do not already span temperature.
        f = self.m.arrhenius_factor(temperature_c)
        r0_t = self.m.r0_ohm
        r0 = r0_t(soc, temperature_c) * (1.0 if r0_t.depends_on_temperature else f)
        rs, taus = [], []
        for pair in self.m.rc_pairs:
            fr = 1.0 if pair.r_ohm.depends_on_temperature else f
            rs.append(pair.r_ohm(soc, temperature_c) * fr)
            taus.append(pair.tau_s(soc, temperature_c))
        return r0, rs, taus

    def ocv(self, soc, temperature_c: float) -> np.ndarray:
        """OCV; past full or empty the voltage runs away steeply, as a real cell's does."""
        soc = np.asarray(soc, dtype=float)
        v = self.m.ocv_v(soc, temperature_c)
        if soc.size and (soc.max() > 1.0 or soc.min() < 0.0):
            v = v + OVERRUN_V_PER_SOC * (np.clip(soc - 1.0, 0, None) - np.clip(-soc, 0, None))
        return v

    def ocv_slope(self, soc: float, temperature_c: float, h: float = 2e-4) -> float:
        """dOCV/dSoC by a central difference of the extended curve (past the ends too)."""
        return float((self.ocv(soc + h, temperature_c) - self.ocv(soc - h, temperature_c)) / (2 * h))


def _rc_recurrence(v0: float, log_a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """v[0] = v0, v[k+1] = a[k] v[k] + b[k], given log a; vectorised.

    With P_k = a_0 ... a_k: v[k+1] = P_k (v0 + sum_{j<=k} b_j / P_j). Long spans
    are cut where P would underflow (|log P| > LOG_CHUNK) and restarted.
    """
    n = len(b)
    out = np.empty(n + 1)
    out[0] = v0
    log_a = np.broadcast_to(log_a, (n,))
    start = 0
    while start < n:
        cum = np.cumsum(log_a[start:])
        stop = n
        if cum[-1] < -LOG_CHUNK:
            stop = start + max(int(np.searchsorted(-cum, LOG_CHUNK)), 1)
            cum = cum[: stop - start]
        p = np.exp(cum)
        out[start + 1 : stop + 1] = p * (out[start] + np.cumsum(b[start:stop] / p))
        start = stop
    return out


def run_current(cell: Cell, state: EcmState, t: np.ndarray, i: np.ndarray,
                ambient_c: np.ndarray, thermal: bool = True,
                param_temperature_c: float | None = None) -> Trajectory:
    """Integrate a piecewise-constant current over grid t (len n+1, i len n).

    Resistances and time constants are evaluated at each grid point's SoC and at
    the temperature at the start of the call (the caller keeps calls short).
    """
    dt = np.diff(t)
    n = len(i)
    soc = np.empty(n + 1)
    soc[0] = state.soc
    np.cumsum(i * dt, out=soc[1:])
    soc[1:] *= 1.0 / cell.q_as
    soc[1:] += state.soc
    temp0 = state.temperature_c
    temp_p = temp0 if param_temperature_c is None else param_temperature_c
    r0, rs, taus = cell.params(soc, temp_p)
    v_rc = np.empty((n + 1, cell.n_rc))
    for j in range(cell.n_rc):
        log_a = -dt / taus[j][:-1]
        b = rs[j][:-1] * (-np.expm1(log_a)) * i
        v_rc[:, j] = _rc_recurrence(float(state.v_rc[j]), log_a, b)
    # Reported current at each grid time: the interval's current; the last time keeps the last.
    i_rep = np.empty(n + 1)
    if n:
        i_rep[:-1] = i
        i_rep[-1] = i[-1]
    else:
        i_rep[:] = 0.0
    rc_sum = v_rc.sum(axis=1) if cell.n_rc else 0.0
    voltage = cell.ocv(soc, temp_p) + i_rep * r0 + rc_sum
    th = cell.m.thermal
    if thermal and th.heat_transfer_w_per_k > 0 and n:
        heat = i * (i * r0[:-1] + (v_rc[:-1].sum(axis=1) if cell.n_rc else 0.0))
        k = th.heat_transfer_w_per_k / th.heat_capacity_j_per_k
        log_a = -dt * k
        drive = -np.expm1(log_a) * (ambient_c[:-1] + heat / th.heat_transfer_w_per_k)
        temperature = _rc_recurrence(temp0, log_a, drive)
    else:
        temperature = np.full(n + 1, temp0)
    return Trajectory(t, soc, v_rc, voltage, i_rep, temperature)


def voltage_within(cell: Cell, state_k: EcmState, i: float, delta: float, temp: float) -> float:
    """Terminal voltage `delta` seconds into an interval that started in `state_k` at current i.

    `temp` must be the temperature the chunk's parameters were evaluated at (its start),
    so the crossing found here is the one the chunk's own trajectory has.
    """
    soc = state_k.soc + i * delta / cell.q_as
    r0, rs, taus = cell.params(np.array([state_k.soc]), temp)
    v = float(cell.ocv(soc, temp)) + i * float(r0[0])
    for j in range(cell.n_rc):
        a = np.exp(-delta / float(taus[j][0]))
        v += float(state_k.v_rc[j]) * a + i * float(rs[j][0]) * (1 - a)
    return v


def hold_voltage(cell: Cell, state: EcmState, v_hold: float, t: np.ndarray,
                 temperature_c: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """CV: current, soc and RC voltages on grid t with OCV linearised at the start.

    With OCV(s) ~ a + b s the hold is a linear ODE x' = A x + g in x = (s, v_1..v_n);
    its solution is a sum of exponentials, evaluated at every grid time at once.
    """
    n = cell.n_rc
    s0 = state.soc
    b = max(cell.ocv_slope(s0, temperature_c), 1e-4)
    a0 = float(cell.ocv(s0, temperature_c)) - b * s0
    r0, rs, taus = cell.params(np.array([s0]), temperature_c)
    r0 = float(r0[0])
    rs = [float(r[0]) for r in rs]
    taus = [float(x[0]) for x in taus]
    cs = 1.0 / cell.q_as
    A = np.zeros((n + 1, n + 1))
    g = np.zeros(n + 1)
    A[0, 0] = -cs * b / r0
    A[0, 1:] = -cs / r0
    g[0] = cs * (v_hold - a0) / r0
    for k in range(n):
        gain = rs[k] / taus[k] / r0
        A[1 + k, 0] = -gain * b
        A[1 + k, 1:] = -gain
        A[1 + k, 1 + k] -= 1.0 / taus[k]
        g[1 + k] = gain * (v_hold - a0)
    x0 = np.concatenate([[s0], state.v_rc])
    x_star = np.linalg.solve(A, -g)
    lam, vec = np.linalg.eig(A)
    coef = np.linalg.solve(vec, x0 - x_star)
    x = (x_star[:, None] + (vec * coef) @ np.exp(np.outer(lam, t))).real  # (n+1, len t)
    soc = x[0]
    v_rc = x[1:].T
    current = (v_hold - a0 - b * soc - v_rc.sum(axis=1)) / r0
    return current, soc, v_rc, a0, b


def find_root(f, lo: float, hi: float, xtol: float = 1e-5, max_iter: int = 100) -> float:
    """A root of f in [lo, hi] (f changes sign there), by the Illinois method.

    Written here rather than importing scipy.optimize, whose import alone costs
    longer than a whole simulated cycling run.
    """
    f_lo, f_hi = f(lo), f(hi)
    if f_lo == 0.0:
        return lo
    if f_hi == 0.0:
        return hi
    if (f_lo > 0) == (f_hi > 0):
        raise ValueError("no sign change")
    side = 0
    for _ in range(max_iter):
        x = (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
        if not lo < x < hi:
            x = 0.5 * (lo + hi)
        f_x = f(x)
        if f_x == 0.0 or hi - lo < xtol:
            return x
        if (f_x > 0) == (f_hi > 0):
            hi, f_hi = x, f_x
            if side == -1:
                f_lo *= 0.5
            side = -1
        else:
            lo, f_lo = x, f_x
            if side == 1:
                f_hi *= 0.5
            side = 1
    return 0.5 * (lo + hi)
