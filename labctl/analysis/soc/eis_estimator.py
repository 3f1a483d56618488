"""State of charge (and temperature) from one impedance spectrum.

Training data: runs with spectra at known SoC and temperature (`eis-vs-soc`,
`eis-vs-soc-at-temperature` at several chamber temperatures). Evaluation: other
runs, held out, never seen in training.

**Labels.** SoC of each spectrum by coulomb counting from the last full charge
before it (the end of a CV hold at the cell's maximum voltage counts as 100 %),
with the cell's capacity (`capacity_ah` of the run's cell file unless given);
temperature = the cell temperature recorded with the spectrum.

**Features** (`spectrum_features`), chosen because of how a cell's impedance
depends on its state:

- ln|Z| at `n_frequencies` log-spaced frequencies over the band common to all
  spectra: every resistance follows Arrhenius in temperature, R = R_ref
  exp(Ea/k_B (1/T - 1/T_ref)), so ln|Z| is linear in 1/T -- this is where the
  temperature shows; the interface arc and the diffusion tail follow SoC, so the
  *differences* of ln|Z| between frequencies carry SoC.
- the phase at the same frequencies: the shape of the spectrum (which process
  dominates at a frequency) changes with SoC where the interfacial arc and the
  diffusion tail grow towards the ends of the SoC range, while a common
  Arrhenius factor leaves the shape of a pure-R scaling unchanged.

**Model.** Ridge regression on the standardised features and their pairwise
products (quadratic: SoC effects are not linear in ln|Z|), one model for SoC
and one for temperature, the ridge penalty chosen by leave-one-run-out
cross-validation on the training runs (so it is tuned on spectra from a run it
did not see). Ridge is a few lines of linear algebra here, no extra dependency.
SoC predictions are clipped to [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from labctl.errors import LabctlError

ALPHAS = np.logspace(-4, 3, 15)
DEFAULT_N_FREQUENCIES = 10


def common_band(spectra: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
    lo = max(float(np.min(f)) for f, _ in spectra)
    hi = min(float(np.max(f)) for f, _ in spectra)
    if not hi > lo:
        raise LabctlError("the spectra share no frequency band: measure them over the same "
                          "range to compare them")
    return lo, hi


def spectrum_features(f: np.ndarray, z: np.ndarray, frequencies_hz: np.ndarray) -> np.ndarray:
    """ln|Z| and phase (rad) interpolated in log f at `frequencies_hz`."""
    order = np.argsort(f)
    lf = np.log(f[order])
    zz = z[order]
    at = np.log(frequencies_hz)
    if at.min() < lf[0] - 1e-9 or at.max() > lf[-1] + 1e-9:
        raise LabctlError("feature frequencies outside the spectrum's measured band")
    mag = np.interp(at, lf, np.log(np.abs(zz)))
    phase = np.interp(at, lf, np.unwrap(np.angle(zz)))
    return np.concatenate([mag, phase])


def _quadratic(x: np.ndarray) -> np.ndarray:
    n, k = x.shape
    iu = np.triu_indices(k)
    pairs = (x[:, :, None] * x[:, None, :])[:, iu[0], iu[1]]
    return np.hstack([x, pairs / np.sqrt(k)])


@dataclass
class _Ridge:
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    alpha: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        q = _quadratic((x - self.mean) / self.scale)
        return q @ self.coef + self.intercept


def _solve_ridge(q: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    qm, ym = q.mean(axis=0), y.mean()
    qc = q - qm
    # Dual form: the feature count can exceed the number of spectra.
    k = qc @ qc.T
    a = np.linalg.solve(k + alpha * np.eye(len(y)), y - ym)
    coef = qc.T @ a
    return coef, float(ym - qm @ coef)


def fit_ridge(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> _Ridge:
    """Quadratic ridge with the penalty chosen by leave-one-group(run)-out CV."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    q = _quadratic((x - mean) / scale)
    uniq = np.unique(groups)
    best_alpha, best_err = ALPHAS[-1], np.inf
    if len(uniq) >= 2:
        for alpha in ALPHAS:
            err = 0.0
            for g in uniq:
                tr, te = groups != g, groups == g
                coef, b = _solve_ridge(q[tr], y[tr], alpha)
                err += float(np.sum((q[te] @ coef + b - y[te]) ** 2))
            if err < best_err:
                best_alpha, best_err = float(alpha), err
    else:
        best_alpha = 1.0
    coef, b = _solve_ridge(q, y, best_alpha)
    return _Ridge(mean, scale, coef, b, best_alpha)


@dataclass
class EisStateModel:
    """SoC and temperature from one spectrum (module docstring)."""

    frequencies_hz: np.ndarray
    soc: _Ridge
    temperature: _Ridge
    n_training_spectra: int
    n_training_runs: int

    @classmethod
    def train(cls, spectra: list[tuple[np.ndarray, np.ndarray]], soc: np.ndarray,
              temperature_c: np.ndarray, groups: np.ndarray, *, band: tuple[float, float],
              n_frequencies: int = DEFAULT_N_FREQUENCIES) -> EisStateModel:
        freqs = np.geomspace(band[0], band[1], n_frequencies)
        x = np.array([spectrum_features(f, z, freqs) for f, z in spectra])
        return cls(freqs, fit_ridge(x, np.asarray(soc, float), np.asarray(groups)),
                   fit_ridge(x, np.asarray(temperature_c, float), np.asarray(groups)),
                   len(spectra), len(np.unique(groups)))

    def predict(self, spectra: list[tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
        x = np.array([spectrum_features(f, z, self.frequencies_hz) for f, z in spectra])
        return pd.DataFrame({"soc_estimate": np.clip(self.soc.predict(x), 0.0, 1.0),
                             "temperature_estimate_c": self.temperature.predict(x)})


def errors(estimate: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    d = np.asarray(estimate, float) - np.asarray(truth, float)
    return {"rmse": float(np.sqrt(np.mean(d**2))), "max_abs_error": float(np.max(np.abs(d))),
            "bias": float(np.mean(d))}
