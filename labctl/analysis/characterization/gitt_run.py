"""`labctl analyze gitt RUN`: relaxed OCV vs SoC and the Weppner-Huggins diffusion coefficient.

Contract with procedures/gitt.yaml: pulses are the charge or discharge segments
with a rest before and after; SoC is counted from the run's fullest point (the
end of the CV hold) against the charge moved between full and empty (the pulse
series runs to the min voltage). Geometry, one of: `length_um` (the diffusion
length L), `radius_um` (spherical particles: L = V/S = r/3), or the mass form
(mass, molar volume, molar mass, area: L = m V_M / (M S)).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from labctl.analysis.characterization.common import csv_bytes, figure, long_csv_bytes, open_run_data
from labctl.errors import LabctlError

NAME = "gitt"


def diffusion_length_m(*, length_um: float | None = None, radius_um: float | None = None,
                       mass_g: float | None = None, molar_volume_cm3_per_mol: float | None = None,
                       molar_mass_g_per_mol: float | None = None,
                       area_cm2: float | None = None) -> float | None:
    """L in metres from one of the geometry options (None when none is given)."""
    from labctl.analysis.gitt import diffusion_length_from_mass

    mass = (mass_g, molar_volume_cm3_per_mol, molar_mass_g_per_mol, area_cm2)
    given = [length_um is not None, radius_um is not None, any(x is not None for x in mass)]
    if sum(given) > 1:
        raise LabctlError("GITT geometry: give one of --length-um, --radius-um or the mass form "
                          "(--mass-g, --molar-volume-cm3-per-mol, --molar-mass-g-per-mol, --area-cm2)")
    if length_um is not None:
        if not length_um > 0:
            raise LabctlError(f"--length-um must be > 0, got {length_um}")
        return length_um * 1e-6
    if radius_um is not None:
        if not radius_um > 0:
            raise LabctlError(f"--radius-um must be > 0, got {radius_um}")
        return radius_um * 1e-6 / 3.0  # a sphere's volume over its surface
    if given[2]:
        if any(x is None for x in mass):
            raise LabctlError("GITT mass form needs all of --mass-g, --molar-volume-cm3-per-mol, "
                              "--molar-mass-g-per-mol and --area-cm2")
        return diffusion_length_from_mass(mass_g * 1e-3, molar_volume_cm3_per_mol * 1e-6,
                                          molar_mass_g_per_mol * 1e-3, area_cm2 * 1e-4)
    return None


def analyze_gitt(run_dir: str | Path, *, length_m: float | None = None, grid_points: int = 101,
                 min_rest_s: float = 60.0, plots: bool = True) -> tuple[Path, dict[str, Any]]:
    """Store analysis/gitt/: pulses.parquet/csv, ocv.parquet, ocv.csv (cell format), summary, plots."""
    from labctl.analysis.gitt import gitt
    from labctl.analysis.ocv import ocv_curve
    from labctl.store.analysis import save_analysis

    data = open_run_data(run_dir)
    res = gitt(data.timeseries, diffusion_length_m=length_m, min_rest_s=min_rest_s)
    pulses = res.pulses
    curve = ocv_curve(res.ocv["soc"].to_numpy(), res.ocv["ocv_v"].to_numpy(),
                      grid_points=grid_points)
    valid = pulses[pulses["valid"]]
    summary: dict[str, Any] = {
        "n_pulses": len(pulses), "n_valid": len(valid), "capacity_ah": res.capacity_ah,
        "diffusion_length_m": length_m,
        "median_d_over_l2_per_s": float(np.median(valid.d_over_l2_per_s)) if len(valid) else None,
        "median_d_m2_per_s": (float(np.median(valid.d_m2_per_s))
                              if len(valid) and length_m is not None else None),
        "median_ir_drop_v": float(np.median(pulses.ir_drop_v)),
        "soc_range": [float(curve.soc.min()), float(curve.soc.max())],
    }
    figures = {}
    if plots:
        fig, (ax, ax_d) = figure(2, (7.0, 7.0))
        ax.plot(100 * curve.soc, curve.ocv_v, "-", label="OCV (monotone, PCHIP)")
        ax.plot(100 * res.ocv.soc, res.ocv.ocv_v, "o", ms=3, label="relaxed points")
        ax.set_ylabel("OCV / V")
        ax.legend()
        y = pulses.d_m2_per_s if length_m is not None else pulses.d_over_l2_per_s
        soc_mid = 50 * (pulses.soc_start + pulses.soc_end)
        ax_d.semilogy(soc_mid[pulses.valid], y[pulses.valid], "o", label="valid")
        ax_d.semilogy(soc_mid[~pulses.valid], y[~pulses.valid], "x", label="tau D/L^2 > 0.1")
        ax_d.set_ylabel("D / m^2 s^-1" if length_m is not None else "D/L^2 / s^-1")
        ax_d.set_xlabel("SoC / %")
        ax_d.legend()
        figures["gitt"] = fig
    folder = save_analysis(run_dir, NAME, tables={"pulses": pulses, "ocv": curve,
                                                  "ocv_points": res.ocv},
                           summary=summary,
                           files={"ocv.csv": long_csv_bytes(curve, ["ocv_v"]),
                                  "pulses.csv": csv_bytes(pulses)},
                           figures=figures)
    return folder, summary
