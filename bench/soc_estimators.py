"""Benchmark: EKF and UKF SoC filters vectorised over many cells (cell-updates per second).

A cell-update is one predict + one update of one cell. Every cell follows its
own scaled drive-cycle current; voltages come from the same 2-RC model (exact
zero-order-hold recurrence) with 2 mV noise, computed step by step outside the
timed part. Goal: >= 1,000,000 EKF cell-updates/s. Prints the figures; never
fails on timing.

    python bench/soc_estimators.py [--cells 10000] [--steps 1000]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from labctl.analysis.soc import (  # noqa: E402
    ExtendedKalmanFilter,
    FilterSettings,
    UnscentedKalmanFilter,
)
from labctl.cells.spec import CellModel, RCPair, Table, ThermalModel  # noqa: E402

CAP = 2.0
RC = ((0.015, 20.0), (0.020, 400.0))


def ocv(soc):
    return 3.45 + 0.62 * soc + 0.08 * soc**2 - 0.30 * np.exp(-soc / 0.05)


def model() -> CellModel:
    g = np.linspace(0, 1, 201)
    return CellModel(Table(g, ocv(g)), Table.constant(0.03),
                     tuple(RCPair(Table.constant(r), Table.constant(t)) for r, t in RC),
                     ThermalModel(40.0, 0.05))


def data(n_cells: int, n_steps: int, seed: int = 0):
    """Current and voltage (n_steps, n_cells), float64, and the true initial SoC."""
    rng = np.random.default_rng(seed)
    seg = rng.normal(-0.3, 1.0, n_steps // 30 + 1).repeat(30)[:n_steps] * CAP
    current = seg[:, None] * rng.uniform(0.5, 1.5, n_cells)
    soc = rng.uniform(0.4, 0.9, n_cells)
    vr = np.zeros((len(RC), n_cells))
    voltage = np.empty((n_steps, n_cells))
    a = np.array([np.exp(-1.0 / tau) for _, tau in RC])[:, None]
    r = np.array([r for r, _ in RC])[:, None]
    soc0 = soc.copy()
    for k in range(n_steps):
        voltage[k] = ocv(soc) + 0.03 * current[k] + vr.sum(axis=0)
        soc += current[k] / (3600 * CAP)
        vr = a * vr + r * (1 - a) * current[k]
    voltage += rng.normal(0.0, 2e-3, voltage.shape)
    return current, voltage, soc0


def run(cls, settings, current, voltage, soc0) -> tuple[float, float, float, int]:
    """(cell-updates/s, seconds, system seconds, page faults) of one filter over the data."""
    n_steps, n_cells = current.shape
    flt = cls(model(), CAP, soc0 + 0.1, settings=settings)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    flt.update(current[0], voltage[0])
    for k in range(1, n_steps):
        flt.predict(current[k - 1], 1.0)
        flt.update(current[k], voltage[k])
    elapsed = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return (n_cells * n_steps / elapsed, elapsed, r1.ru_stime - r0.ru_stime,
            r1.ru_minflt - r0.ru_minflt)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=1_000)
    args = ap.parse_args()
    t0 = time.perf_counter()
    current, voltage, soc0 = data(args.cells, args.steps)
    print(f"{args.cells} cells x {args.steps} steps, 2 RC pairs "
          f"(data made in {time.perf_counter() - t0:.1f} s)")
    cases = [
        ("EKF (iterated, 2 linearisations, default)", ExtendedKalmanFilter, FilterSettings()),
        ("EKF (textbook, 1 linearisation)", ExtendedKalmanFilter,
         FilterSettings(ekf_iterations=1)),
        ("UKF", UnscentedKalmanFilter, FilterSettings()),
    ]
    for name, cls, settings in cases:
        rate, elapsed, sys_s, faults = run(cls, settings, current, voltage, soc0)
        # System time and page faults show when temporaries go back and forth to the OS.
        print(f"  {name:44s} {rate / 1e6:6.2f} M cell-updates/s  ({elapsed:.2f} s, "
              f"{sys_s:.2f} s in the kernel, {faults} page faults)")


if __name__ == "__main__":
    main()
