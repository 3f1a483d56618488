"""Kalman filters for SoC on an OCV + R0 + RC-pairs model, vectorised over cells.

State per cell: x = [soc, v_1, ..., v_n] (v_j the voltage over RC pair j).
Over a step of dt with the current I held (zero-order hold, current + = charge):

    soc' = soc + I dt / (3600 Q)
    v_j' = a_j v_j + R_j (1 - a_j) I,     a_j = exp(-dt / tau_j)
    V    = OCV(soc) + R0(soc) I + sum_j v_j   (+ measurement noise)

with R0, R_j, tau_j looked up at the SoC at the step's start, as the simulator does.

Noise: the current sensor's noise (`current_std_a`) enters the state through
the same equations, Q = s_I^2 g g^T with g = [dt/(3600 Q), R_j (1 - a_j)];
random walks on SoC and on the RC voltages (`soc_std_per_sqrt_s`,
`rc_std_v_per_sqrt_s`) stand for model error; `voltage_std_v` is the
measurement noise.

Arrays: the filters hold x as (n_states, n_cells) and P as (n_states, n_states,
n_cells), so one step is a few dozen numpy operations on n_cells-long rows with
no loop over cells; `.x` and `.P` show them as (n_cells, n_states[, n_states]).
The EKF linearises the OCV at the estimate (the slope of the OCV table's
segment) and ignores how R and tau change with SoC in the Jacobian. The UKF
(additive noise, sigma points drawn again before the update) linearises nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labctl.analysis.soc.lookup import EcmGrid, GridAtTemperature
from labctl.cells.spec import CellModel
from labctl.errors import LabctlError

AS_PER_AH = 3600.0


@dataclass(frozen=True)
class FilterSettings:
    voltage_std_v: float = 2e-3  # measurement noise of the cell voltage
    current_std_a: float = 0.02  # current sensor noise, propagated into SoC and RC states
    soc_std_per_sqrt_s: float = 1e-5  # random walk on SoC (capacity and model error)
    rc_std_v_per_sqrt_s: float = 1e-4  # random walk on each RC voltage
    initial_soc_std: float = 0.2  # how unsure the initial SoC is
    initial_rc_std_v: float = 5e-3
    ekf_iterations: int = 2  # 1: textbook EKF; more: iterated EKF (relinearise the update)
    ukf_alpha: float = 1.0  # sigma-point spread (scaled unscented transform)
    ukf_beta: float = 2.0
    ukf_kappa: float = 0.0


class _SocFilter:
    """State, covariance and the model lookups shared by the EKF and the UKF."""

    def __init__(self, model: CellModel, capacity_ah, initial_soc, *, n_cells: int | None = None,
                 settings: FilterSettings | None = None, n_rc: int | None = None,
                 initial_soc_error=0.0, grid_points: int = 1001):
        self.settings = settings or FilterSettings()
        self.grid = EcmGrid(model, n_rc, grid_points)
        self.n_rc = self.grid.n_rc
        self.n_states = 1 + self.n_rc
        sizes = {np.size(a) for a in (capacity_ah, initial_soc, initial_soc_error)} - {1}
        if n_cells is None:
            n_cells = sizes.pop() if sizes else 1
        if sizes - {n_cells}:
            raise LabctlError(f"capacity_ah, initial_soc and initial_soc_error must be scalars "
                              f"or have n_cells={n_cells} values")
        self.n_cells = n_cells
        cap = np.broadcast_to(np.asarray(capacity_ah, dtype=float), (n_cells,))
        if np.any(cap <= 0):
            raise LabctlError("capacity_ah must be > 0")
        self._inv_q_as = 1.0 / (AS_PER_AH * cap)
        self._x = np.zeros((self.n_states, n_cells))
        # The deliberate error lets a test or a study start the filter from a wrong SoC.
        self._x[0] = np.asarray(initial_soc, dtype=float) + np.asarray(initial_soc_error, float)
        s = self.settings
        self._p = np.zeros((self.n_states, self.n_states, n_cells))
        self._p[0, 0] = s.initial_soc_std**2
        for j in range(1, self.n_states):
            self._p[j, j] = s.initial_rc_std_v**2
        self._diag = np.arange(self.n_states)
        self._ab_grid: GridAtTemperature | None = None
        self._ab_dt = float("nan")
        self._ab = np.empty((0, 0))

    @property
    def x(self) -> np.ndarray:
        """State, (n_cells, n_states): soc, then the RC voltages (a view)."""
        return self._x.T

    @property
    def P(self) -> np.ndarray:  # noqa: N802 - the covariance's usual name
        """Covariance, (n_cells, n_states, n_states) (a view)."""
        return self._p.transpose(2, 0, 1)

    @property
    def soc(self) -> np.ndarray:
        return self._x[0].copy()

    @property
    def soc_std(self) -> np.ndarray:
        return np.sqrt(self._p[0, 0])

    def _grid(self, temperature_c) -> GridAtTemperature:
        if temperature_c is not None and np.ndim(temperature_c) != 0:
            raise LabctlError("temperature_c is one value per step, shared by all cells")
        return self.grid.at(temperature_c)

    def _transition(self, grid: GridAtTemperature, soc: np.ndarray, dt_s):
        """(a, b) per cell (n_rc, ...): exact ZOH decay and gain at the SoC at the step start."""
        k = grid.nearest(soc)
        if np.ndim(dt_s) == 0:
            if self._ab_grid is not grid or self._ab_dt != float(dt_s):
                # One exp per grid point instead of one per cell: dt is usually constant.
                self._ab_grid, self._ab_dt = grid, float(dt_s)
                self._ab = grid.transition(float(dt_s))
            ab = np.take(self._ab, k, axis=1)
            return ab[: self.n_rc], ab[self.n_rc:]
        a = np.exp(-np.asarray(dt_s, dtype=float) / np.take(grid.tau_s, k, axis=1))
        return a, np.take(grid.r_ohm, k, axis=1) * (1.0 - a)

    def _process_noise(self, dt_s, b: np.ndarray) -> np.ndarray:
        """Q (n_states, n_states, n_cells): current noise through g, plus random walks."""
        s = self.settings
        g = np.empty((self.n_states, self.n_cells))
        g[0] = dt_s * self._inv_q_as
        g[1:] = b
        q = (s.current_std_a**2) * (g[:, None, :] * g[None, :, :])
        q[0, 0] += s.soc_std_per_sqrt_s**2 * dt_s
        q[self._diag[1:], self._diag[1:]] += s.rc_std_v_per_sqrt_s**2 * dt_s
        return q

    def _measure(self, grid: GridAtTemperature, soc: np.ndarray, v_rc_sum, current_a):
        """Predicted terminal voltage and dV/dsoc for SoC values of any shape."""
        ocv, slope, r0, r0_slope = grid.lookup(soc)
        return ocv + r0 * current_a + v_rc_sum, slope + current_a * r0_slope

    def _check(self, *arrays) -> None:
        for a in arrays:
            if np.ndim(a) not in (0, 1) or (np.ndim(a) == 1 and len(a) != self.n_cells):
                raise LabctlError(f"expected a scalar or {self.n_cells} values per step, "
                                  f"got shape {np.shape(a)}")


class ExtendedKalmanFilter(_SocFilter):
    """EKF over n_cells cells at once (see the module docstring)."""

    def predict(self, current_a, dt_s, temperature_c=None) -> None:
        """Advance every cell over dt_s with `current_a` held (scalar or per cell)."""
        self._check(current_a, dt_s)
        grid = self._grid(temperature_c)
        x, p = self._x, self._p
        a, b = self._transition(grid, x[0], dt_s)
        x[0] += current_a * dt_s * self._inv_q_as
        if self.n_rc:
            x[1:] = a * x[1:] + b * current_a
        # F = diag(1, a_1, ..., a_n): F P F^T scales P_ij by f_i f_j.
        f = np.empty((self.n_states, self.n_cells))
        f[0] = 1.0
        f[1:] = a
        p *= f[:, None, :] * f[None, :, :]
        p += self._process_noise(dt_s, b)

    def update(self, current_a, voltage_v, temperature_c=None) -> np.ndarray:
        """Correct every cell with its measured voltage; returns the SoC estimates.

        With `ekf_iterations` > 1 this is the iterated EKF: the measurement is
        linearised again at the corrected state (Gauss-Newton), which matters when
        the SoC is far off on a curved OCV (a wrong initial SoC).
        """
        self._check(current_a, voltage_v)
        grid = self._grid(temperature_c)
        x0, p = self._x, self._p
        r = self.settings.voltage_std_v**2
        x = x0
        for it in range(max(1, self.settings.ekf_iterations)):
            v_hat, dv_dsoc = self._measure(grid, x[0], x[1:].sum(axis=0), current_a)
            # H = [dV/dsoc, 1, ..., 1]; PH = P H^T, S = H P H^T + R.
            ph = p[:, 0] * dv_dsoc
            if self.n_rc:
                ph += p[:, 1:].sum(axis=1)
            s = ph[0] * dv_dsoc + r
            if self.n_rc:
                s += ph[1:].sum(axis=0)
            k = ph / s
            innovation = voltage_v - v_hat
            if it:
                # Relinearised at x: y - h(x) - H (x0 - x).
                d = x0 - x
                innovation = innovation - dv_dsoc * d[0] - d[1:].sum(axis=0)
            x = x0 + k * innovation
        self._x = x
        # P - K S K^T written as P - PH PH^T / S stays symmetric to rounding.
        p -= ph[:, None, :] * k[None, :, :]
        return x[0].copy()


class UnscentedKalmanFilter(_SocFilter):
    """UKF (scaled unscented transform, additive noise) over n_cells cells at once."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        s, n = self.settings, self.n_states
        lam = s.ukf_alpha**2 * (n + s.ukf_kappa) - n
        self._spread = np.sqrt(n + lam)
        wm = np.full(2 * n + 1, 0.5 / (n + lam))
        wc = wm.copy()
        wm[0] = lam / (n + lam)
        wc[0] = wm[0] + 1.0 - s.ukf_alpha**2 + s.ukf_beta
        self._wm, self._wc = wm[:, None], wc[:, None, None, None]

    def _sigma_points(self) -> np.ndarray:
        """(2n+1, n_states, n_cells): x, x + c L_i, x - c L_i with L L^T = P."""
        chol = _cholesky(self._p) * self._spread
        chi = np.empty((2 * self.n_states + 1, self.n_states, self.n_cells))
        chi[0] = self._x
        for i in range(self.n_states):
            chi[1 + i] = self._x + chol[:, i]
            chi[1 + self.n_states + i] = self._x - chol[:, i]
        return chi

    def _moments(self, chi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Weighted mean and covariance of sigma points (2n+1, n_states, n_cells)."""
        mean = np.tensordot(self._wm[:, 0], chi, axes=(0, 0))
        d = chi - mean
        return mean, np.einsum("sin,sjn->ijn", d * self._wc[:, :, :, 0], d)

    def predict(self, current_a, dt_s, temperature_c=None) -> None:
        self._check(current_a, dt_s)
        grid = self._grid(temperature_c)
        chi = self._sigma_points()
        a, b = self._transition(grid, chi[:, 0], dt_s)  # (n_rc, 2n+1, n_cells)
        chi[:, 0] += current_a * dt_s * self._inv_q_as
        if self.n_rc:
            chi[:, 1:] = a.transpose(1, 0, 2) * chi[:, 1:] + b.transpose(1, 0, 2) * current_a
        self._x, p = self._moments(chi)
        # Process noise at the mean state's parameters.
        _, b_mean = self._transition(grid, self._x[0], dt_s)
        self._p = p + self._process_noise(dt_s, b_mean)

    def update(self, current_a, voltage_v, temperature_c=None) -> np.ndarray:
        self._check(current_a, voltage_v)
        grid = self._grid(temperature_c)
        chi = self._sigma_points()
        y, _ = self._measure(grid, chi[:, 0], chi[:, 1:].sum(axis=1), current_a)  # (2n+1, n)
        y_mean = self._wm[:, 0] @ y
        dy = y - y_mean
        wc = self._wc[:, 0, 0, 0][:, None]
        s = np.sum(wc * dy * dy, axis=0) + self.settings.voltage_std_v**2
        pxy = np.sum(wc[:, None, :] * (chi - self._x) * dy[:, None, :], axis=0)
        k = pxy / s
        self._x += k * (voltage_v - y_mean)
        self._p -= k[:, None, :] * pxy[None, :, :]
        return self._x[0].copy()


def _cholesky(p: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of each cell's (n, n) block of p (n, n, n_cells), vectorised.

    Diagonal terms are floored at a tiny positive value so rounding that leaves a
    covariance barely indefinite does not stop the filter.
    """
    n = p.shape[0]
    low = np.zeros_like(p)
    for j in range(n):
        d = p[j, j] - np.sum(low[j, :j] ** 2, axis=0)
        low[j, j] = np.sqrt(np.maximum(d, 1e-30))
        for i in range(j + 1, n):
            low[i, j] = (p[i, j] - np.sum(low[i, :j] * low[j, :j], axis=0)) / low[j, j]
    return low
