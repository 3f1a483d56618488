"""The fleet table of an analysis over many runs, its outliers and its plot.

`RESULTS/fleet/<analysis>.parquet` has one row per run: the run's catalog fields,
whether its analysis succeeded (and the error if not), and every number of the
analysis' summary.json (nested sections flattened as `section_key`). A run is an
outlier on a number when it lies more than 3 scaled MADs from the lot's median
(scaled MAD = 1.4826 x median absolute deviation, which estimates the standard
deviation for normally distributed values, without letting the outliers inflate
it). Analyses with a per-item table also get one long table of every run's items,
flagged per item the same way: `RESULTS/fleet/cycling-per-cycle.parquet` (capacity
retention of every cell at every cycle) and `RESULTS/fleet/hppc-per-setpoint.parquet`
(ECM parameters of every cell at every temperature and SoC set-point).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

MAD_SCALE = 1.4826  # 1 / Phi^-1(3/4): scaled MAD estimates sigma for normal data
OUTLIER_MADS = 3.0
# A lot where all but a few runs agree exactly has MAD 0; then a value is an outlier
# when it differs from the median by more than this relative amount (float noise).
ZERO_MAD_REL = 1e-9

CATALOG_FIELDS = ("run_id", "cell", "cell_name", "procedure", "station", "status", "source")
# What may group runs into lots (--lot): runs are compared only with their own lot.
LOT_FIELDS = ("cell", "cell_name", "procedure", "station", "source")


def parse_lot(text: str | None) -> tuple[str, ...]:
    """'cell,procedure' -> ('cell', 'procedure'); None or '' -> () (one lot: every run)."""
    from labctl.errors import LabctlError

    fields = tuple(f.strip() for f in (text or "").split(",") if f.strip())
    unknown = [f for f in fields if f not in LOT_FIELDS]
    if unknown:
        raise LabctlError(f"--lot {text!r}: {', '.join(map(repr, unknown))} is not a catalog "
                          f"column a lot can be made of; allowed: {', '.join(LOT_FIELDS)}")
    return fields


def lot_labels(df: pd.DataFrame, lot: tuple[str, ...]) -> pd.Series:
    """Each run's lot, as 'value / value' of the lot's fields ('all' without --lot)."""
    if not lot:
        return pd.Series("all", index=df.index, dtype=object)
    parts = [df[f].astype(object).where(df[f].notna(), "-").astype(str) for f in lot]
    out = parts[0]
    for part in parts[1:]:
        out = out + " / " + part
    return out.astype(object)


def _flag_by_lot(values: pd.Series, lots: pd.Series) -> pd.Series:
    return values.groupby(lots, group_keys=False).transform(lambda x: outlier_mask(x))


@dataclass(frozen=True)
class PerItem:
    """A per-run table of items (cycles, HPPC set-points) the fleet table collects too."""

    table: str  # stored as RUN/analysis/<name>/<table>.parquet
    items: tuple[str, ...]  # the columns that say which item a row is
    values: tuple[str, ...]  # the numbers compared across the lot (the first is plotted)
    suffix: str  # RESULTS/fleet/<name>-<suffix>.parquet
    # Items of different runs match after rounding to these steps (set-points are means).
    steps: tuple[tuple[str, float], ...] = ()

    def keys(self, df: pd.DataFrame) -> list[pd.Series]:
        step = dict(self.steps)
        return [(df[c] / step[c]).round() * step[c] if c in step else df[c]
                for c in self.items]


PER_ITEM = {
    "cycling": PerItem("cycles", ("cycle_index",), ("retention", "discharge_capacity_ah",
                                                    "coulombic_efficiency", "energy_efficiency"),
                       "per-cycle"),
    "hppc": PerItem("ecm", ("temperature_c", "soc"), ("r0_ohm", "r1_ohm", "tau1_s"),
                    "per-setpoint", steps=(("temperature_c", 1.0), ("soc", 0.05))),
}
# The summary number a plot shows first, per analysis (else the first varying number).
HEADLINE = {"cycling": "last_retention", "hppc": "median_r0_ohm_soc_20_80"}


def flatten(summary: dict[str, Any] | None, prefix: str = "") -> dict[str, float]:
    """The numbers of a summary (bools as 0/1; lists and text left out)."""
    out: dict[str, float] = {}
    for key, value in (summary or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, bool):
            out[name] = float(value)
        elif isinstance(value, (int, float)):
            out[name] = float(value)
        elif isinstance(value, dict) and not prefix:  # one level: fit_a, fit_rmse...
            out.update(flatten(value, prefix=f"{name}_"))
    return out


def outlier_mask(values: pd.Series) -> pd.Series:
    """True where a value is more than 3 scaled MADs from the median of the finite values."""
    x = pd.to_numeric(values, errors="coerce").astype(float)
    finite = x[np.isfinite(x)]
    mask = pd.Series(False, index=x.index)
    if len(finite) < 3:
        return mask  # no lot to compare with
    median = float(finite.median())
    mad = float((finite - median).abs().median()) * MAD_SCALE
    deviation = (x - median).abs()
    if mad > 0:
        mask = deviation > OUTLIER_MADS * mad
    else:
        mask = deviation > ZERO_MAD_REL * max(abs(median), 1e-300)
    return mask & np.isfinite(x)


def run_table(results: list[dict[str, Any]], catalog: pd.DataFrame,
              lot: tuple[str, ...] = ()) -> pd.DataFrame:
    """One row per run: catalog fields, `lot`, ok/error, the summary's numbers, outlier
    flags (each run against the median of its lot)."""
    by_path = {str(r.path): r for r in catalog.itertuples(index=False)}
    rows = []
    for res in results:
        row_info = by_path.get(str(res["run_path"]))
        base = {f: getattr(row_info, f, None) if row_info is not None else None
                for f in CATALOG_FIELDS}
        base["run_path"] = str(res["run_path"])
        base["ok"] = bool(res.get("ok"))
        base["error"] = res.get("error") if not res.get("ok") else None
        rows.append({**base, **flatten(res.get("summary") if res.get("ok") else None)})
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=[*CATALOG_FIELDS, "lot", "run_path", "ok", "error",
                                     "outlier", "outlier_metrics"])
    metrics = [c for c in df.columns if c not in (*CATALOG_FIELDS, "run_path", "ok", "error")]
    df.insert(len(CATALOG_FIELDS), "lot", lot_labels(df, lot))
    flags = {m: _flag_by_lot(df[m], df["lot"]) for m in metrics}
    df["outlier"] = pd.concat(flags.values(), axis=1).any(axis=1) if flags else False
    df["outlier_metrics"] = [", ".join(m for m in metrics if bool(flags[m].iloc[k]))
                             for k in range(len(df))]
    for col in ("error", "outlier_metrics", *CATALOG_FIELDS, "lot", "run_path"):
        df[col] = df[col].astype(object)
    return df.sort_values("run_id", kind="stable").reset_index(drop=True)


def per_item_table(name: str, runs: pd.DataFrame, results: list[dict[str, Any]]
                   ) -> pd.DataFrame | None:
    """The long table of an analysis with per-item rows (cycling: one row per run and
    cycle), from the rows each task read from its run's stored table. `outlier` flags a
    row whose first value lies > 3 scaled MADs from the lot's median for that item."""
    spec = PER_ITEM.get(name)
    if spec is None:
        return None
    items = {str(r["run_path"]): r.get("items") for r in results if r.get("ok")}
    frames = []
    for row in runs[runs["ok"]].itertuples(index=False):
        data = items.get(str(row.run_path))
        if not data:
            continue
        df = pd.DataFrame(data)
        df.insert(0, "lot", getattr(row, "lot", "all"))
        df.insert(0, "cell", row.cell)
        df.insert(0, "run_id", row.run_id)
        frames.append(df)
    if not frames:
        return None
    long = pd.concat(frames, ignore_index=True)
    flag_col = next((c for c in spec.values if c in long.columns), None)
    if flag_col is not None and all(c in long.columns for c in spec.items):
        long["outlier"] = long.groupby([long["lot"], *spec.keys(long)],
                                       group_keys=False)[flag_col].transform(
            lambda x: outlier_mask(x))
    return long


def headline_metric(name: str, runs: pd.DataFrame) -> str | None:
    preferred = HEADLINE.get(name)
    if preferred in runs.columns:
        return preferred
    skip = {*CATALOG_FIELDS, "lot", "run_path", "ok", "error", "outlier", "outlier_metrics"}
    numeric = [c for c in runs.columns if c not in skip and pd.api.types.is_numeric_dtype(runs[c])
               and runs[c].nunique(dropna=True) > 1]
    return numeric[0] if numeric else None


def figure(name: str, runs: pd.DataFrame, per_item: pd.DataFrame | None) -> Any:
    """Per-cycle curves of every run (outlier runs in red), or the headline number per run
    with the lot's median and its 3-scaled-MAD band."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    outliers = set(runs.loc[runs["outlier"].astype(bool), "run_id"]) if len(runs) else set()
    spec = PER_ITEM.get(name)
    y_col = None
    if per_item is not None and spec is not None:
        y_col = next((c for c in spec.values if c in per_item.columns), None)
    if y_col is not None and spec.items[-1] in per_item.columns:
        x_col, others = spec.items[-1], [c for c in spec.items[:-1] if c in per_item.columns]
        lines = per_item.groupby(["run_id", *[k.rename(f"_{c}") for c, k in
                                              zip(others, spec.keys(per_item)[:-1], strict=True)]],
                                 sort=True) if others else per_item.groupby("run_id", sort=True)
        for key, df in lines:
            bad = (key[0] if isinstance(key, tuple) else key) in outliers
            ax.plot(df[x_col], df[y_col], lw=1.2 if bad else 0.6,
                    color="tab:red" if bad else "0.55", alpha=1.0 if bad else 0.5,
                    zorder=3 if bad else 2)
        ax.set_xlabel(x_col.replace("_", " "))
        ax.set_ylabel(y_col.replace("_", " "))
        ax.set_title(f"{name} over {runs['run_id'].nunique()} runs "
                     f"(outlier runs in red: {len(outliers)})")
        return fig
    metric = headline_metric(name, runs)
    ok = runs[runs["ok"]] if len(runs) else runs
    if metric is None or ok.empty:
        ax.text(0.5, 0.5, "no numbers to plot", ha="center", va="center", transform=ax.transAxes)
        return fig
    y = pd.to_numeric(ok[metric], errors="coerce").to_numpy(dtype=float)
    x = np.arange(len(y))
    flagged = ok["run_id"].isin(outliers).to_numpy()
    ax.scatter(x[~flagged], y[~flagged], s=10, color="0.4", label="runs")
    ax.scatter(x[flagged], y[flagged], s=18, color="tab:red", label="outliers")
    finite = y[np.isfinite(y)]
    if len(finite):
        med = float(np.median(finite))
        mad = float(np.median(np.abs(finite - med))) * MAD_SCALE
        ax.axhline(med, color="tab:blue", lw=1, label="median")
        if mad > 0 and math.isfinite(mad):
            ax.axhspan(med - OUTLIER_MADS * mad, med + OUTLIER_MADS * mad, color="tab:blue",
                       alpha=0.1, label="median ± 3 scaled MAD")
    ax.set_xlabel("run (sorted by id)")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(f"{name}: {metric} over {len(ok)} runs")
    ax.legend(fontsize=8, loc="best")
    return fig
