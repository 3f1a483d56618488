"""Distribution of relaxation times (DRT): Tikhonov-regularised, non-negative.

Model (Z = Z' + j Z'', omega = 2 pi f):

    Z(omega) = R_inf [+ j omega L] [+ 1 / (j omega C)]
               + integral gamma(ln tau) / (1 + j omega tau) d ln tau

gamma (Ohm per unit of ln tau) is piecewise constant on a grid of ln tau cells
(`per_decade` cells per decade, from 0.1 / omega_max to 10 / omega_min). Each
cell's integral is exact: with u = ln tau,

    integral_a^b du / (1 + j omega e^u) = [u - ln(1 + j omega e^u)]_a^b,

so a piecewise-constant distribution is reproduced without quadrature error.
R_inf, L and 1/C are non-negative unknowns that are not regularised; L is
included when the highest-frequency point is inductive (Im Z > 0), C when the
lowest-frequency phase is below -45 deg (a blocking or diffusion tail), unless
`inductance` / `capacitance` say otherwise.

The solution minimises  sum_i |(Z_model - Z_i) / |Z_i||^2 + lambda |D gamma|^2
subject to everything >= 0, with D the second-difference operator over ln tau
(smoothness; `order=1` for first differences), by NNLS on the stacked system.

Choice of lambda (`lam="auto"`): generalised cross-validation (Golub, Heath &
Wahba 1979) of the unconstrained problem over a log grid of lambda,
GCV(lambda) = N |r|^2 / trace(I - H)^2, or with `method="lcurve"` the corner of
the L-curve (maximum curvature of log |r| against log |D gamma|). A number
fixes lambda. The result states which.

Peaks: interior local maxima of gamma above `PEAK_FLOOR` (5 %) of the largest, each bounded by
the minima towards its neighbours; per peak the time constant (the centroid in
ln tau of the cells above half the peak's maximum), f = 1 / (2 pi tau), and the resistance =
the area of gamma over the peak's span.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import nnls

from labctl.analysis.eis.blas import single_threaded
from labctl.errors import LabctlError

PEAK_FLOOR = 0.05
DEFAULT_PER_DECADE = 10
LAMBDA_GRID = np.logspace(-8, 1, 37)


@dataclass(frozen=True)
class DrtPeak:
    tau_s: float
    frequency_hz: float
    resistance_ohm: float
    gamma_max_ohm: float
    span_tau_s: tuple[float, float]

    def as_dict(self) -> dict:
        return {"tau_s": self.tau_s, "frequency_hz": self.frequency_hz,
                "resistance_ohm": self.resistance_ohm, "gamma_max_ohm": self.gamma_max_ohm,
                "tau_from_s": self.span_tau_s[0], "tau_to_s": self.span_tau_s[1]}


@dataclass
class DrtResult:
    frequency_hz: np.ndarray
    z_data: np.ndarray
    z_fit: np.ndarray  # back-computed spectrum
    tau_s: np.ndarray  # cell centres (geometric)
    tau_edges_s: np.ndarray
    gamma_ohm: np.ndarray  # per unit ln tau
    r_inf_ohm: float
    inductance_h: float
    capacitance_f: float  # inf when no series capacitance
    lam: float
    lambda_method: str  # "GCV", "L-curve" or "given"
    order: int
    peaks: list[DrtPeak] = field(default_factory=list)

    @property
    def r_polarisation_ohm(self) -> float:
        """Integral of gamma: the total polarisation resistance."""
        return float(np.sum(self.gamma_ohm * np.diff(np.log(self.tau_edges_s))))

    @property
    def residual_real_pct(self) -> np.ndarray:
        return 100.0 * (self.z_data.real - self.z_fit.real) / np.abs(self.z_data)

    @property
    def residual_imag_pct(self) -> np.ndarray:
        return 100.0 * (self.z_data.imag - self.z_fit.imag) / np.abs(self.z_data)

    def summary(self) -> dict:
        res = np.r_[self.residual_real_pct, self.residual_imag_pct]
        return {
            "lambda": self.lam, "lambda_method": self.lambda_method,
            "regularisation_order": self.order,
            "r_inf_ohm": self.r_inf_ohm, "r_polarisation_ohm": self.r_polarisation_ohm,
            "inductance_h": self.inductance_h,
            "capacitance_f": None if not np.isfinite(self.capacitance_f) else self.capacitance_f,
            "n_peaks": len(self.peaks), "peaks": [p.as_dict() for p in self.peaks],
            "residual_rms_pct": float(np.sqrt(np.mean(res**2))),
            "residual_max_pct": float(np.max(np.abs(res))),
        }


def _cell_integrals(omega: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """(n, M) complex: integral over each ln tau cell of 1 / (1 + j omega tau)."""
    u = np.log(edges)
    prim = u[None, :] - np.log1p(1j * np.outer(omega, edges))
    return prim[:, 1:] - prim[:, :-1]


def _difference(m: int, order: int) -> np.ndarray:
    d = np.eye(m)
    for _ in range(order):
        d = np.diff(d, axis=0)
    return d


@single_threaded
def drt(frequency_hz: np.ndarray, z: np.ndarray, *, lam: float | str = "auto",
        method: str = "gcv", order: int = 2, per_decade: int = DEFAULT_PER_DECADE,
        inductance: bool | None = None, capacitance: bool | None = None) -> DrtResult:
    """DRT of one spectrum (z complex, Ohm). See the module docstring."""
    f = np.asarray(frequency_hz, dtype=float).ravel()
    zz = np.asarray(z, dtype=complex).ravel()
    if f.shape != zz.shape or f.size < 5:
        raise LabctlError(f"DRT needs matching arrays of at least 5 points, got {f.size} "
                          f"frequencies and {zz.size} impedances")
    if not (np.all(np.isfinite(f)) and np.all(f > 0) and np.all(np.isfinite(zz))
            and np.all(zz != 0)):
        raise LabctlError("DRT needs finite frequencies > 0 and finite, non-zero Z")
    if method not in ("gcv", "lcurve"):
        raise LabctlError(f"DRT lambda method {method!r}: use 'gcv' or 'lcurve'")
    if order not in (1, 2):
        raise LabctlError("DRT regularisation order must be 1 or 2")
    omega = 2.0 * np.pi * f
    lo, hi = np.log10(0.1 / omega.max()), np.log10(10.0 / omega.min())
    n_cells = max(int(np.ceil((hi - lo) * per_decade)), 10)
    edges = np.logspace(lo, hi, n_cells + 1)
    order_hf = np.argmax(f)
    if inductance is None:
        inductance = bool(zz.imag[order_hf] > 0)
    if capacitance is None:
        low = np.argmin(f)
        capacitance = bool(np.angle(zz[low], deg=True) < -45.0)

    cols = [np.ones_like(zz)]
    cols += [1j * omega] if inductance else []
    cols += [1.0 / (1j * omega)] if capacitance else []
    extra = np.stack(cols, axis=1)
    k_extra = extra.shape[1]
    kernel = _cell_integrals(omega, edges)
    full = np.hstack([extra, kernel]) / np.abs(zz)[:, None]
    a = np.vstack([full.real, full.imag])
    b = np.concatenate([zz.real, zz.imag]) / np.concatenate([np.abs(zz), np.abs(zz)])
    norms = np.linalg.norm(a, axis=0)
    norms[norms == 0] = 1.0
    a_s = a / norms
    d = np.zeros((n_cells - order, k_extra + n_cells))
    d[:, k_extra:] = _difference(n_cells, order) / norms[None, k_extra:]

    if isinstance(lam, str):
        if lam != "auto":
            raise LabctlError(f"--lambda {lam!r}: use 'auto' or a number > 0")
        lam_value, how = _choose_lambda(a_s, b, d, method)
    else:
        lam_value, how = float(lam), "given"
        if not (np.isfinite(lam_value) and lam_value > 0):
            raise LabctlError(f"DRT lambda must be a number > 0, got {lam!r}")
    x_s, _ = nnls(np.vstack([a_s, np.sqrt(lam_value) * d]),
                  np.concatenate([b, np.zeros(d.shape[0])]), maxiter=50 * a_s.shape[1])
    x = x_s / norms
    widths = np.diff(np.log(edges))
    gamma = x[k_extra:]  # the kernel integrates over each cell: x is gamma itself
    z_fit = np.hstack([extra, kernel]) @ x
    pos = 1
    r_inf = float(x[0])
    l_h = float(x[pos]) if inductance else 0.0
    pos += int(inductance)
    inv_c = float(x[pos]) if capacitance else 0.0
    out = DrtResult(frequency_hz=f, z_data=zz, z_fit=z_fit,
                    tau_s=np.sqrt(edges[:-1] * edges[1:]), tau_edges_s=edges, gamma_ohm=gamma,
                    r_inf_ohm=r_inf, inductance_h=l_h,
                    capacitance_f=1.0 / inv_c if inv_c > 0 else float("inf"),
                    lam=lam_value, lambda_method=how, order=order)
    out.peaks = find_peaks(out.tau_s, gamma, widths)
    return out


def _choose_lambda(a: np.ndarray, b: np.ndarray, d: np.ndarray, method: str
                   ) -> tuple[float, str]:
    """GCV or L-curve over LAMBDA_GRID, for the unconstrained regularised problem.

    One SVD serves every lambda: with R^T R = D^T D + delta I (delta tiny, so the
    unregularised columns stay solvable) and A R^-1 = U S V^T, the solution, the
    hat-matrix trace and both norms are sums over the singular values.
    """
    n, k = a.shape
    dtd = d.T @ d
    delta = 1e-10 * max(float(np.trace(dtd)) / k, 1e-300)
    r_chol = np.linalg.cholesky(dtd + delta * np.eye(k)).T
    u, sv, _ = np.linalg.svd(np.linalg.solve(r_chol.T, a.T).T, full_matrices=False)
    beta = u.T @ b
    outside = float(b @ b - beta @ beta)  # part of b no model can reach
    s2 = sv**2
    scores, res_norm, sol_norm = [], [], []
    for lam in LAMBDA_GRID:
        filt = s2 / (s2 + lam)
        rr = float(np.sum(((1.0 - filt) * beta) ** 2) + max(outside, 0.0))
        scores.append(n * rr / max(n - float(filt.sum()), 1e-12) ** 2)
        res_norm.append(np.sqrt(rr))
        sol_norm.append(float(np.linalg.norm(filt * beta / np.maximum(sv, 1e-300))))
    if method == "gcv":
        return float(LAMBDA_GRID[int(np.nanargmin(scores))]), "GCV"
    # L-curve corner: maximum curvature of (log residual, log roughness).
    xr, yr = np.log(np.maximum(res_norm, 1e-300)), np.log(np.maximum(sol_norm, 1e-300))
    t = np.log(LAMBDA_GRID)
    dx, dy = np.gradient(xr, t), np.gradient(yr, t)
    ddx, ddy = np.gradient(dx, t), np.gradient(dy, t)
    curvature = (dx * ddy - dy * ddx) / np.maximum((dx**2 + dy**2) ** 1.5, 1e-300)
    curvature[~np.isfinite(curvature)] = -np.inf
    return float(LAMBDA_GRID[int(np.argmax(curvature[1:-1])) + 1]), "L-curve"


def find_peaks(tau: np.ndarray, gamma: np.ndarray, widths: np.ndarray) -> list[DrtPeak]:
    """Peaks of gamma (module docstring), fastest first."""
    if gamma.size < 3 or gamma.max() <= 0:
        return []
    g = gamma
    floor = PEAK_FLOOR * g.max()
    # Interior maxima only: mass piling up at a grid end is a process outside the
    # measured window (or a tail), not a peak whose time constant can be read.
    is_max = np.r_[False, (g[1:-1] >= g[:-2]) & (g[1:-1] > g[2:]), False]
    idx = [int(i) for i in np.flatnonzero(is_max & (g > floor))]
    peaks = []
    ln_tau = np.log(tau)
    for n, i in enumerate(idx):
        left = 0 if n == 0 else idx[n - 1] + int(np.argmin(g[idx[n - 1]:i + 1]))
        right = g.size if n == len(idx) - 1 else i + int(np.argmin(g[i:idx[n + 1] + 1])) + 1
        area = float(np.sum(g[left:right] * widths[left:right]))
        # Time constant: centroid in ln tau of the peak's top (cells above half its
        # maximum, contiguous): steadier than the maximum's cell on a discrete grid.
        lo_i = i
        while lo_i > left and g[lo_i - 1] >= 0.5 * g[i]:
            lo_i -= 1
        hi_i = i
        while hi_i < right - 1 and g[hi_i + 1] >= 0.5 * g[i]:
            hi_i += 1
        top = slice(lo_i, hi_i + 1)
        centre = float(np.sum(g[top] * ln_tau[top]) / np.sum(g[top]))
        t = float(np.exp(centre))
        peaks.append(DrtPeak(tau_s=t, frequency_hz=1.0 / (2.0 * np.pi * t),
                             resistance_ohm=area, gamma_max_ohm=float(g[i]),
                             span_tau_s=(float(tau[left]), float(tau[right - 1]))))
    return peaks
