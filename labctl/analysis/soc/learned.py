"""Data-driven SoC estimators (scikit-learn) against the EKF on a held-out drive-cycle run.

`labctl analyze soc-learned RUN --train RUN [--train RUN ...] --cell-file CELL`.

Training data: stored drive-cycle runs (procedures/drive-cycle.yaml): the
reference SoC of every sample by coulomb counting from the full charge before the
profile (`characterization.soc_run.reference_soc`, the same reference the EKF is
scored against).

Inputs per sample (`window_features`): what a BMS has at that moment, no
coulomb count and no initial SoC -- the voltage, current and temperature now,
and the time-weighted means of voltage and current over the last `windows_s`
(60 s and 600 s by default): the means average out the IR drop and the RC
relaxations that hide the OCV in the instantaneous voltage.

Models (scikit-learn pipelines, standardised inputs):
- ``mlp``: a neural network, MLPRegressor with two hidden layers of 32 units;
- ``svr``: a support-vector machine, SVR with an RBF kernel (trained on an evenly
  spaced subset of at most `SVR_MAX_SAMPLES` samples: its cost grows with n^2).
Both are compared with the EKF (`ExtendedKalmanFilter` on the cell file's
model) on the same held-out run: RMSE and maximum error, one table.

scikit-learn is an optional extra (`pip install 'labctl[learned]'`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labctl.errors import LabctlError

ANALYSIS_NAME = "soc-learned"
DEFAULT_WINDOWS_S = (60.0, 600.0)
SVR_MAX_SAMPLES = 1500
MLP_MAX_SAMPLES = 6000


def _sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise LabctlError("the learned SoC estimators need scikit-learn: "
                          "pip install 'labctl[learned]'") from None


def _window_mean(t: np.ndarray, x: np.ndarray, window_s: float) -> np.ndarray:
    """Time-weighted mean of x over (t - window, t], zero-order hold, shorter at the start."""
    area = np.concatenate([[0.0], np.cumsum(x[:-1] * np.diff(t))])
    start = np.maximum(t - window_s, t[0])
    back = np.interp(start, t, area)
    span = t - start
    out = np.where(span > 0, (area - back) / np.where(span > 0, span, 1.0), x)
    return out


def window_features(rows: pd.DataFrame, windows_s: tuple[float, ...] = DEFAULT_WINDOWS_S
                    ) -> np.ndarray:
    t = rows["test_time_s"].to_numpy(float)
    v = rows["voltage_v"].to_numpy(float)
    i = rows["current_a"].to_numpy(float)
    temp = rows["temperature_c"].to_numpy(float) if "temperature_c" in rows else np.zeros_like(t)
    temp = np.where(np.isfinite(temp), temp, 25.0)
    cols = [v, i, temp]
    for w in windows_s:
        cols += [_window_mean(t, v, w), _window_mean(t, i, w)]
    return np.column_stack(cols)


def _run_rows(run_dir: Path, capacity_ah: float) -> tuple[pd.DataFrame, np.ndarray]:
    from labctl.analysis.characterization.common import open_run_data
    from labctl.analysis.characterization.soc_run import reference_soc

    data = open_run_data(run_dir)
    return reference_soc(data.timeseries, data.steps, capacity_ah, window="profile")


def _subset(n: int, most: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, most)).astype(int))


def train_models(x: np.ndarray, y: np.ndarray, seed: int = 0) -> dict[str, Any]:
    _sklearn()
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVR

    mlp = make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(32, 32),
                                                       max_iter=400, early_stopping=True,
                                                       random_state=seed))
    k = _subset(len(y), MLP_MAX_SAMPLES)
    mlp.fit(x[k], y[k])
    svr = make_pipeline(StandardScaler(), SVR(C=3.0, epsilon=0.01, gamma="scale"))
    k = _subset(len(y), SVR_MAX_SAMPLES)
    svr.fit(x[k], y[k])
    return {"mlp": mlp, "svr": svr}


def _errors(est: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    d = est - ref
    return {"rmse": float(np.sqrt(np.mean(d**2))), "max_abs_error": float(np.max(np.abs(d))),
            "bias": float(np.mean(d))}


def soc_learned(run_dir: str | Path, train: list[str | Path], *, cell_file: str | Path,
                initial_soc_error: float = 0.0, seed: int = 0, save: bool = True
                ) -> dict[str, Any]:
    """Train on `train`, evaluate MLP, SVR and the EKF on `run_dir`; store and return."""
    from labctl.analysis.characterization.soc_run import estimate
    from labctl.cells import load_cell

    run_dir = Path(run_dir).resolve()
    train_dirs = [Path(p).resolve() for p in train]
    if not train_dirs:
        raise LabctlError("--train: give at least one drive-cycle run")
    if run_dir.name in {p.name for p in train_dirs}:
        raise LabctlError(f"{run_dir.name}: a run cannot be both trained on and evaluated "
                          "(held-out evaluation)")
    _sklearn()
    cell = load_cell(cell_file)
    if cell.model is None:
        raise LabctlError(f"{cell_file}: the cell file has no model: section (the EKF needs it)")
    cap = cell.capacity_ah
    xs, ys = [], []
    for p in train_dirs:
        rows, ref = _run_rows(p, cap)
        xs.append(window_features(rows))
        ys.append(ref)
    from labctl.analysis.eis.blas import one_blas_thread

    with one_blas_thread():  # small dense problems: one thread is fastest (eis/blas.py)
        models = train_models(np.vstack(xs), np.concatenate(ys), seed)
    rows, ref = _run_rows(run_dir, cap)
    x = window_features(rows)
    with one_blas_thread():
        est = {name: np.clip(m.predict(x), 0.0, 1.0) for name, m in models.items()}
    est["ekf"] = estimate(rows, ref, cell.model, cap, methods=("ekf",),
                          initial_soc_error=initial_soc_error)["ekf"]
    table = pd.DataFrame({"test_time_s": rows["test_time_s"].to_numpy(float),
                          "reference_soc": ref} | {f"{k}_soc": v for k, v in est.items()})
    summary: dict[str, Any] = {
        "run": run_dir.name, "train_runs": [p.name for p in train_dirs],
        "n_training_samples": int(sum(len(y) for y in ys)), "n_samples": int(len(ref)),
        "cell_file": str(cell_file), "ekf_initial_soc_error": initial_soc_error,
        "features": "V, I, T now; time-weighted mean V and I over the last "
                    + " and ".join(f"{w:g} s" for w in DEFAULT_WINDOWS_S),
        "methods": {k: _errors(v, ref) for k, v in est.items()},
    }
    if save:
        from labctl.store.analysis import save_analysis

        summary["folder"] = str(save_analysis(run_dir, ANALYSIS_NAME, tables={"soc": table},
                                              summary=summary))
    return summary
