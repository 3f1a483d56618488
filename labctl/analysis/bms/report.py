"""The BMS validation report of a run: every check with limits and verdict, and plots.

Reads only what the run directory holds (the `bms_checks` record table and the CAN
frame logs with their DBC and signal map), so it can be made again at any time:
`labctl analyze bms RUN`. Stored in RUN/analysis/bms/: checks.parquet and checks.csv,
summary.json (counts and the overall verdict), report.md, cell_voltages.png,
balancing.png, trips.png.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labctl.analysis.bms.checks import TABLE
from labctl.errors import LabctlError

NAME = "bms"


def _checks(run_dir: Path) -> pd.DataFrame:
    from labctl.store.run import open_run

    run = open_run(run_dir)
    if TABLE not in run.record_tables():
        raise LabctlError(f"{run_dir}: no BMS checks recorded (record table {TABLE!r}); "
                          "run a procedure with bms_* steps first")
    df = run.records(TABLE)
    cols = [c for c in ("step_index", "step", "name", "value", "unit", "low", "high", "verdict",
                        "detail") if c in df.columns]
    return df[cols].reset_index(drop=True)


def _signals(run_dir: Path) -> tuple[Any, list[tuple[np.ndarray, dict]]] | None:
    from labctl.can.decode import BatchDecoder
    from labctl.can.framelog import load_run_map, read_log, run_logs

    logs = run_logs(run_dir)
    if not logs:
        return None
    smap = load_run_map(run_dir)
    dec = BatchDecoder(smap.db)
    out = []
    for path in logs:
        batch = read_log(path)
        out.append((batch, dec.decode(batch.select(batch.is_rx))))
    return smap, out


def _role(smap: Any, decoded: dict, role: str, i: int = 0) -> tuple[np.ndarray, np.ndarray]:
    refs = smap.refs(role)
    if len(refs) <= i:
        return np.zeros(0), np.zeros(0)
    ref = refs[i]
    cols = decoded.get(ref.message)
    if cols is None:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(cols["time_s"])
    return cols["time_s"][order], np.asarray(ref.to_labctl(cols[ref.signal]), float)[order]


def _figures(smap: Any, parts: list) -> dict[str, Any]:
    from labctl.report.figures import agg_figure  # not pyplot: channels report at once

    figs = {}
    fig = agg_figure(9, 4)
    ax = fig.subplots()
    # per-cell values where the bus has them, else the minimum and maximum the BMS reports
    curves = [("cell_voltage_v", i) for i in range(len(smap.refs("cell_voltage_v")))] or \
        [(r, 0) for r in ("min_cell_voltage_v", "max_cell_voltage_v") if smap.has(r)]
    for _, dec in parts:
        for role, i in curves:
            t, v = _role(smap, dec, role, i)
            if len(t):
                step = max(1, len(t) // 4000)
                ax.plot(t[::step], v[::step], lw=0.6)
    ax.set_xlabel("test time / s")
    ax.set_ylabel("cell voltage / V")
    ax.set_title("Cell voltages as the BMS reported them")
    figs["cell_voltages"] = fig
    fig = agg_figure(9, 3)
    ax = fig.subplots()
    for _, dec in parts:
        if smap.has("balancing"):
            for i in range(len(smap.refs("balancing"))):
                t, v = _role(smap, dec, "balancing", i)
                if len(t) and v.any():
                    ax.step(t, v * 0.8 + i, where="post", lw=0.8)
    ax.set_xlabel("test time / s")
    ax.set_ylabel("cell (balancing on)")
    ax.set_title("Balancing switches")
    figs["balancing"] = fig
    fig = agg_figure(9, 3.5)
    ax = fig.subplots()
    faults = [r for r in smap.scalar if r.startswith("fault_")]
    for _, dec in parts:
        for j, role in enumerate(faults):
            t, v = _role(smap, dec, role)
            if len(t) and v.any():
                ax.step(t, v * 0.8 + j, where="post", lw=0.8)
        t, v = _role(smap, dec, "contactor_closed")
        if len(t):
            ax.step(t, v * 0.8 - 1.2, where="post", color="k", lw=0.8)
    ax.set_yticks([-1.2 + 0.4] + [j + 0.4 for j in range(len(faults))],
                  ["contactors closed"] + [f.removeprefix("fault_") for f in faults], fontsize=7)
    ax.set_xlabel("test time / s")
    ax.set_title("Fault flags (trips) and contactor state")
    figs["trips"] = fig
    return figs


def _limit_figure(run_dir: Path) -> Any | None:
    """Reported current limits (markers) against the spec (lines) over temperature."""
    from labctl.store.run import open_run

    run = open_run(run_dir)
    if "bms_current_limit" not in run.record_tables():
        return None
    from labctl.report.figures import agg_figure

    df = run.records("bms_current_limit")
    fig = agg_figure(10, 3.8)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, direction in zip(axes, ("charge", "discharge"), strict=True):
        part = df[df.direction == direction]
        for k, (soc, g) in enumerate(part.groupby(part.soc_bms.round(2))):
            g = g.sort_values("temperature_c")
            ax.plot(g.temperature_c, g.spec_a, "-", color=f"C{k}", lw=0.8)
            ax.plot(g.temperature_c, g.limit_a, "o", color=f"C{k}", ms=4,
                    label=f"SoC {soc:.0%}")
        ax.set_title(f"allowed {direction} current")
        ax.set_xlabel("temperature / degC")
        if len(part):
            ax.legend(fontsize=7)
    axes[0].set_ylabel("current / A (markers: BMS, lines: spec)")
    return fig


def _markdown(checks: pd.DataFrame, summary: dict) -> str:
    lines = [f"# BMS validation report: {summary['verdict'].upper()}", "",
             f"{summary['passed']} pass, {summary['failed']} fail, {summary['info']} for information.",
             "", "| step | check | value | unit | low | high | verdict |",
             "| --- | --- | --- | --- | --- | --- | --- |"]

    def f(x: Any) -> str:
        return "" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.6g}"

    for r in checks.itertuples():
        lines.append(f"| {getattr(r, 'step', '')} | {r.name} | {f(r.value)} | {r.unit} | {f(r.low)} | "
                     f"{f(r.high)} | {r.verdict} |")
    lines += ["", "![cell voltages](cell_voltages.png)", "![balancing](balancing.png)",
              "![trips](trips.png)", ""]
    if any(str(n).startswith("current_limit.") for n in checks["name"]):
        lines.insert(-1, "![current limits](current_limits.png)")
    return "\n".join(lines)


def analyze_run(run_dir: str | Path, figures: bool = True) -> dict[str, Any]:
    """Build and store the report; returns the summary."""
    from labctl.store.analysis import save_analysis

    run_dir = Path(run_dir)
    checks = _checks(run_dir)
    for c in ("value", "low", "high"):
        checks[c] = pd.to_numeric(checks[c], errors="coerce")
    verdicts = checks["verdict"].astype(str)
    summary = {"checks": int(len(checks)), "passed": int((verdicts == "pass").sum()),
               "failed": int((verdicts == "fail").sum()), "info": int((verdicts == "info").sum())}
    summary["verdict"] = "fail" if summary["failed"] else "pass"
    summary["failed_checks"] = checks.loc[verdicts == "fail", "name"].astype(str).tolist()
    figs = {}
    if figures:
        sig = _signals(run_dir)
        if sig is not None:
            figs = _figures(*sig)
        limits = _limit_figure(run_dir)
        if limits is not None:
            figs["current_limits"] = limits
    save_analysis(run_dir, NAME, tables={"checks": checks}, csv={"checks": checks},
                  summary=summary, figures=figs, files={"report.md": _markdown(checks, summary)})
    return summary
