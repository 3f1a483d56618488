"""Activation energy of a resistance from several temperatures (Arrhenius).

R(T) = A exp(Ea / (k_B T)), so ln R is linear in x = 1 / (k_B T) with slope Ea
(eV). With several SoC set-points per temperature the fit pools them with one
intercept per SoC and one shared slope (fixed effects), each temperature's table
first interpolated onto a common SoC grid inside the range all temperatures cover.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from labctl.analysis.ecm.segments import cluster_values, require_columns
from labctl.cells.spec import BOLTZMANN_EV_PER_K, ZERO_C_IN_K
from labctl.errors import LabctlError


@dataclass(frozen=True)
class ArrheniusFit:
    activation_energy_ev: float
    stderr_ev: float  # standard error of the slope; NaN without spare degrees of freedom
    n_temperatures: int
    n_points: int


def _pooled_slope(x: np.ndarray, y: np.ndarray, group: np.ndarray) -> ArrheniusFit:
    """Least-squares slope of y on x with one intercept per group."""
    groups, inv = np.unique(group, return_inverse=True)
    counts = np.bincount(inv)
    xd = x - (np.bincount(inv, x) / counts)[inv]
    yd = y - (np.bincount(inv, y) / counts)[inv]
    sxx = float(np.dot(xd, xd))
    if sxx <= 0:
        raise LabctlError("Arrhenius fit: needs at least two different temperatures")
    slope = float(np.dot(xd, yd)) / sxx
    dof = len(x) - len(groups) - 1
    se = math.sqrt(float(np.sum((yd - slope * xd) ** 2)) / dof / sxx) if dof > 0 else math.nan
    return ArrheniusFit(slope, se, len(np.unique(x)), len(x))


def arrhenius_fit(temperature_c: np.ndarray, values: np.ndarray) -> ArrheniusFit:
    """Ea (eV) and its standard error from values (> 0) at temperatures (°C)."""
    t = np.asarray(temperature_c, dtype=float)
    r = np.asarray(values, dtype=float)
    ok = np.isfinite(t) & np.isfinite(r) & (r > 0)
    if len(np.unique(t[ok])) < 2:
        raise LabctlError("Arrhenius fit: needs positive values at two or more temperatures")
    x = 1.0 / (BOLTZMANN_EV_PER_K * (t[ok] + ZERO_C_IN_K))
    return _pooled_slope(x, np.log(r[ok]), np.zeros(ok.sum()))


def activation_energy(table: pd.DataFrame, column: str = "r0_ohm",
                      soc_range: tuple[float, float] = (0.2, 0.9), grid_points: int = 8,
                      temperature_gap_c: float = 2.0) -> ArrheniusFit:
    """Ea of `column` from an ECM table (temperature_c, soc, column) over several temperatures."""
    require_columns(table, ("temperature_c", "soc", column), "activation energy table")
    df = table[["temperature_c", "soc", column]].dropna()
    df = df[df[column] > 0]
    labels = cluster_values(df["temperature_c"].to_numpy(), temperature_gap_c)
    groups = [g for _, g in df.groupby(labels, sort=True)]
    if len(groups) < 2:
        raise LabctlError(f"activation energy: {column} is known at fewer than two temperatures")
    lo = max(soc_range[0], *(g["soc"].min() for g in groups))
    hi = min(soc_range[1], *(g["soc"].max() for g in groups))
    if hi < lo:
        raise LabctlError(f"activation energy: the temperatures share no SoC range within "
                          f"{soc_range}")
    grid = np.linspace(lo, hi, grid_points) if hi > lo else np.array([lo])
    xs, ys, gs = [], [], []
    for g in groups:
        g = g.sort_values("soc")
        temp_k = float(g["temperature_c"].mean()) + ZERO_C_IN_K
        ys.append(np.log(np.interp(grid, g["soc"], g[column])))
        xs.append(np.full(len(grid), 1.0 / (BOLTZMANN_EV_PER_K * temp_k)))
        gs.append(np.arange(len(grid)))
    return _pooled_slope(np.concatenate(xs), np.concatenate(ys), np.concatenate(gs))
