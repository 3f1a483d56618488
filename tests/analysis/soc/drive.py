"""A known 2-RC cell and a drive cycle, voltage in closed form (exact for held current)."""

from __future__ import annotations

import numpy as np

from labctl.cells.spec import CellModel, RCPair, Table, ThermalModel

CAP = 2.0
R0 = 0.030
RC = ((0.015, 20.0), (0.020, 400.0))


def ocv(soc):
    """NMC-like OCV (V) vs SoC."""
    soc = np.asarray(soc, dtype=float)
    return 3.45 + 0.62 * soc + 0.08 * soc**2 - 0.30 * np.exp(-soc / 0.05) + 0.05 * np.exp((soc - 1) / 0.04)


def r0(soc):
    return R0 + 0.02 * (np.asarray(soc, dtype=float) - 0.5) ** 2


def cell_model(n_rc: int = 2, ocv_points: int = 201) -> CellModel:
    """What a filter is given: the tables a characterisation would have produced."""
    grid = np.linspace(0, 1, ocv_points)
    return CellModel(
        ocv_v=Table(grid, ocv(grid)), r0_ohm=Table(grid, r0(grid)),
        rc_pairs=tuple(RCPair(Table.constant(r), Table.constant(tau)) for r, tau in RC[:n_rc]),
        thermal=ThermalModel(40.0, 0.05))


def drive_cycle(duration_s: float, dt_s: float = 1.0, seed: int = 0, mean_c: float = -0.15):
    """Piecewise-constant current (A): random 5-120 s segments, ~20 % of them rests."""
    rng = np.random.default_rng(seed)
    n = int(duration_s / dt_s)
    current = np.empty(n)
    k = 0
    while k < n:
        length = int(rng.uniform(5, 120) / dt_s)
        if rng.random() < 0.2:
            level = 0.0
        else:
            level = CAP * (mean_c * 1.25 + rng.normal(0.0, 0.8))
        current[k:k + length] = np.clip(level, -3 * CAP, 1.5 * CAP)
        k += length
    return np.arange(n) * dt_s, current


def simulate(time_s, current_a, initial_soc, n_rc: int = 2, noise_v: float = 0.0, seed: int = 1):
    """(true SoC, measured voltage), each (n_steps, n_cells), current held over each interval.

    current_a: (n_steps,) or (n_steps, n_cells); initial_soc: scalar or (n_cells,).
    Each RC voltage follows v[k+1] = a v[k] + R (1 - a) I[k], a = exp(-dt/tau): the
    exact solution for a held current, no numerical integration.
    """
    t = np.asarray(time_s, dtype=float)
    i = np.asarray(current_a, dtype=float)
    i = i[:, None] if i.ndim == 1 else i
    i = np.broadcast_to(i, (len(t), max(i.shape[1], np.size(initial_soc))))
    dt = np.diff(t)[:, None]
    soc = np.empty(i.shape)
    soc[0] = initial_soc
    soc[1:] = soc[0] + np.cumsum(i[:-1] * dt, axis=0) / (3600 * CAP)
    v = ocv(soc) + r0(soc) * i
    for r, tau in RC[:n_rc]:
        a = np.exp(-dt / tau)
        vr = np.zeros(i.shape)
        for k in range(1, len(t)):
            vr[k] = a[k - 1] * vr[k - 1] + r * (1 - a[k - 1]) * i[k - 1]
        v += vr
    if noise_v:
        v = v + np.random.default_rng(seed).normal(0.0, noise_v, v.shape)
    return soc, v
