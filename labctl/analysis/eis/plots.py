"""Nyquist and Bode plots of a spectrum with its fit, written as PNG.

Figures are built with matplotlib's object API on the Agg canvas (no pyplot
state, no window): safe in threads, in CI and in a process serving many runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from labctl.analysis.eis.circuit import parse_circuit
from labctl.analysis.eis.fit import FitResult
from labctl.report.figures import agg_figure


def _model_curve(fit: FitResult, points_per_decade: int = 20):
    """The fitted model on a dense grid over the measured range (smooth curve)."""
    f = fit.frequency_hz
    lo, hi = np.log10(f.min()), np.log10(f.max())
    n = max(int((hi - lo) * points_per_decade) + 1, 2)
    fd = np.logspace(hi, lo, n)
    return fd, parse_circuit(fit.circuit).impedance(fd, fit.parameters)


def _figure(width_in: float, height_in: float) -> Figure:
    return agg_figure(width_in, height_in)


def nyquist_figure(frequency_hz: np.ndarray, z: np.ndarray, fit: FitResult | None = None,
                   title: str = "") -> Figure:
    """-Z'' against Z' with equal axes (capacitive arcs point up)."""
    fig = _figure(5.5, 5.0)
    ax = fig.add_subplot()
    z = np.asarray(z, dtype=complex)
    ax.plot(z.real, -z.imag, "o", ms=4, mfc="none", label="data")
    if fit is not None:
        _, zm = _model_curve(fit)
        ax.plot(zm.real, -zm.imag, "-", lw=1.5, label=f"fit {fit.circuit}")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("Z' / Ohm")
    ax.set_ylabel("-Z'' / Ohm")
    ax.axhline(0.0, color="0.7", lw=0.8)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def bode_figure(frequency_hz: np.ndarray, z: np.ndarray, fit: FitResult | None = None,
                title: str = "") -> Figure:
    """|Z| (log) and phase against log f."""
    fig = _figure(6.0, 5.5)
    ax_m, ax_p = fig.subplots(2, 1, sharex=True)
    f = np.asarray(frequency_hz, dtype=float)
    z = np.asarray(z, dtype=complex)
    ax_m.loglog(f, np.abs(z), "o", ms=4, mfc="none", label="data")
    ax_p.semilogx(f, np.degrees(np.angle(z)), "o", ms=4, mfc="none")
    if fit is not None:
        fd, zm = _model_curve(fit)
        ax_m.loglog(fd, np.abs(zm), "-", lw=1.5, label="fit")
        ax_p.semilogx(fd, np.degrees(np.angle(zm)), "-", lw=1.5)
    ax_m.set_ylabel("|Z| / Ohm")
    ax_p.set_ylabel("phase / deg")
    ax_p.set_xlabel("frequency / Hz")
    for ax in (ax_m, ax_p):
        ax.grid(True, which="both", alpha=0.3)
    ax_m.legend(loc="best", fontsize=8)
    if title:
        ax_m.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def arrhenius_figure(temperature_c: np.ndarray, sigma_s_per_cm: dict[str, np.ndarray],
                     fits: dict | None = None) -> Figure:
    """log10 sigma against 1000/T for each quantity (bulk, total), with the fitted lines."""
    fig = _figure(5.5, 4.5)
    ax = fig.add_subplot()
    t = np.asarray(temperature_c, dtype=float)
    x = 1000.0 / (t + 273.15)
    for name, s in sigma_s_per_cm.items():
        line = ax.semilogy(x, s, "o", label=name)[0]
        fit = (fits or {}).get(name)
        if fit is not None:
            tt = np.linspace(t.min(), t.max(), 50)
            ax.semilogy(1000.0 / (tt + 273.15), fit.sigma_s_per_cm(tt), "-",
                        color=line.get_color(),
                        label=f"{name}: Ea = {fit.activation_energy_ev:.3f} eV")
    ax.set_xlabel("1000 / T / K^-1")
    ax.set_ylabel("sigma / S cm^-1")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def save_png(fig: Figure, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, format="png")
    return p


def save_nyquist_png(path: str | Path, frequency_hz: np.ndarray, z: np.ndarray,
                     fit: FitResult | None = None,
                     title: str = "") -> Path:
    return save_png(nyquist_figure(frequency_hz, z, fit, title), path)


def save_bode_png(path: str | Path, frequency_hz: np.ndarray, z: np.ndarray,
                  fit: FitResult | None = None,
                  title: str = "") -> Path:
    return save_png(bode_figure(frequency_hz, z, fit, title), path)


def drt_figure(result, title: str = "") -> Figure:
    """gamma(tau) with its peaks (top) and the data with the back-computed spectrum."""
    fig = _figure(6.0, 7.0)
    ax_g, ax_n = fig.subplots(2, 1)
    ax_g.semilogx(result.tau_s, result.gamma_ohm, "-", lw=1.5)
    for p in result.peaks:
        ax_g.axvline(p.tau_s, color="0.6", lw=0.8, ls="--")
        ax_g.annotate(f"{p.resistance_ohm:.3g} Ohm\n{p.frequency_hz:.3g} Hz",
                      (p.tau_s, p.gamma_max_ohm), fontsize=7, ha="center", va="bottom")
    ax_g.set_xlabel("tau / s")
    ax_g.set_ylabel("gamma / Ohm")
    ax_g.grid(True, alpha=0.3)
    ax_g.set_title(f"{title}  lambda={result.lam:.2g} ({result.lambda_method})", fontsize=10)
    z, zf = result.z_data, result.z_fit
    ax_n.plot(z.real, -z.imag, "o", ms=4, mfc="none", label="data")
    ax_n.plot(zf.real, -zf.imag, "-", lw=1.2, label="from DRT")
    ax_n.set_aspect("equal", adjustable="datalim")
    ax_n.set_xlabel("Z' / Ohm")
    ax_n.set_ylabel("-Z'' / Ohm")
    ax_n.grid(True, alpha=0.3)
    ax_n.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig
