"""State of health from impedance: `labctl analyze soh-eis RUN` on a cycle-life run with
a spectrum in every reference performance check (procedures/cycle-life-eis.yaml).

For every spectrum: the RPT cycle's discharge capacity and its retention (against the
first RPT's), the equivalent-circuit fit (`--circuit`, default
R0-p(R1,CPE1)-p(R2,CPE2)-W1; multi-start, status per fit) and the DRT peaks. Stored
as table `growth`: each fitted resistance and DRT peak resistance, absolute and
relative to the first spectrum, against retention.

SoH estimate from one spectrum: retention = a + b ln(R_dc / R_dc,first), R_dc = the
fitted resistances' sum (series + arcs: what a DC current meets), a least-squares
line trained on the training RPTs and evaluated on the held-out ones (default: every
second RPT is held out, so both span the whole life). Why this feature: ageing
grows the cell's resistances together with its capacity loss (on the simulated cell
R = R_fresh (1 + g (1 - capacity fraction)), labctl/sim/ageing.py), and the log keeps
the relation close to linear for the modest growth of a useful life. Stored as table
`soh` (spectrum, cycle, retention measured and estimated, train/held-out) and in
summary.json (RMSE and maximum error on the held-out RPTs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labctl.errors import LabctlError

ANALYSIS_NAME = "soh-eis"
DEFAULT_CIRCUIT = "R0-p(R1,CPE1)-p(R2,CPE2)-W1"
N_DRT_PEAKS = 3


def analyze_soh(run_dir: str | Path, *, circuit: str = DEFAULT_CIRCUIT, holdout: int = 2,
                save: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(growth table, soh table, summary). `holdout`: every holdout-th RPT is held out."""
    from labctl.analysis.eis.drt import drt
    from labctl.analysis.eis.fit import fit_many
    from labctl.analysis.eis.runs import run_spectra
    from labctl.store.run import open_run

    run = open_run(run_dir)
    spectra, info = run_spectra(run)
    if len(spectra) < 4:
        raise LabctlError(f"{run.path.name}: {len(spectra)} spectra; a SoH estimate needs at "
                          "least 4 RPT spectra (cycle-life-eis)")
    if holdout < 2:
        raise LabctlError("--holdout must be >= 2 (every n-th RPT held out)")
    cycles = run.cycles.set_index("cycle_index")
    capacity = np.array([float(cycles.loc[c, "discharge_capacity_ah"])
                         if c in cycles.index else np.nan for c in info["cycle_index"]])
    if not np.all(np.isfinite(capacity)):
        raise LabctlError(f"{run.path.name}: a spectrum's cycle has no discharge capacity")
    retention = capacity / capacity[0]
    arrays = [(s.frequency_hz, s.z_real_ohm + 1j * s.z_imag_ohm) for s in spectra]
    fits = fit_many(arrays, circuit)
    drts = [drt(f, z) for f, z in arrays]
    rows = []
    names = [n for n in fits[0].parameter_names if n.startswith("R")]
    for k, (fit, d) in enumerate(zip(fits, drts, strict=True)):
        p = fit.as_dict()
        row = {"spectrum": k, "cycle_index": int(info["cycle_index"].iloc[k]),
               "capacity_ah": capacity[k], "retention": retention[k],
               "fit_converged": fit.converged,
               "not_identifiable": ",".join(fit.status()["not_identifiable"]),
               "r_dc_ohm": float(sum(p[n] for n in names)),
               "drt_r_inf_ohm": d.r_inf_ohm, "drt_r_polarisation_ohm": d.r_polarisation_ohm}
        row.update({f"{n}_ohm": p[n] for n in names})
        big = sorted(sorted(d.peaks, key=lambda x: -x.resistance_ohm)[:N_DRT_PEAKS],
                     key=lambda x: x.tau_s)
        for j, pk in enumerate(big):
            row[f"drt_peak{j + 1}_tau_s"] = pk.tau_s
            row[f"drt_peak{j + 1}_ohm"] = pk.resistance_ohm
        rows.append(row)
    growth = pd.DataFrame(rows)
    for col in [c for c in growth.columns if c.endswith("_ohm")]:
        growth[col.replace("_ohm", "_growth")] = growth[col] / growth[col].iloc[0]

    x = np.log(growth["r_dc_ohm"].to_numpy() / growth["r_dc_ohm"].iloc[0])
    held = (np.arange(len(x)) % holdout) == holdout - 1
    train = ~held
    coef = np.polyfit(x[train], retention[train], 1)
    estimate = np.polyval(coef, x)
    soh = pd.DataFrame({"spectrum": growth["spectrum"], "cycle_index": growth["cycle_index"],
                        "retention": retention, "retention_estimate": estimate,
                        "held_out": held})
    err = estimate[held] - retention[held]
    summary: dict[str, Any] = {
        "run": run.path.name, "circuit": circuit, "n_spectra": len(x),
        "n_held_out": int(held.sum()),
        "feature": "ln(R_dc / R_dc first spectrum), R_dc = sum of fitted resistances",
        "line": {"intercept": float(coef[1]), "slope_per_ln": float(coef[0])},
        "held_out_rmse": float(np.sqrt(np.mean(err**2))),
        "held_out_max_abs_error": float(np.max(np.abs(err))),
        "retention_last": float(retention[-1]),
        "r_dc_growth_last": float(growth["r_dc_growth"].iloc[-1]),
        "growth_last": {c: float(growth[c].iloc[-1]) for c in growth.columns
                        if c.endswith("_growth") and np.isfinite(growth[c].iloc[-1])},
    }
    if save:
        from labctl.store.analysis import save_analysis

        summary["folder"] = str(save_analysis(run.path, ANALYSIS_NAME,
                                              tables={"growth": growth, "soh": soh},
                                              summary=summary, figures=_figures(growth, soh)))
    return growth, soh, summary


def _figures(growth: pd.DataFrame, soh: pd.DataFrame) -> dict[str, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 7.0))
    FigureCanvasAgg(fig)
    ax_g, ax_s = fig.subplots(2, 1)
    for col in [c for c in growth.columns if c.endswith("_growth")]:
        ax_g.plot(100 * growth["retention"], growth[col], "o-", ms=3, label=col[:-7])
    ax_g.invert_xaxis()
    ax_g.set_xlabel("capacity retention / %")
    ax_g.set_ylabel("resistance / first")
    ax_g.legend(fontsize=7)
    ax_g.grid(True, alpha=0.3)
    for held, mark in ((False, "o"), (True, "s")):
        sel = soh[soh["held_out"] == held]
        ax_s.plot(100 * sel["retention"], 100 * sel["retention_estimate"], mark,
                  label="held out" if held else "training")
    lim = [100 * soh["retention"].min() - 1, 101]
    ax_s.plot(lim, lim, "-", color="0.6", lw=0.8)
    ax_s.set_xlabel("retention measured / %")
    ax_s.set_ylabel("retention from one spectrum / %")
    ax_s.legend(fontsize=8)
    ax_s.grid(True, alpha=0.3)
    fig.tight_layout()
    return {"soh-eis": fig}
