"""What a finished run measured, for its closing summary and `labctl show`.

A cycling run is summed up by its capacities and (complete-cycle) efficiencies; a run
whose steps write their own records says what those hold instead of "0 Ah":
EIS runs the number of spectra, pellet runs a total conductivity per spectrum, abuse
runs the self-heating onset. These are quick readings for the technician at the bench;
`labctl analyze eis|abuse RUN` does the full fits.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labctl.errors import LabctlError


def spectra_count(spectra: pd.DataFrame) -> int:
    """Spectra in a `spectra` record table: each starts at point 0."""
    return int((pd.to_numeric(spectra["point"], errors="coerce") == 0).sum())


def valley_resistance_ohm(frequency_hz: np.ndarray, z_real_ohm: np.ndarray,
                          z_imag_ohm: np.ndarray) -> float:
    """Z' where the electrolyte arcs meet the blocking-electrode spike.

    From the lowest frequency upwards, -Z'' falls along the spike; where it stops
    falling (the valley) the arcs end and Z' is the pellet's total resistance.
    NaN when the spectrum has no such valley (no spike, or the arcs never close).
    """
    order = np.argsort(np.asarray(frequency_hz, float))  # lowest frequency first
    zr = np.asarray(z_real_ohm, float)[order]
    mz = -np.asarray(z_imag_ohm, float)[order]
    if len(zr) < 5 or not (np.isfinite(zr).all() and np.isfinite(mz).all()):
        return math.nan
    k = 0
    while k + 1 < len(mz) and mz[k + 1] < mz[k]:
        k += 1
    if k == 0 or k == len(mz) - 1:  # no spike at the low end, or no arc above it
        return math.nan
    return float(zr[k])


def pellet_conductivities(spectra: pd.DataFrame, thickness_mm: float, area_cm2: float
                          ) -> list[dict[str, Any]]:
    """Total conductivity sigma = L / (R A) (S/cm) of each spectrum, with its temperature."""
    out = []
    starts = np.flatnonzero(pd.to_numeric(spectra["point"], errors="coerce").to_numpy() == 0)
    bounds = list(starts) + [len(spectra)]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        part = spectra.iloc[a:b]
        r = valley_resistance_ohm(part["frequency_hz"].to_numpy(), part["z_real_ohm"].to_numpy(),
                                  part["z_imag_ohm"].to_numpy())
        sigma = (thickness_mm / 10.0) / (r * area_cm2) if r > 0 else math.nan
        temp = pd.to_numeric(part["temperature_c"], errors="coerce")
        out.append({"temperature_c": float(temp.mean()) if temp.notna().any() else None,
                    "conductivity_s_per_cm": sigma if math.isfinite(sigma) else None})
    return out


def _onsets(thermal: pd.DataFrame) -> dict[str, Any]:
    from labctl.analysis.abuse import analyze_thermal

    try:
        head, _ = analyze_thermal(thermal)
    except (LabctlError, ValueError, KeyError, IndexError):
        return {}
    steps = head.get("steps") or []
    onsets = [s.get("onset_c") for s in steps]
    found = [o for o in onsets if o is not None and math.isfinite(o)]
    return {"onset_temperature_c": min(found) if found else None,
            "max_temperature_c": max((s.get("max_temperature_c") or -math.inf) for s in steps)
            if steps else None}


def record_results(run: Any) -> dict[str, Any]:
    """Headline results of a run's record tables: spectra, conductivity, abuse onset.

    Empty for a run without such tables (a cycling run). Never raises for a damaged table:
    the closing summary must not fail after the run itself succeeded.
    """
    out: dict[str, Any] = {}
    try:
        tables = run.record_tables()
    except (LabctlError, OSError):
        return out
    if "spectra" in tables:
        try:
            spectra = run.records("spectra")
        except (LabctlError, OSError):
            spectra = None
        if spectra is not None and len(spectra):
            out["n_spectra"] = spectra_count(spectra)
            geometry = _pellet_geometry(Path(run.path))
            if geometry is not None:
                out["conductivity"] = pellet_conductivities(spectra, *geometry)
    if "thermal" in tables:
        try:
            thermal = run.records("thermal")
        except (LabctlError, OSError):
            thermal = None
        if thermal is not None and len(thermal):
            out.update(_onsets(thermal))
    return out


def _pellet_geometry(run_dir: Path) -> tuple[float, float] | None:
    from labctl.analysis.eis.runs import run_pellet_geometry

    try:
        return run_pellet_geometry(run_dir)
    except (LabctlError, OSError):
        return None
