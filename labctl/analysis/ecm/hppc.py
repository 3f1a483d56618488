"""HPPC: R0, RC pairs and DCIR per pulse, and ECM tables vs SoC and temperature.

A pulse is a charge or discharge segment between `min_pulse_s` and
`max_pulse_s` long that follows a rest (the SoC-changing discharges between
set-points are longer and are skipped). Per pulse:

- R0 = dV/dI at the pulse start (and, separately, at its end), each side of the
  edge taken from a line through the samples near it, extrapolated to the edge:
  a single sample after the edge would already carry some RC rise. On the
  current side the line spans `edge_window_s` (at least 3 samples), short against
  tau; on the rest side, where the voltage only creeps, `rest_window_s`, which
  averages more noise away. `r0_fit_ohm` is R0 from the RC fit (all samples).
- RC pairs (`pulse.fit_rc`) fitted to the window: `pre_s` of the rest before,
  the pulse, and up to `relax_s` of the rest after. The RC states at the window
  start come from the current since the last rest of at least `relaxed_rest_s`
  (so an HPPC charge pulse carries the tail of the discharge pulse before it);
  without such a rest they are fitted.
- DCIR(t) = (V(t_e + t) - V_pre) / I for each t in `dcir_times_s` the pulse
  lasts (V at the pulse's end: the line through its last samples, before the
  current steps off).
- SoC at the pulse start by coulomb counting; temperature = median measured
  cell temperature over the pulse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from labctl.analysis.ecm.cell_model import table_from_long
from labctl.analysis.ecm.pulse import fit_rc
from labctl.analysis.ecm.segments import (
    CHARGE,
    DISCHARGE,
    REST,
    cluster_values,
    coulomb_soc,
    edge_value,
    load_samples,
    require_columns,
    segment_temperature,
    split_segments,
)
from labctl.cells.spec import Table
from labctl.errors import LabctlError


def _rc_columns(n_rc: int) -> list[str]:
    return [c for j in range(1, n_rc + 1) for c in (f"r{j}_ohm", f"tau{j}_s")]


def _dcir_column(t: float) -> str:
    return f"dcir_{t:g}s_ohm"


@dataclass(frozen=True)
class HppcResult:
    pulses: pd.DataFrame  # one row per pulse
    capacity_ah: float  # the capacity SoC was counted against
    n_rc: int


def hppc(timeseries: pd.DataFrame, *, capacity_ah: float | None = None,
         initial_soc: float | None = None, n_rc: int = 1, min_pulse_s: float = 0.5,
         max_pulse_s: float = 60.0, pre_s: float = 10.0, relax_s: float = 300.0,
         edge_window_s: float = 2.0, rest_window_s: float = 10.0, dcir_times_s: tuple[float, ...] = (1.0, 10.0, 30.0),
         ocv: Table | pd.DataFrame | None = None, ocv_rest_s: float = 300.0, relaxed_rest_s: float = 600.0,
         default_temperature_c: float = 25.0,
         rest_current_a: float | None = None, slow_slope: bool = False) -> HppcResult:
    """Per-pulse R0, RC pairs and DCIR of an HPPC run (see the module docstring).

    `ocv`: the OCV vs SoC, a Table or a (soc, ocv_v) DataFrame such as the
    pseudo-OCV table. The RC fit subtracts the OCV
    change during the pulse; left out, it uses an OCV curve from the run's own
    rests of at least `ocv_rest_s` (and fits the OCV slope if there are too few).
    A measured OCV table gives the steadiest R1/tau1 when relaxations are short.
    `slow_slope`: also fit a term proportional to the charge moved when the OCV is
    given; it takes up RC pairs much slower than the fit window (a diffusion pair of
    tau ~ 1000 s adds R2 I t / tau2 during a 10 s pulse), which a one-pair fit would
    otherwise fold into R1 and tau1 (about +10 % on the preset cells).
    """
    if n_rc not in (1, 2):
        raise LabctlError(f"HPPC: n_rc must be 1 or 2, got {n_rc}")
    s = load_samples(timeseries, "HPPC timeseries")
    soc, cap = coulomb_soc(s.time_s, s.current_a, capacity_ah, initial_soc)
    segs = split_segments(s, rest_current_a)
    if isinstance(ocv, pd.DataFrame):
        ocv = table_from_long(ocv, "ocv_v", soc_gap=0.0)
    if ocv is None:
        ocv = _ocv_from_rests(timeseries, cap, soc[0], ocv_rest_s, rest_current_a)
    rows = []
    for k, seg in enumerate(segs):
        if seg.kind == REST or k == 0 or segs[k - 1].kind != REST:
            continue
        if not min_pulse_s <= seg.duration_s <= max_pulse_s or seg.stop - seg.start < 3:
            continue
        before = segs[k - 1]
        after = segs[k + 1] if k + 1 < len(segs) else None
        relaxed = next((r for r in reversed(segs[:k]) if r.kind == REST
                        and r.duration_s >= relaxed_rest_s), None)
        rows.append(_analyse_pulse(s, soc, cap, seg, before, after, relaxed, n_rc, pre_s, relax_s,
                                   edge_window_s, rest_window_s, dcir_times_s, ocv, default_temperature_c,
                                   slow_slope)
                    | {"pulse_index": len(rows)})
    if not rows:
        raise LabctlError(f"HPPC: no pulse found: expected charge or discharge segments "
                          f"{min_pulse_s:g}..{max_pulse_s:g} s long, each after a rest")
    cols = (["pulse_index", "step_index", "direction", "start_time_s", "duration_s", "current_a",
             "soc", "temperature_c", "ocv_v", "r0_ohm", "r0_end_ohm", "r0_fit_ohm"] + _rc_columns(n_rc)
            + ["ocv_slope_v_per_ah"] + [_dcir_column(t) for t in dcir_times_s]
            + ["fit_rmse_v", "relax_s", "fit_success"])
    return HppcResult(pd.DataFrame(rows)[cols], cap, n_rc)


def _analyse_pulse(s, soc, cap, seg, before, after, relaxed, n_rc, pre_s, relax_s, edge_window_s,
                   rest_window_s, dcir_times_s, ocv, default_temperature_c, slow_slope=False) -> dict:
    t, v, i = s.time_s, s.voltage_v, s.current_a
    p = slice(seg.start, seg.stop)
    b = slice(before.start, before.stop)
    current = seg.mean_current_a
    v_pre = edge_value(t[b], v[b], seg.start_time_s, rest_window_s)
    v_on = edge_value(t[p], v[p], seg.start_time_s, edge_window_s)
    v_load_end = edge_value(t[p], v[p], seg.end_time_s, edge_window_s)
    r0 = (v_on - v_pre) / current
    r0_end = math.nan
    stop = seg.stop
    relax = 0.0
    if after is not None and after.kind == REST:
        a = slice(after.start, after.stop)
        r0_end = (edge_value(t[a], v[a], seg.end_time_s, rest_window_s) - v_load_end) / -current
        stop = int(np.searchsorted(t, seg.end_time_s + relax_s, side="right"))
        stop = min(max(stop, after.start + 1), after.stop)
        relax = float(t[stop - 1] - seg.end_time_s)
    start = max(int(np.searchsorted(t, seg.start_time_s - pre_s)), before.start)
    w = slice(start, stop)
    change = None
    if ocv is not None:
        change = ocv(soc[w]) - ocv(soc[seg.start])
    # History from the end of the last long rest (relaxed by then) to the window start.
    history = None
    if relaxed is not None:
        h0 = min(relaxed.stop - 1, start)
        history = (t[h0:start], i[h0:start])
    fit = fit_rc(t[w], v[w], i[w], seg.start_time_s, None, n_rc, ocv_change_v=change,
                 history=history, fit_slope=(change is None) or slow_slope)
    row = {
        "step_index": seg.step_index,
        "direction": CHARGE if current > 0 else DISCHARGE,
        "start_time_s": seg.start_time_s, "duration_s": seg.duration_s, "current_a": current,
        "soc": float(soc[seg.start]),
        "temperature_c": segment_temperature(s, seg, default_temperature_c),
        "ocv_v": v_pre, "r0_ohm": r0, "r0_end_ohm": r0_end, "r0_fit_ohm": fit.r0_ohm,
        "ocv_slope_v_per_ah": fit.ocv_slope_v_per_ah,
        "fit_rmse_v": fit.rmse_v, "relax_s": relax, "fit_success": fit.success,
    }
    for j in range(n_rc):
        row[f"r{j + 1}_ohm"] = fit.r_ohm[j]
        row[f"tau{j + 1}_s"] = fit.tau_s[j]
    tol = 1e-6 * max(1.0, seg.duration_s)
    for at in dcir_times_s:
        if at > seg.duration_s + tol:
            val = math.nan
        elif at >= seg.duration_s - tol:
            val = (v_load_end - v_pre) / current
        else:
            val = (float(np.interp(seg.start_time_s + at, t[p], v[p])) - v_pre) / current
        row[_dcir_column(at)] = val
    return row


def _ocv_from_rests(timeseries, capacity_ah, initial_soc, min_rest_s, rest_current_a
                    ) -> Table | None:
    """OCV vs SoC through the run's long rests, or None with fewer than two of them."""
    from labctl.analysis.ocv import ocv_curve, rest_ocv_points

    try:
        pts = rest_ocv_points(timeseries, capacity_ah=capacity_ah, initial_soc=initial_soc,
                              min_rest_s=min_rest_s, rest_current_a=rest_current_a)
        curve = ocv_curve(pts["soc"].to_numpy(), pts["ocv_v"].to_numpy(), grid_points=201)
    except LabctlError:
        return None
    return Table(curve["soc"].to_numpy(), curve["ocv_v"].to_numpy())


ECM_VALUE_COLUMNS = ("r0_ohm", "r0_end_ohm", "r1_ohm", "tau1_s", "r2_ohm", "tau2_s")


def ecm_table(pulses: pd.DataFrame, *, direction: str = "discharge", soc_gap: float = 0.02,
              temperature_gap_c: float = 2.0) -> pd.DataFrame:
    """Long table of per-set-point means: temperature_c, soc, parameters, n_pulses.

    Pulses are grouped into temperature set-points (sorted temperatures jumping by
    more than `temperature_gap_c` start a new one) and, within each, SoC set-points
    (gaps > `soc_gap`). `direction`: "discharge", "charge" or "both" (their mean).
    """
    require_columns(pulses, ("direction", "soc", "temperature_c", "r0_ohm"), "ECM table pulses")
    if direction not in ("discharge", "charge", "both"):
        raise LabctlError(f"ECM table: direction must be discharge, charge or both, got {direction!r}")
    sel = pulses if direction == "both" else pulses[pulses["direction"] == direction]
    if sel.empty:
        raise LabctlError(f"ECM table: no {direction} pulses")
    sel = sel.copy()
    sel["_t"] = cluster_values(sel["temperature_c"].to_numpy(), temperature_gap_c)
    value_cols = [c for c in sel.columns
                  if c in ECM_VALUE_COLUMNS or (c.startswith("dcir_") and c.endswith("_ohm"))]
    parts = []
    for _, grp in sel.groupby("_t", sort=True):
        grp = grp.copy()
        grp["_s"] = cluster_values(grp["soc"].to_numpy(), soc_gap)
        agg = grp.groupby("_s", sort=True).agg(
            temperature_c=("temperature_c", "mean"), soc=("soc", "mean"),
            n_pulses=("soc", "size"), **{c: (c, "mean") for c in value_cols})
        parts.append(agg)
    out = pd.concat(parts, ignore_index=True)
    return out[["temperature_c", "soc", *value_cols, "n_pulses"]]
