"""Lin-KK: Kramers-Kronig validity test of a spectrum (Schönleber et al. 2014).

The spectrum is fitted, by *linear* least squares, with a model that obeys the
Kramers-Kronig relations by construction:

    Z_KK = R_s + sum_{k=1..M} R_k / (1 + j omega tau_k)  [+ 1/(j omega C)]  [+ j omega L]

with tau_k log-spaced from tau_1 = 10^-e / omega_max to tau_M = 1 / omega_min.
Schönleber's grid is e = 0; we default to e = 1 decade (`tau_extension_decades`)
so an arc whose apex lies above the highest measured frequency -- the bulk arc
of a solid electrolyte -- is representable and does not fail the test. Real and
imaginary parts are fitted together, each row weighted by 1/|Z|; the solve is
a small dense least-squares problem per M, no iterative fitting.

Choice of M (the mu criterion): mu = 1 - sum|R_k < 0| / sum|R_k >= 0|. M grows
from max(3, decades spanned) until mu < c (default 0.85): past that point the
RC elements start fitting noise (negative R_k), so M is the largest that still
describes only the physics. One guard: at small M negative R_k also appear from
*underfitting*; a mu drop is only accepted once the fit's residual is what noise
alone would leave -- its sum of squares within a chi-square ~3 sigma margin of
the noise variance estimated from the M = max_m fit (with its degrees of
freedom) -- or its RMS is below 0.1 %. If mu never drops, M = max_m (default
min(50, 2N - extra)). Every solve is an orthogonal (QR) least-squares solve:
the normal equations square the condition number of these nearly collinear
columns, and on numpy 2.4 / scipy 1.17 that misjudged the noise floor enough
to accept an under-fitted M (issue 13).

Residuals are reported in % of |Z|: 100 (Z'_data - Z'_KK) / |Z| and the same for
Z''. The verdict ``valid`` is max |residual| <= `max_residual_pct`, default
2.5 %: random noise of 0.5 % of |Z| per component stays below ~1.5 % (it is
what the KK model cannot absorb), while drift, a changing cell or a bad contact
leaves systematic residuals: a charge-transfer resistance growing by 50 % over
the sweep gives 3-6 %. Slower changes (20-30 % over a sweep) sit near the
threshold; Lin-KK is known to be weak against slow drift. Raise the threshold
for noisier instruments.

A series capacitance is included by default (`capacitance=True`, Schönleber &
Ivers-Tiffée's recommendation for capacitive low-frequency behaviour) so
blocking electrodes and diffusion tails are not mistaken for invalid data; its
coefficient is fitted as 1/C and may be ~0. `inductance=True` adds a series L
for spectra with cable inductance at high frequency.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import lstsq

from labctl.analysis.eis.blas import single_threaded
from labctl.errors import LabctlError

DEFAULT_C = 0.85
DEFAULT_MAX_RESIDUAL_PCT = 2.5
UNDERFIT_FLOOR_PCT = 0.1
DEFAULT_EXTENSION = 1.0


@dataclass(frozen=True)
class LinKKResult:
    frequency_hz: np.ndarray
    z_data: np.ndarray  # complex, Ohm
    z_fit: np.ndarray  # complex, Ohm: the KK-compliant model
    m: int  # number of RC elements chosen
    mu: float
    residual_real_pct: np.ndarray
    residual_imag_pct: np.ndarray
    max_abs_residual_pct: float
    max_residual_pct: float  # the threshold used for `valid`
    valid: bool
    r_series_ohm: float
    resistances_ohm: np.ndarray
    time_constants_s: np.ndarray
    capacitance_fitted: bool
    inverse_capacitance_per_f: float  # 1/C (0 when not fitted)
    inductance_h: float  # 0 when not fitted


def _time_constants(omega: np.ndarray, m: int, extension: float) -> np.ndarray:
    lo = np.log(10.0**-extension / omega.max())
    hi = np.log(1.0 / omega.min())
    if m == 1:
        return np.array([np.exp(0.5 * (lo + hi))])
    return np.exp(lo + (hi - lo) * np.arange(m) / (m - 1))


def _solve(omega, z, inv, m, capacitance, inductance, extension):
    """Weighted linear least squares for R_s, R_1..R_M [, 1/C] [, L].

    Returns tau, the coefficients, the model's weighted values (real rows then
    imaginary rows, divided by |Z|) and the RMS residual in % of |Z|.
    """
    tau = _time_constants(omega, m, extension)
    n, k = len(omega), 1 + m + int(capacitance) + int(inductance)
    # Rows: real parts then imaginary parts, each divided by |Z| (real arithmetic
    # throughout: 1/(1 + j x) = (1 - j x) / (1 + x^2)).
    a = np.zeros((2 * n, k))
    a[:n, 0] = inv
    x_ = np.outer(omega, tau)
    d = inv[:, None] / (1.0 + x_ * x_)
    a[:n, 1:1 + m] = d
    a[n:, 1:1 + m] = -x_ * d
    col = 1 + m
    if capacitance:
        a[n:, col] = -inv / omega
        col += 1
    if inductance:
        a[n:, col] = omega * inv
    b = np.concatenate([z.real * inv, z.imag * inv])
    # Column scaling: the 1/C and L columns differ from the R columns by decades.
    norms = np.sqrt(np.einsum("ij,ij->j", a, a))
    norms[norms == 0] = 1.0
    a /= norms
    # An orthogonal (QR) solve, never the normal equations: with M near 50 the
    # columns are nearly collinear, A^T A squares the condition number, and on
    # numpy 2.4 / scipy 1.17 the normal-equations residual of the M = max_m fit
    # came out 4x the true one, which let an under-fitting M = 9 pass (issue 13).
    x = lstsq(a, b, lapack_driver="gelsy", check_finite=False)[0]
    fit = a @ x
    r = fit - b
    rms_pct = 100.0 * float(np.sqrt((r @ r) / n))
    return tau, x / norms, fit, rms_pct


def _adequate(rms_pct: float, n: int, dof: int, noise_var: float) -> bool:
    """Residual no larger than noise alone would leave (chi-square, ~3 sigma margin).

    rms_pct^2 * n is the residual sum of squares; for an adequate model it is
    about noise_var * dof with a relative spread sqrt(2 / dof).
    """
    if rms_pct <= UNDERFIT_FLOOR_PCT:
        return True
    dof = max(dof, 1)
    return rms_pct**2 * n <= noise_var * dof * (1.0 + 3.0 * np.sqrt(2.0 / dof))


def _mu(r: np.ndarray) -> float:
    pos = np.abs(r[r >= 0]).sum()
    neg = np.abs(r[r < 0]).sum()
    return 1.0 - neg / pos if pos > 0 else -np.inf


@single_threaded
def lin_kk(frequency_hz: np.ndarray, z: np.ndarray, *, c: float = DEFAULT_C,
           max_m: int | None = None, m: int | None = None, capacitance: bool = True,
           inductance: bool = False, tau_extension_decades: float = DEFAULT_EXTENSION,
           max_residual_pct: float = DEFAULT_MAX_RESIDUAL_PCT) -> LinKKResult:
    """Lin-KK test of one spectrum; `m` fixes the number of RC elements (no mu search)."""
    f = np.asarray(frequency_hz, dtype=float)
    zz = np.asarray(z, dtype=complex)
    if f.shape != zz.shape or f.ndim != 1 or len(f) < 3:
        raise LabctlError(f"Lin-KK needs matching 1-D arrays of at least 3 points, got "
                          f"{f.shape} frequencies and {zz.shape} impedances")
    if not (np.all(np.isfinite(f)) and np.all(f > 0) and np.all(np.isfinite(zz))
            and np.all(zz != 0)):
        raise LabctlError("Lin-KK needs finite frequencies > 0 and finite, non-zero Z")
    omega = 2.0 * np.pi * f
    mod = np.abs(zz)
    n_extra = 1 + int(capacitance) + int(inductance)
    limit = 2 * len(f) - n_extra - 1  # keep at least one degree of freedom
    if max_m is None:
        max_m = min(50, limit)
    max_m = max(1, min(max_m, limit))
    extension = float(tau_extension_decades)
    decades = np.log10(omega.max() / omega.min()) + extension
    m_start = min(max_m, max(3, int(np.ceil(decades))))

    inv = 1.0 / mod

    def solve(n_rc: int):
        return _solve(omega, zz, inv, n_rc, capacitance, inductance, extension)

    if m is not None:
        chosen = max(1, min(int(m), limit))
        tau, x, fit, _ = solve(chosen)
        mu = _mu(x[1:1 + chosen])
    else:
        # The most flexible model's residual estimates the noise (per residual,
        # with its degrees of freedom); a mu drop while the fit is still
        # significantly above that is underfitting, not noise fitting.
        n_rows = 2 * len(f)
        k_max = max_m + n_extra
        noise_var = solve(max_m)[3] ** 2 * len(f) / max(n_rows - k_max, 1)
        for chosen in range(m_start, max_m + 1):
            tau, x, fit, rms = solve(chosen)
            mu = _mu(x[1:1 + chosen])
            if mu < c and _adequate(rms, len(f), n_rows - chosen - n_extra, noise_var):
                break
    n = len(f)
    z_kk = (fit[:n] + 1j * fit[n:]) * mod
    res_re = 100.0 * (zz.real - z_kk.real) / mod
    res_im = 100.0 * (zz.imag - z_kk.imag) / mod
    worst = float(max(np.abs(res_re).max(), np.abs(res_im).max()))
    k = 1 + chosen
    return LinKKResult(
        frequency_hz=f, z_data=zz, z_fit=z_kk, m=chosen, mu=float(mu),
        residual_real_pct=res_re, residual_imag_pct=res_im, max_abs_residual_pct=worst,
        max_residual_pct=float(max_residual_pct), valid=bool(worst <= max_residual_pct),
        r_series_ohm=float(x[0]), resistances_ohm=x[1:k].copy(), time_constants_s=tau,
        capacitance_fitted=bool(capacitance),
        inverse_capacitance_per_f=float(x[k]) if capacitance else 0.0,
        inductance_h=float(x[k + int(capacitance)]) if inductance else 0.0,
    )
