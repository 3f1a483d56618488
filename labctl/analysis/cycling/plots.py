"""Figures of the cycling analyses (matplotlib's object API on Agg: no pyplot state)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _figure(w: float = 6.5, h: float = 4.2) -> Figure:
    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def capacity_figure(cycles: pd.DataFrame, rpt: pd.DataFrame, fit=None, title: str = "") -> Figure:
    """Discharge capacity by cycle (ageing cycles, RPT capacities), the fit, DCIR on the right."""
    fig = _figure()
    ax = fig.add_subplot()
    ageing = cycles[~cycles["is_rpt"]]
    ax.plot(ageing["cycle_index"], ageing["discharge_capacity_ah"], ".", ms=2.5,
            label="discharge capacity")
    if len(rpt):
        ax.plot(rpt["cycle_index"], rpt["capacity_ah"], "s", ms=4, label="RPT capacity")
    if fit is not None:
        full = ageing[np.isfinite(ageing["retention"])]
        if len(full):
            n = full["cycle_index"].to_numpy(float)
            q0 = float(full["discharge_capacity_ah"].iloc[0])
            ax.plot(n, q0 * fit.predict(n - n[0] + 1), "-", lw=1.2,
                    label=f"fit ({fit.model}), RMSE {fit.rmse:.2g}")
    ax.set_xlabel("cycle")
    ax.set_ylabel("capacity / Ah")
    if len(rpt) and rpt["dcir_ohm"].notna().any():
        ax2 = ax.twinx()
        ax2.plot(rpt["cycle_index"], rpt["dcir_ohm"] * 1000.0, "^-", color="tab:red", ms=4,
                 lw=0.8, label="DCIR")
        ax2.set_ylabel("DCIR / mOhm", color="tab:red")
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(title or "capacity by cycle")
    ax.grid(alpha=0.3)
    return fig


def curves_figure(curves: dict[int | str, tuple[np.ndarray, np.ndarray]], xlabel: str,
                  ylabel: str, title: str) -> Figure:
    """One line per cycle (an int key: "cycle N") or per label (a str key): y against x."""
    fig = _figure()
    ax = fig.add_subplot()
    for key, (x, y) in curves.items():
        ax.plot(x, y, lw=1.0, label=key if isinstance(key, str) else f"cycle {key}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if curves:  # a legend of nothing makes matplotlib warn on the user's terminal
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def rate_figure(rates: pd.DataFrame, title: str = "") -> Figure:
    fig = _figure()
    ax = fig.add_subplot()
    ax.semilogx(rates["c_rate"], rates["discharge_capacity_ah"], "o-", label="capacity")
    ax.set_xlabel("discharge C-rate")
    ax.set_ylabel("discharge capacity / Ah")
    ax2 = ax.twinx()
    ax2.semilogx(rates["c_rate"], rates["mean_voltage_v"], "s--", color="tab:orange")
    ax2.set_ylabel("mean discharge voltage / V", color="tab:orange")
    ax.set_title(title or "rate capability")
    ax.grid(alpha=0.3, which="both")
    return fig
