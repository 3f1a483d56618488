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
        f = 1.0
        r0_t = self.m.r0_ohm
        if not r0_t.depends_on_temperature:
            f = self.m.arrhenius_factor(temperature_c)
        r0 = r0_t(soc, temperature_c) * f
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
        return v + OVERRUN_V_PER_SOC * (np.clip(soc - 1.0, 0, None) - np.clip(-soc, 0, None))

    def ocv_slope(self, soc: float, temperature_c: float, h: float = 2e-4) -> float:
        """dOCV/dSoC by a central difference of the extended curve (past the ends too)."""
        return float((self.ocv(soc + h, temperature_c) - self.ocv(soc - h, temperature_c)) / (2 * h))


def _rc_recurrence(v0: float, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """v[0] = v0, v[k+1] = a[k] v[k] + b[k]; vectorised in log space, chunked for range."""
    n = len(a)
    out = np.empty(n + 1)
    out[0] = v0
    start = 0
    with np.errstate(divide="ignore"):
        loga = np.log(np.maximum(a, 1e-300))
    while start < n:
        cum = np.cumsum(loga[start:])
        stop_rel = int(np.searchsorted(-cum, LOG_CHUNK)) + 1
        stop = min(n, start + max(stop_rel, 1))
        L = np.concatenate([[0.0], cum[: stop - start]])  # L[k] = sum log a up to k
        scaled = b[start:stop] * np.exp(-L[1:])
        out[start + 1 : stop + 1] = np.exp(L[1:]) * (out[start] + np.cumsum(scaled))
        start = stop
    return out


def run_current(cell: Cell, state: EcmState, t: np.ndarray, i: np.ndarray,
                ambient_c: np.ndarray, thermal: bool = True) -> Trajectory:
    """Integrate a piecewise-constant current over grid t (len n+1, i len n)."""
    dt = np.diff(t)
    soc = np.empty(len(t))
    soc[0] = state.soc
    soc[1:] = state.soc + np.cumsum(i * dt) / cell.q_as
    temp0 = state.temperature_c
    r0, rs, taus = cell.params(soc[:-1], temp0)
    v_rc = np.empty((len(t), cell.n_rc))
    for j in range(cell.n_rc):
        a = np.exp(-dt / taus[j])
        v_rc[:, j] = _rc_recurrence(float(state.v_rc[j]), a, rs[j] * (1 - a) * i)
    # Reported current at each grid time: the interval's current; the last time keeps the last one.
    i_rep = np.empty(len(t))
    if len(i):
        i_rep[:-1] = i
        i_rep[-1] = i[-1]
    else:
        i_rep[:] = 0.0
    r0_full = np.empty(len(t))
    r0_full[:-1] = r0 if len(i) else 0.0
    r0_full[-1] = cell.params(soc[-1:], temp0)[0][0]
    voltage = cell.ocv(soc, temp0) + i_rep * r0_full + v_rc.sum(axis=1)
    temperature = np.full(len(t), temp0)
    th = cell.m.thermal
    if thermal and th.heat_transfer_w_per_k > 0 and len(i):
        heat = i**2 * r0 + i * v_rc[:-1].sum(axis=1)
        k = th.heat_transfer_w_per_k / th.heat_capacity_j_per_k
        a = np.exp(-dt * k)
        drive = (1 - a) * (ambient_c[:-1] + heat / th.heat_transfer_w_per_k)
        temperature = _rc_recurrence(temp0, a, drive)
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
