"""A cell model's parameters frozen at one temperature, as piecewise-linear curves in SoC.

The simulator evaluates every temperature dependence (Arrhenius scaling,
2-D tables) once per batch, at the cell temperature the batch starts from; the
cycler starts a new batch whenever the cell has drifted `MAX_DRIFT_K` from it.
What is left depends on SoC only and is piecewise linear, which is what makes
the closed forms in `ecm.py` exact between breakpoints.
"""

from __future__ import annotations

import math
import pickle
from bisect import bisect_left, bisect_right
from collections.abc import Callable

import numpy as np

from labctl.cells.spec import CellModel, Table
from labctl.hashes import blake2b
from labctl.np_kernels import scalar

# Past empty or full the OCV keeps falling / rising at this slope (0.1 V per 1 % SoC), as a
# real cell's voltage runs away, so an over-long step meets its cut-off instead of sitting
# on a clamped table for the rest of time.
OVERRUN_V_PER_SOC = 10.0
HOLD_PARAM_TOLERANCE = 0.01  # R0 / R_i / tau_i stay within 1 % of their value on a CV cell
# Time constants closer than this (relative) are pulled apart so the CV solver's
# eigenvectors stay independent (two equal RC pairs are one pair of twice the R).
_TAU_SEPARATION = 1e-6


# Params built by any simulated cell of this process, by (model_key, ..., temperature):
# a plan's twin and the run after it, or the runs of a long-lived process, share them and
# the CV holds' eigen-decompositions they cache (~20 ms of a 100-cycle run, measured).
_SHARED: dict[tuple, Params] = {}
SHARED_MAX = 512


def model_key(model: CellModel, capacity_ah: float) -> bytes | None:
    """A digest of everything Params are built from (None: the model cannot be pickled,
    and its Params are then not shared). Equal models give equal keys."""
    try:
        data = pickle.dumps((model, float(capacity_ah)), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # a model holding something unpicklable: simply not shared
        return None
    return blake2b(data, digest_size=16).digest()


def shared_params(key: tuple | None, build: Callable[[], Params]) -> Params:
    """The Params for `key` (see `model_key`), built once per process; None: build afresh.

    Params are never changed once built (copies are made for other capacities and
    temperatures); their caches fill the same whichever run asks first."""
    if key is None:
        return build()
    p = _SHARED.get(key)
    if p is None:
        p = build()
        if len(_SHARED) >= SHARED_MAX:
            _SHARED.clear()
        _SHARED[key] = p
    return p


def curve_at(table: Table, temperature_c: float) -> tuple[np.ndarray, np.ndarray]:
    """The table as a 1-D curve over its own SoC points at one temperature."""
    if table.temperature_c is None:
        return np.asarray(table.soc, dtype=float), np.asarray(table.values, dtype=float)
    return np.asarray(table.soc, dtype=float), np.asarray(table(table.soc, temperature_c), dtype=float)


def ocv_curve(table: Table, temperature_c: float) -> tuple[np.ndarray, np.ndarray]:
    """OCV over SoC, flat between the table's ends and 0 / 1, steep beyond 0 and 1."""
    x, y = curve_at(table, temperature_c)
    xs, ys = list(x), list(y)
    if xs[0] > 0.0:
        xs.insert(0, 0.0)
        ys.insert(0, ys[0])
    if xs[-1] < 1.0:
        xs.append(1.0)
        ys.append(ys[-1])
    xs = [-1.0, *xs, 2.0]
    ys = [ys[0] - OVERRUN_V_PER_SOC, *ys, ys[-1] + OVERRUN_V_PER_SOC]
    return np.array(xs), np.array(ys)


def _const(y: np.ndarray) -> float | None:
    return float(y[0]) if np.all(y == y[0]) else None


class Params:
    """Everything the physics needs, at one temperature.

    Curves are (x, y) arrays for np.interp. Resistances of SoC-only tables carry the
    Arrhenius factor of `temperature_c`; 2-D tables are sliced at it.
    """

    def __init__(self, model: CellModel, capacity_ah: float, temperature_c: float):
        self.temperature_c = float(temperature_c)
        self.capacity_ah = float(capacity_ah)
        self.q_as = capacity_ah * 3600.0
        factor = model.arrhenius_factor(temperature_c)

        self.ocv_x, self.ocv_y = ocv_curve(model.ocv_v, temperature_c)
        self.r0_x, self.r0_y = self._resistance(model.r0_ohm, temperature_c, factor)
        self.r0_const = _const(self.r0_y)

        self.n_rc = len(model.rc_pairs)
        self.rc_r_curves = [self._resistance(p.r_ohm, temperature_c, factor) for p in model.rc_pairs]
        self.rc_tau_curves = [curve_at(p.tau_s, temperature_c) for p in model.rc_pairs]
        consts = [_const(y) for _, y in self.rc_r_curves + self.rc_tau_curves]
        self.rc_const = all(c is not None for c in consts)
        if self.rc_const:
            self.rc_r = np.array(consts[: self.n_rc], dtype=float)
            self.rc_tau = _separate(np.array(consts[self.n_rc :], dtype=float))
            self.rc_tau_key = tuple(self.rc_tau.tolist())  # for the grid kernels

        # SoC points where some curve changes slope: the CV solver linearises between them.
        points = [self.ocv_x]
        if self.r0_const is None:
            points.append(self.r0_x)
        if not self.rc_const:
            points += [x for x, _ in self.rc_r_curves + self.rc_tau_curves]
        # sorted(set()) rather than np.unique: numpy 2.4's unique imports numpy.ma (7 ms of start-up)
        self.breakpoints = np.array(sorted(set(np.concatenate(points).tolist())), dtype=float)

        self._lists()
        self._hold_cells: list[float] | None = None
        self._hold_systems: dict = {}
        self.heat_capacity_j_per_k = model.thermal.heat_capacity_j_per_k
        self.heat_transfer_w_per_k = model.thermal.heat_transfer_w_per_k

    def with_capacity(self, capacity_ah: float) -> Params:
        """A copy with another capacity (an aged cell: the curves over SoC stay), the same
        as building it anew at that capacity without redoing the tables."""
        self.hold_cells()  # the same curves over SoC: the copy shares them, worked out once
        other = object.__new__(Params)
        other.__dict__.update(self.__dict__)
        other.capacity_ah = float(capacity_ah)
        other.q_as = capacity_ah * 3600.0
        other._hold_systems = {}  # they depend on the capacity
        return other

    def scaled(self, factor: float, temperature_c: float) -> Params:
        """A copy with every resistance multiplied by `factor` (Arrhenius, SoC-only tables)."""
        # Every resistance scaled alike leaves their relative changes, and so the hold
        # cells, as they are: the copy shares them, worked out once.
        self.hold_cells()
        other = object.__new__(Params)
        other.__dict__.update(self.__dict__)
        other.temperature_c = float(temperature_c)
        other.r0_y = self.r0_y * factor
        other.r0_const = None if self.r0_const is None else self.r0_const * factor
        other.rc_r_curves = [(x, y * factor) for x, y in self.rc_r_curves]
        if self.rc_const:
            other.rc_r = self.rc_r * factor
        other._resistance_lists()  # the OCV, time constants and breakpoints stay
        other._hold_systems = {}
        return other

    def _lists(self) -> None:
        # Plain-Python copies for one-point lookups (np.interp on a scalar costs more).
        self._ocv_l = (self.ocv_x.tolist(), self.ocv_y.tolist())
        self._tau_l = [(x.tolist(), y.tolist()) for x, y in self.rc_tau_curves]
        self._bp_l = self.breakpoints.tolist()
        if self.rc_const:
            self._rc_tau_l = self.rc_tau.tolist()
        self._resistance_lists()

    def _resistance_lists(self) -> None:
        self._r0_l = (self.r0_x.tolist(), self.r0_y.tolist())
        self._rc_l = [(x.tolist(), y.tolist()) for x, y in self.rc_r_curves]
        if self.rc_const:
            self._rc_r_l = self.rc_r.tolist()

    def ocv1(self, soc: float) -> float:
        return interp1(soc, *self._ocv_l)

    def r01(self, soc: float) -> float:
        return self.r0_const if self.r0_const is not None else interp1(soc, *self._r0_l)

    def rc1(self, soc: float) -> tuple[list[float], list[float]]:
        """(R_i, tau_i) of every pair at one SoC, as lists."""
        if self.rc_const:
            return self._rc_r_l, self._rc_tau_l  # shared lists: callers only read them
        r = [interp1(soc, *c) for c in self._rc_l]
        return r, _separate(np.array([interp1(soc, *c) for c in self._tau_l])).tolist()

    def soc_dependent_curves(self):
        """(x list, y list) of every curve other than the OCV that varies with SoC."""
        if self.r0_const is None:
            yield self._r0_l
        if not self.rc_const:
            yield from self._rc_l
            yield from self._tau_l

    @staticmethod
    def _resistance(table: Table, temperature_c: float, factor: float):
        x, y = curve_at(table, temperature_c)
        return x, (y if table.depends_on_temperature else y * factor)

    # -- lookups (vectorised over soc) ------------------------------------------------------
    def ocv(self, soc):
        return np.interp(soc, self.ocv_x, self.ocv_y)

    def r0(self, soc):
        if self.r0_const is not None:
            return np.full(np.shape(soc), self.r0_const) if not scalar(soc) else self.r0_const
        return np.interp(soc, self.r0_x, self.r0_y)

    def rc_along(self, soc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(R, tau) of every pair at every SoC, shape (n_rc, len(soc))."""
        if self.rc_const:
            n = len(soc)
            return (np.broadcast_to(self.rc_r[:, None], (self.n_rc, n)),
                    np.broadcast_to(self.rc_tau[:, None], (self.n_rc, n)))
        r = np.array([np.interp(soc, x, y) for x, y in self.rc_r_curves]).reshape(self.n_rc, -1)
        tau = np.array([np.interp(soc, x, y) for x, y in self.rc_tau_curves]).reshape(self.n_rc, -1)
        return r, tau

    def hold_cells(self) -> list[float]:
        """SoC boundaries of the stretches a CV hold is solved on.

        Between two breakpoints every curve is linear, so the OCV is exactly a + b s; a
        stretch is further cut into equal cells so that R0 and the RC parameters stay
        within HOLD_PARAM_TOLERANCE of their value at the cell's middle.
        """
        if self._hold_cells is None:
            bounds = [self._bp_l[0]]
            curves = list(self.soc_dependent_curves())
            for lo, hi in zip(self._bp_l, self._bp_l[1:], strict=False):
                m = 1
                for xs, ys in curves:
                    y_lo, y_hi = interp1(lo, xs, ys), interp1(hi, xs, ys)
                    change = abs(y_hi - y_lo) / min(y_lo, y_hi)
                    m = max(m, math.ceil(change / (2.0 * HOLD_PARAM_TOLERANCE)))
                bounds += [lo + (hi - lo) * k / m for k in range(1, m)] + [hi]
            self._hold_cells = bounds
        return self._hold_cells

    def hold_cell(self, soc: float, upward: bool) -> int:
        """Index of the cell `soc` is in; from a boundary, the one in the direction of travel."""
        cells = self.hold_cells()
        j = bisect_right(cells, soc) if upward else bisect_left(cells, soc)
        return min(max(j, 1), len(cells) - 1) - 1

    def hold_system(self, cell: int, voltage_v: float) -> HoldSystem:
        """The CV hold on one cell as a linear ODE, eigen-decomposed (cached)."""
        key = (cell, voltage_v)
        system = self._hold_systems.get(key)
        if system is None:
            if len(self._hold_systems) > 1024:
                self._hold_systems.clear()
            lo, hi = self._hold_cells[cell], self._hold_cells[cell + 1]
            system = HoldSystem(self, lo, hi, voltage_v)
            self._hold_systems[key] = system
        return system


class HoldSystem:
    """Constant voltage on one SoC cell: x = (s, v_1..v_n) obeys x' = A x + g exactly.

    With OCV(s) = a0 + b s on the cell, I = (V - a0 - b s - sum v) / R0 is affine in x,
    and so are ds/dt = I / (3600 Q) and dv_i/dt = -v_i / tau_i + R_i I / tau_i.
    A = V diag(lam) V^-1 (real eigenvalues: A is similar to a symmetric matrix).
    """

    def __init__(self, p: Params, lo: float, hi: float, voltage_v: float):
        self.lo, self.hi = lo, hi
        ocv_lo, ocv_hi = p.ocv1(lo), p.ocv1(hi)
        self.b = b = (ocv_hi - ocv_lo) / (hi - lo)
        self.a0 = a0 = ocv_lo - b * lo
        mid = 0.5 * (lo + hi)
        self.r0 = r0 = p.r01(mid)
        r, tau = p.rc1(mid)
        n = p.n_rc
        self.gain = [1.0 / p.q_as] + [r[j] / tau[j] for j in range(n)]  # dx/dI
        self.w = [-b / r0] + [-1.0 / r0] * n  # dI/dx
        self.inv_tau = [0.0] + [1.0 / x for x in tau]
        self.i_c = (voltage_v - a0) / r0
        # A as plain products (np.outer's values), the time constants off its diagonal: a
        # new process builds ~90 of these in a cycle-life run, and numpy's calls on 3x3
        # arrays cost more than the arithmetic.
        a_rows = [[g * w for w in self.w] for g in self.gain]
        for j in range(1, n + 1):
            a_rows[j][j] -= self.inv_tau[j]
        lam, vec = _eig(np.array(a_rows))
        # expm1(l t) / l -> t as l -> 0
        self.lam_list = [1e-300 if x == 0.0 else x for x in lam.tolist()]
        self.lam = np.array(self.lam_list)[:, None]
        # Rows: soc, v_1..v_n, current, as combinations of the modes.
        self.rows = vec.tolist() + [(np.asarray(self.w) @ vec).tolist()]
        self.vec_inv = _inv(vec).tolist()


# LAPACK through numpy's gufuncs without np.linalg's checks (a few microseconds each, on
# 3x3 matrices built here, finite by construction): the same routines, the same results.
try:
    from numpy.linalg import _umath_linalg
except ImportError:  # pragma: no cover - a numpy without it
    _umath_linalg = None


def _eig(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and right eigenvectors of a real matrix with real eigenvalues."""
    try:
        lam, vec = _umath_linalg.eig(a, signature="d->DD")
    except (AttributeError, TypeError):  # pragma: no cover - another numpy layout
        lam, vec = np.linalg.eig(a)
    if np.iscomplexobj(lam):
        lam, vec = lam.real, vec.real
    return lam, vec


def _inv(a: np.ndarray) -> np.ndarray:
    try:
        return _umath_linalg.inv(a, signature="d->d")
    except (AttributeError, TypeError):  # pragma: no cover
        return np.linalg.inv(a)


def interp1(x: float, xs: list[float], ys: list[float]) -> float:
    """np.interp for one point (clamped at the ends)."""
    j = bisect_right(xs, x)
    if j == 0:
        return ys[0]
    if j == len(xs):
        return ys[-1]
    x0, x1 = xs[j - 1], xs[j]
    return ys[j - 1] + (ys[j] - ys[j - 1]) * (x - x0) / (x1 - x0)


def _separate(tau: np.ndarray) -> np.ndarray:
    if len(tau) < 2:
        return tau
    out = tau.copy()
    for i in range(1, len(out)):
        for j in range(i):
            if abs(out[i] - out[j]) <= _TAU_SEPARATION * out[j]:
                out[i] = out[j] * (1.0 + 2 * _TAU_SEPARATION * i)
    return out
