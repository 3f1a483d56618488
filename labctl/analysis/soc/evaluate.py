"""Scoring a SoC estimate against a reference, and a plot of both."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from labctl.errors import LabctlError


def _one(err: np.ndarray, t: np.ndarray, tolerance: float) -> dict[str, float]:
    ok = np.isfinite(err)
    if not ok.any():
        nan = float("nan")
        return dict(rmse=nan, max_abs_error=nan, convergence_time_s=nan,
                    rmse_after_convergence=nan, max_error_after_convergence=nan, final_error=nan)
    e, tt = err[ok], t[ok]
    bad = np.flatnonzero(np.abs(e) > tolerance)
    if len(bad) == 0:
        first = 0
    elif bad[-1] == len(e) - 1:
        first = None  # still outside the band at the end: never converged
    else:
        first = int(bad[-1]) + 1
    out = dict(rmse=float(np.sqrt(np.mean(e**2))), max_abs_error=float(np.max(np.abs(e))),
               final_error=float(e[-1]))
    if first is None:
        out |= dict(convergence_time_s=float("nan"), rmse_after_convergence=float("nan"),
                    max_error_after_convergence=float("nan"))
    else:
        after = e[first:]
        out |= dict(convergence_time_s=float(tt[first] - t[0]),
                    rmse_after_convergence=float(np.sqrt(np.mean(after**2))),
                    max_error_after_convergence=float(np.max(np.abs(after))))
    return out


def evaluate(estimate_soc, reference_soc, time_s, tolerance: float = 0.02) -> dict:
    """Error figures of an estimate (fractions of SoC, seconds).

    rmse, max_abs_error, final_error over all finite samples (NaN estimates, e.g. an
    OCV lookup away from rests, are left out); convergence_time_s: from the first
    sample to the first time after which |error| stays <= `tolerance` (NaN if it is
    outside at the end); rmse_after_convergence, max_error_after_convergence from
    then on. 1-D input gives floats; (n_steps, n_cells) gives one array per figure.
    """
    est = np.asarray(estimate_soc, dtype=float)
    ref = np.asarray(reference_soc, dtype=float)
    t = np.asarray(time_s, dtype=float)
    if t.ndim != 1 or est.shape[0] != len(t):
        raise LabctlError(f"evaluate: estimate shape {est.shape} does not match {len(t)} times")
    try:
        err = est - ref if est.ndim == ref.ndim else est - ref.reshape(len(t), -1)
    except ValueError as exc:
        raise LabctlError(f"evaluate: estimate {est.shape} vs reference {ref.shape}") from exc
    if err.ndim == 1:
        return _one(err, t, tolerance)
    rows = [_one(err[:, c], t, tolerance) for c in range(err.shape[1])]
    return {k: np.array([r[k] for r in rows]) for k in rows[0]}


def plot_soc(path: str | Path, time_s, reference_soc, estimates: Mapping[str, np.ndarray],
             title: str | None = None) -> Path:
    """PNG of the estimates and the reference SoC (top) and their errors (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t_h = np.asarray(time_s, dtype=float) / 3600.0
    ref = np.asarray(reference_soc, dtype=float)
    fig, (ax, ax_err) = plt.subplots(2, 1, sharex=True, figsize=(9, 6),
                                     gridspec_kw={"height_ratios": [2, 1]})
    ax.plot(t_h, 100 * ref, color="black", lw=2, label="reference")
    for name, est in estimates.items():
        est = np.asarray(est, dtype=float)
        ax.plot(t_h, 100 * est, lw=1, label=name)
        ax_err.plot(t_h, 100 * (est - ref), lw=1, label=name)
    ax.set_ylabel("SoC / %")
    ax.legend(loc="best")
    ax_err.axhline(0, color="black", lw=0.5)
    ax_err.set_ylabel("error / % SoC")
    ax_err.set_xlabel("time / h")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
