"""Vectorised equivalent-circuit physics: OCV + R0 + RC pairs, solved in closed form.

Model (current positive = charge):

    V = OCV(s) + I R0(s) + sum_i v_i
    dv_i/dt = -v_i / tau_i + I R_i / tau_i
    ds/dt = I / (3600 Q)

Two kinds of *piece* advance the cell over a grid of times, all samples at once:

- `CurrentPiece`: the current is held over each interval (constant current, rest,
  profiles, and the per-interval currents the power solver finds). With the current
  held, v_i[k+1] = a v_i[k] + R_i (1 - a) I_k with a = exp(-dt / tau_i) is exact.
  With constant current and SoC-independent RC pairs the whole piece is one
  closed form, v_i(t) = R_i I + (v_i0 - R_i I) exp(-t / tau_i), evaluated on a
  uniform grid from cached decay kernels. SoC-dependent RC pairs take their R and
  tau at each interval's mid SoC (second-order accurate). OCV and R0 are looked up
  at every sample's SoC (they enter the voltage algebraically: exact).
- `HoldPiece` (constant voltage) on one SoC cell of `Params.hold_cells()`: between two
  breakpoints of the (piecewise linear) tables the OCV is exactly a + b s, so the hold
  is a linear ODE in (s, v_1..v_n), solved by eigen-decomposition (`HoldSystem`,
  cached per cell). R0 and the RC pairs are frozen at the cell's middle, within
  1 % of their true values; the piece ends where the SoC leaves the cell.

Interval means (charge, energy, heat) are exact integrals of the closed forms,
except across a table breakpoint inside an interval (trapezoid there).

Every piece can also be evaluated at one instant (`at`), over one partial interval
(`segment_to`) and restarted from any of its samples (`from_point`), which the
cycler uses to find cut-off crossings between samples by root finding on the same
closed form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from labctl.np_kernels import accumulate, filled, interp, scalar, total
from labctl.sim.params import Params

_LOG_FLOOR = -500.0  # keep exp() of cumulative decays inside float64 range
_NONE = np.empty(0)


@dataclass(frozen=True)
class CellState:
    """The simulated cell's state: state of charge, RC-pair voltages and temperature."""

    soc: float
    v_rc: tuple[float, ...]
    temperature_c: float


class Point:
    """The cell at one instant, as a piece sees it.

    A plain class with slots, not a frozen dataclass: root finding makes several per
    step, and a frozen dataclass's __init__ (one object.__setattr__ per field) cost more
    than the arithmetic they carry. Nothing mutates one."""

    __slots__ = ("soc", "v_rc", "current_a", "voltage_v")

    def __init__(self, soc: float, v_rc: tuple[float, ...], current_a: float,
                 voltage_v: float):
        self.soc, self.v_rc, self.current_a, self.voltage_v = soc, v_rc, current_a, voltage_v

    def __repr__(self) -> str:
        return (f"Point(soc={self.soc!r}, v_rc={self.v_rc!r}, current_a={self.current_a!r}, "
                f"voltage_v={self.voltage_v!r})")


@dataclass
class Track:
    """A piece's solution at N grid times, plus what happened in each of the N-1 intervals."""

    t: np.ndarray
    soc: np.ndarray
    v_rc: np.ndarray  # (n_rc, N)
    current_a: np.ndarray  # reported at each time (the current in force from it on)
    voltage_v: np.ndarray
    dq_ah: np.ndarray  # signed charge into the cell per interval (exact)
    de_wh: np.ndarray  # signed energy into the cell per interval
    heat_w: np.ndarray  # mean I^2 R0 + I sum v_i over each interval (exact on linear pieces)
    piece: object
    dq_const: float | None = None  # dq_ah when it is the same for every interval

    def __len__(self) -> int:
        return len(self.t)

    def head(self, k: int) -> Track:
        """Points 0..k and the intervals between them (views)."""
        return Track(self.t[: k + 1], self.soc[: k + 1], self.v_rc[:, : k + 1],
                     self.current_a[: k + 1], self.voltage_v[: k + 1], self.dq_ah[:k],
                     self.de_wh[:k], self.heat_w[:k], self.piece, self.dq_const)


def join_tracks(parts: list[Track]) -> Track:
    """Consecutive tracks sharing their joint points; the later track's values win there."""
    if len(parts) == 1:
        return parts[0]
    last = len(parts) - 1

    def points(name: str) -> np.ndarray:
        return np.concatenate([getattr(x, name)[:-1] if i < last else getattr(x, name)
                               for i, x in enumerate(parts)])

    def intervals(name: str) -> np.ndarray:
        return np.concatenate([getattr(x, name) for x in parts])

    v_rc = np.concatenate([x.v_rc[:, :-1] if i < last else x.v_rc for i, x in enumerate(parts)],
                          axis=1)
    return Track(points("t"), points("soc"), v_rc, points("current_a"), points("voltage_v"),
                 intervals("dq_ah"), intervals("de_wh"), intervals("heat_w"), parts[-1].piece)


def first_order(y0: float, log_a, drive: np.ndarray) -> np.ndarray:
    """y[0] = y0, y[k+1] = exp(log_a[k]) y[k] + drive[k], for all k at once.

    y[k] = P_k (y0 + sum_{j<k} drive[j] / P_{j+1}) with P_k = exp(sum_{j<k} log_a[j]).
    `log_a` may be one number (uniform grid). Spans whose decay underflows are restarted.
    """
    n = len(drive)
    out = np.empty(n + 1)
    if n == 0:
        out[0] = y0
        return out
    if scalar(log_a) and -float(log_a) * n <= -_LOG_FLOOR:
        powers, inverse = decay_powers(float(log_a), n + 1)
        out[0] = 0.0
        accumulate(drive * inverse[1:], out=out[1:])
        out += y0
        out *= powers
        return out
    out[0] = y0
    cum = float(log_a) * np.arange(1, n + 1) if scalar(log_a) else accumulate(log_a)
    start, base = 0, 0.0
    while start < n:
        stop = n
        if cum[-1] - base < _LOG_FLOOR:
            stop = start + max(int(np.searchsorted(-(cum[start:] - base), -_LOG_FLOOR)), 1)
        rel = cum[start:stop] - base
        p = np.exp(rel)
        out[start + 1 : stop + 1] = p * (out[start] + accumulate(drive[start:stop] / p))
        base = cum[stop - 1]
        start = stop
    return out


# Grid kernels for uniform grids, shared by every piece with the same spacing and time
# constants: decays exp(-k dt / tau) and the powers of first_order. Small and reused
# from step to step, they turn the closed forms into a handful of array operations.
_KERNELS: dict = {}
_KERNEL_LENGTH = 4001


def _kernel(key, n: int, make):
    arr = _KERNELS.get(key)
    if arr is None or arr[-1].shape[-1] < n:
        if len(_KERNELS) > 256:
            _KERNELS.clear()
        arr = make(max(n, _KERNEL_LENGTH))
        _KERNELS[key] = arr
    return arr


def grid_index(n: int) -> np.ndarray:
    """0, 1, ..., n-1 as floats."""
    return _kernel("index", n, lambda m: (np.arange(m, dtype=float),))[0][:n]


def _decays(step_s: float, taus: tuple[float, ...], n: int) -> np.ndarray:
    """exp(-k step_s / tau_j) for k < n, shape (len(taus), n)."""
    def make(m):
        return (np.exp(np.multiply.outer(-1.0 / np.array(taus), np.arange(m) * step_s)),)
    return _kernel(("decay", step_s, taus), n, make)[0][:, :n]


def decay_powers(log_a: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """exp(k log_a) and exp(-k log_a) for k < n (n |log_a| within exp's range)."""
    def make(m):
        m = min(m, int(-_LOG_FLOOR / max(-log_a, 1e-300)) + 1)
        k = np.arange(m) * log_a
        return np.exp(k), np.exp(-k)
    powers, inverse = _kernel(("powers", log_a), n, make)
    return powers[:n], inverse[:n]


def _mean_factor(dt, tau):
    """tau/dt * (1 - exp(-dt/tau)): how much of an RC step shows in the interval's mean."""
    if scalar(dt) and scalar(tau):
        return -math.expm1(-dt / tau) * tau / dt if dt > 0 else 1.0
    x = dt / tau
    with np.errstate(invalid="ignore", divide="ignore"):
        f = -np.expm1(-x) / x
    return np.where(x > 0, f, 1.0)


class CurrentPiece:
    """The current is held over each interval: CC, rest, profiles, solved power."""

    def __init__(self, params: Params, state: CellState, t0: float, current_a: float = 0.0,
                 rc_soc: float | None = None):
        self.p = params
        self.state = state
        self.t0 = float(t0)
        self.current_a = float(current_a)
        # SoC at which SoC-dependent RC pairs are evaluated over a single interval.
        self.rc_soc = state.soc if rc_soc is None else rc_soc

    def solve(self, t: np.ndarray, currents: np.ndarray | None = None,
              last_current: float | None = None, step_s: float | None = None,
              points_only: bool = False) -> Track:
        """Advance over grid `t` (t[0] == t0); `currents` per interval, default the piece's.

        `step_s`: the grid's spacing when it is uniform (cached kernels, fewer operations).
        `points_only`: skip the interval quantities (constant current only: a look ahead).
        """
        if currents is None and self.p.rc_const:
            return self._solve_closed(t, step_s, points_only)
        if currents is None:
            currents = np.full(len(t) - 1, self.current_a)
        return self._solve_held(t, currents, last_current, step_s)

    def _solve_closed(self, t: np.ndarray, step_s: float | None,
                      points_only: bool = False) -> Track:
        """Constant current, SoC-independent RC pairs: v_i(t) = R_i I + (v_i0 - R_i I) e^(-t/tau_i)."""
        p = self.p
        i = self.current_a
        n_pts = len(t)
        if i == 0.0 and step_s is not None:
            return self._solve_rest(t, step_s)
        if step_s is not None:
            soc = grid_index(n_pts) * (i * step_s / p.q_as)
            decay = _decays(step_s, p.rc_tau_key, n_pts)
            dt = step_s
            f = _kernel(("mean", step_s, p.rc_tau_key), 0, lambda m: (np.array(
                [_mean_factor(step_s, tau) for tau in p.rc_tau_key]),))[0]
        else:
            tr = t - self.t0
            soc = tr * (i / p.q_as)
            decay = np.exp(np.multiply.outer(-1.0 / p.rc_tau, tr))
            dt = t[1:] - t[:-1]
            f = None
        soc += self.state.soc
        ri = p.rc_r * i
        dev = np.array(self.state.v_rc) - ri
        v_dev = dev[:, None] * decay
        v_rc = v_dev + ri[:, None]
        ri_sum = float(total(ri))
        voltage = total(v_dev, axis=0)
        if points_only:
            voltage += interp(soc, p.ocv_x, p.ocv_y)
            voltage += ri_sum + i * p.r0(soc)
            return Track(t, soc, v_rc, filled(n_pts, i), voltage, _NONE, _NONE, _NONE, self)
        # Mean RC voltage over each interval, exactly: R I + (v_k - R I) tau/dt (1 - e^(-dt/tau)).
        if f is not None:
            mean_vsum = (dev * f) @ decay[:, :-1]
        else:
            mean_vsum = (v_dev[:, :-1] * _mean_factor(dt[None, :], p.rc_tau[:, None])).sum(axis=0)
        mean_vsum += ri_sum
        ocv = interp(soc, p.ocv_x, p.ocv_y)
        voltage += ocv
        if p.r0_const is not None:
            voltage += i * p.r0_const + ri_sum
            heat = mean_vsum * i
            heat += i * i * p.r0_const
        else:
            r0 = interp(soc, p.r0_x, p.r0_y)
            voltage += r0 * i
            voltage += ri_sum
            heat = r0[:-1] + r0[1:]
            heat *= 0.5 * i * i
            heat += mean_vsum * i
        ocv_sum = ocv[:-1] + ocv[1:]
        if step_s is not None:
            dq_ah = filled(n_pts - 1, i * step_s / 3600.0)
            de_wh = ocv_sum * (0.5 * i * step_s / 3600.0)
            de_wh += heat * (step_s / 3600.0)
        else:
            dq_ah = dt * (i / 3600.0)
            de_wh = ocv_sum * dq_ah
            de_wh *= 0.5
            de_wh += heat * dt * (1.0 / 3600.0)
        return Track(t, soc, v_rc, filled(n_pts, i), voltage, dq_ah, de_wh, heat, self,
                     i * step_s / 3600.0 if step_s is not None else None)

    def _solve_rest(self, t: np.ndarray, step_s: float) -> Track:
        """Zero current on a uniform grid: the RC voltages decay, nothing else moves."""
        p = self.p
        n_pts = len(t)
        decay = _decays(step_s, p.rc_tau_key, n_pts)
        v_rc = np.array(self.state.v_rc)[:, None] * decay
        voltage = total(v_rc, axis=0)
        voltage += p.ocv1(self.state.soc)
        return Track(t, filled(n_pts, self.state.soc), v_rc, np.zeros(n_pts), voltage,
                     np.zeros(n_pts - 1), np.zeros(n_pts - 1), np.zeros(n_pts - 1), self, 0.0)

    def _solve_held(self, t: np.ndarray, i: np.ndarray, last_current: float | None,
                    step_s: float | None) -> Track:
        """Current held over each interval at its own value (profiles, power, SoC-dependent RC)."""
        p = self.p
        s0, v0 = self.state.soc, self.state.v_rc
        dt = step_s if step_s is not None else t[1:] - t[:-1]
        soc = np.empty(len(t))
        soc[0] = 0.0
        accumulate(i * dt, out=soc[1:])
        soc *= 1.0 / p.q_as
        soc += s0
        v_rc = np.empty((p.n_rc, len(t)))
        mean_vsum = 0.0
        if p.n_rc:
            # SoC-dependent pairs take R and tau at each interval's mid SoC (second order).
            r_all, tau_all = ((p.rc_r, p.rc_tau) if p.rc_const
                              else p.rc_along(0.5 * (soc[:-1] + soc[1:])))
            for j in range(p.n_rc):
                # v[k+1] = a v[k] + R (1 - a) I_k with a = exp(-dt / tau): exact for held I.
                log_a = -dt / tau_all[j]
                one_minus_a = -math.expm1(log_a) if scalar(log_a) else -np.expm1(log_a)
                ri = r_all[j] * i
                v_rc[j] = first_order(v0[j], log_a, ri * one_minus_a)
                f = _mean_factor(dt, tau_all[j])
                mean_vsum = mean_vsum + (v_rc[j, :-1] * f + ri * (1.0 - f))
            vsum = v_rc.sum(axis=0)
        else:
            vsum = 0.0
        ocv = interp(soc, p.ocv_x, p.ocv_y)
        current = np.empty(len(t))
        current[:-1] = i
        current[-1] = (i[-1] if len(i) else self.current_a) if last_current is None else last_current
        r0 = p.r0(soc)
        voltage = current * r0
        voltage += ocv
        voltage += vsum
        dq_ah = (i * (1.0 / 3600.0)) * dt
        heat = i * (i * 0.5 * (r0[:-1] + r0[1:]) + mean_vsum)
        de_wh = dq_ah * 0.5 * (ocv[:-1] + ocv[1:]) + heat * dt * (1.0 / 3600.0)
        return Track(t, soc, v_rc, current, voltage, dq_ah, de_wh, heat, self)

    def at(self, t: float) -> Point:
        """The cell at time t, with this piece's current held from t0 (one interval)."""
        p = self.p
        i = self.current_a
        d = t - self.t0
        s = self.state.soc + i * d / p.q_as
        r, tau = p.rc1(self.rc_soc)
        v_rc = tuple(r[j] * i + (self.state.v_rc[j] - r[j] * i) * math.exp(-d / tau[j])
                     for j in range(p.n_rc))
        return Point(s, v_rc, i, p.ocv1(s) + i * p.r01(s) + sum(v_rc))

    def segment_to(self, t1: float) -> Track:
        """The two-point track from t0 to t1 (one interval), in plain arithmetic."""
        p = self.p
        i = self.current_a
        s0, v0 = self.state.soc, self.state.v_rc
        d = t1 - self.t0
        s1 = s0 + i * d / p.q_as
        r, tau = p.rc1(self.rc_soc)
        v1, mean_v = [], 0.0
        for j in range(p.n_rc):
            ri = r[j] * i
            a = math.exp(-d / tau[j])
            v1.append(ri + (v0[j] - ri) * a)
            f = -math.expm1(-d / tau[j]) * tau[j] / d if d > 0 else 1.0
            mean_v += ri + (v0[j] - ri) * f
        ocv0, ocv1 = p.ocv1(s0), p.ocv1(s1)
        r00, r01 = p.r01(s0), p.r01(s1)
        dq = i * d / 3600.0
        heat = i * (i * 0.5 * (r00 + r01) + mean_v)
        de = dq * 0.5 * (ocv0 + ocv1) + heat * d / 3600.0
        return _two_points(self, self.t0, t1, s0, s1, v0, v1, i, i,
                           ocv0 + i * r00 + sum(v0), ocv1 + i * r01 + sum(v1), dq, de, heat)

    def from_point(self, track: Track, k: int) -> CurrentPiece:
        """The same control restarted at sample k, with the current of interval k."""
        state = CellState(float(track.soc[k]), tuple(float(x) for x in track.v_rc[:, k]),
                          self.state.temperature_c)
        if k >= len(track.dq_ah):
            return CurrentPiece(self.p, state, float(track.t[k]), self.current_a)
        rc_soc = 0.5 * float(track.soc[k] + track.soc[k + 1])
        return CurrentPiece(self.p, state, float(track.t[k]), _interval_current(track, k), rc_soc)


def _interval_current(track: Track, k: int) -> float:
    dt = track.t[k + 1] - track.t[k]
    return float(track.dq_ah[k] * 3600.0 / dt) if dt > 0 else float(track.current_a[k])


class HoldPiece:
    """Constant terminal voltage on one SoC cell (see `params.HoldSystem`)."""

    def __init__(self, params: Params, state: CellState, t0: float, voltage_v: float):
        self.p = params
        self.state = state
        self.t0 = float(t0)
        self.voltage_v = float(voltage_v)
        upward = voltage_v - params.ocv1(state.soc) - sum(state.v_rc) >= 0
        sys = self.sys = params.hold_system(params.hold_cell(state.soc, upward), self.voltage_v)
        self.lo, self.hi, self.a0, self.b, self.r0 = sys.lo, sys.hi, sys.a0, sys.b, sys.r0
        self._set_start([state.soc, *state.v_rc])

    def _set_start(self, x0: list[float]) -> None:
        """x(t) = x0 + sum_j M[:, j] expm1(lam_j t) / lam_j, with M from x'(0) in modes."""
        sys = self.sys
        # Plain loops: the same sums in the same order as sum() of the products, cheaper.
        acc = 0.0
        for w, x in zip(sys.w, x0, strict=True):
            acc += w * x
        i0 = sys.i_c + acc
        x_dot = [g * i0 - x * k for g, x, k in zip(sys.gain, x0, sys.inv_tau, strict=True)]
        c = []
        for row in sys.vec_inv:
            acc = 0.0
            for v, d in zip(row, x_dot, strict=True):
                acc += v * d
            c.append(acc)
        self.i0 = i0
        self._m_list = [[r * cj for r, cj in zip(row, c, strict=True)] for row in sys.rows]
        self._base_list = [*x0, i0]
        self._arrays = None  # (M, base) as arrays, made on first use

    def current_at_start(self) -> float:
        return self.i0

    def solve(self, t: np.ndarray, points_only: bool = False) -> Track:
        """The hold at times `t` (t[0] == t0, increasing); `points_only` skips the
        interval quantities (a coarse look ahead)."""
        p = self.p
        lam = self.sys.lam
        if self._arrays is None:
            self._arrays = (np.array(self._m_list), np.array(self._base_list)[:, None])
        m, base = self._arrays
        phi = np.multiply(lam, t - self.t0)
        np.expm1(phi, out=phi)
        phi /= lam
        x = m @ phi
        x += base
        soc = x[0]
        v_rc = x[1:-1]
        current = x[-1]
        voltage = filled(len(t), self.voltage_v)
        if points_only:
            return Track(t, soc, v_rc, current, voltage, _NONE, _NONE, _NONE, self)
        dq_ah = (soc[1:] - soc[:-1]) * p.capacity_ah
        de_wh = dq_ah * self.voltage_v
        # I (V - OCV(s)) with OCV linear on the piece: exact mean over each interval
        # (intervals are never empty: pieces and ends fall strictly after a sample).
        heat = soc[:-1] + soc[1:]
        heat *= -0.5 * self.b
        heat += self.voltage_v - self.a0
        heat *= dq_ah * 3600.0
        heat /= t[1:] - t[:-1]
        return Track(t, soc, v_rc, current, voltage, dq_ah, de_wh, heat, self)

    def at(self, t: float) -> Point:
        d = t - self.t0
        phi = [math.expm1(lam * d) / lam for lam in self.sys.lam_list]
        # Plain loops (root finding calls this thousands of times): the same sums, in the
        # same order, as sum() of the products.
        x = []
        for base, row in zip(self._base_list, self._m_list, strict=True):
            acc = 0.0
            for m, f in zip(row, phi, strict=True):
                acc += m * f
            x.append(base + acc)
        return Point(x[0], tuple(x[1:-1]), x[-1], self.voltage_v)

    def segment_to(self, t1: float) -> Track:
        """The two-point track from t0 to t1."""
        end = self.at(t1)
        s0 = self.state.soc
        d = t1 - self.t0
        dq = (end.soc - s0) * self.p.capacity_ah
        i_mean = dq * 3600.0 / d if d > 0 else self.i0
        heat = i_mean * (self.voltage_v - self.a0 - self.b * 0.5 * (s0 + end.soc))
        return _two_points(self, self.t0, t1, s0, end.soc, self.state.v_rc, end.v_rc, self.i0,
                           end.current_a, self.voltage_v, self.voltage_v, dq,
                           dq * self.voltage_v, heat)

    def from_point(self, track: Track, k: int) -> HoldPiece:
        """The same linearisation restarted at sample k (the system is time-invariant)."""
        other = object.__new__(HoldPiece)
        other.__dict__.update(self.__dict__)
        other.t0 = float(track.t[k])
        v_rc = tuple(track.v_rc[:, k].tolist())
        other.state = CellState(float(track.soc[k]), v_rc, self.state.temperature_c)
        other._set_start([other.state.soc, *v_rc])
        return other



def _two_points(piece, t0, t1, s0, s1, v0, v1, i0, i1, volt0, volt1, dq, de, heat) -> Track:
    # Two arrays, their rows and items as views: one np.array per quantity cost more.
    points = np.array([[t0, t1], [s0, s1], [i0, i1], [volt0, volt1], *zip(v0, v1, strict=True)],
                      dtype=float)
    interval = np.array([dq, de, heat], dtype=float)
    return Track(points[0], points[1], points[4:], points[2], points[3], interval[0:1],
                 interval[1:2], interval[2:3], piece)
