"""Capacity retention against cycle number, and two fits of it.

- sqrt:  y = a + b sqrt(n)          (linear least squares; the SEI-growth law)
- power: y = a - b n^z              (scipy curve_fit; z free in 0.2..2)

Both report their parameters, RMSE, and the cycle where the fit crosses a
threshold (e.g. 0.8). The better fit (lower RMSE; sqrt on a tie, it has one
parameter less) is `best`.

A crossing is a prediction only as far as the data carry it: `threshold_crossing`
gives none beyond MAX_EXTRAPOLATION times the observed cycles, nor when the fade
the fit sees over the data is inside the noise (within NOISE_MULTIPLE times the
scatter of the points about the fit); it says why instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import curve_fit

MAX_EXTRAPOLATION = 3.0  # a crossing beyond 3x the observed cycles is not reported
NOISE_MULTIPLE = 3.0  # a fade smaller than 3x the scatter about the fit is noise


@dataclass
class RetentionFit:
    model: str  # "sqrt" or "power"
    parameters: dict[str, float]
    rmse: float
    cycles_to_threshold: float  # inf if the fit never gets there
    threshold: float
    extra: dict = field(default_factory=dict)

    def predict(self, n: np.ndarray) -> np.ndarray:
        n = np.asarray(n, dtype=float)
        p = self.parameters
        if self.model == "sqrt":
            return p["a"] + p["b"] * np.sqrt(n)
        return p["a"] - p["b"] * np.power(n, p["z"])

    def as_dict(self) -> dict:
        return {"model": self.model, **self.parameters, "rmse": self.rmse,
                "threshold": self.threshold, "cycles_to_threshold": self.cycles_to_threshold}


def _sqrt_fit(n: np.ndarray, y: np.ndarray, threshold: float) -> RetentionFit:
    a_mat = np.column_stack([np.ones_like(n), np.sqrt(n)])
    (a, b), *_ = np.linalg.lstsq(a_mat, y, rcond=None)
    rmse = float(np.sqrt(np.mean((a + b * np.sqrt(n) - y) ** 2)))
    cross = ((threshold - a) / b) ** 2 if b < 0 and a > threshold else math.inf
    return RetentionFit("sqrt", {"a": float(a), "b": float(b)}, rmse, float(cross), threshold)


def _power_fit(n: np.ndarray, y: np.ndarray, threshold: float) -> RetentionFit | None:
    def f(x, a, b, z):
        return a - b * np.power(x, z)

    try:
        (a, b, z), _ = curve_fit(f, n, y, p0=(float(y[0]), 1e-3, 0.5),
                                 bounds=([0.0, 0.0, 0.2], [2.0, 10.0, 2.0]), maxfev=5000)
    except (RuntimeError, ValueError):
        return None
    rmse = float(np.sqrt(np.mean((f(n, a, b, z) - y) ** 2)))
    cross = ((a - threshold) / b) ** (1.0 / z) if b > 0 and a > threshold else math.inf
    return RetentionFit("power", {"a": float(a), "b": float(b), "z": float(z)}, rmse,
                        float(cross), threshold)


def fit_retention(cycle: np.ndarray, retention: np.ndarray, threshold: float = 0.8
                  ) -> dict[str, RetentionFit]:
    """Fits of retention(cycle); keys "sqrt", "power" (when it converges) and "best".

    Needs at least 3 finite points (else {}).
    """
    n = np.asarray(cycle, dtype=float)
    y = np.asarray(retention, dtype=float)
    ok = np.isfinite(n) & np.isfinite(y) & (n > 0)
    n, y = n[ok], y[ok]
    if len(n) < 3:
        return {}
    # Cycle numbers from the first fitted cycle, so that n = 1 is where retention is 1.
    n = n - n[0] + 1.0
    fits = {"sqrt": _sqrt_fit(n, y, threshold)}
    power = _power_fit(n, y, threshold) if len(n) >= 4 else None
    if power is not None:
        fits["power"] = power
    for f in fits.values():
        residuals = f.predict(n) - y
        dof = max(len(n) - len(f.parameters), 1)
        f.extra["observed_cycles"] = float(n[-1])
        f.extra["noise"] = float(np.sqrt(np.sum(residuals**2) / dof))
        f.extra["fade"] = float(f.predict(np.array([1.0]))[0] - f.predict(np.array([n[-1]]))[0])
    fits["best"] = min(fits.values(), key=lambda f: (f.rmse, f.model != "sqrt"))
    return fits


def threshold_crossing(fit: RetentionFit, max_multiple: float = MAX_EXTRAPOLATION
                       ) -> tuple[float | None, str | None]:
    """(cycle where the fit crosses its threshold, counted from the first fitted cycle; or
    None) and, when None, why no cycle is given."""
    observed = fit.extra.get("observed_cycles", math.nan)
    noise, fade = fit.extra.get("noise", 0.0), fit.extra.get("fade", math.nan)
    limit = max_multiple * observed
    pct = f"{fit.threshold:.0%}"
    if not (math.isfinite(fade) and fade > NOISE_MULTIPLE * noise):
        return None, (f"no {pct} prediction: the fade over the {observed:.0f} cycles measured "
                      f"({100 * fade:.3g} %) is inside the noise ({100 * noise:.2g} % "
                      f"scatter about the fit)")
    cross = fit.cycles_to_threshold
    if not math.isfinite(cross):
        return None, f"no {pct} prediction: the fit never reaches {pct}"
    if cross > limit:
        return None, (f"no {pct} prediction: the fit reaches it only beyond "
                      f"{max_multiple:g}x the {observed:.0f} cycles measured (cycle {limit:.0f}); "
                      f"not extrapolated that far")
    return cross, None
