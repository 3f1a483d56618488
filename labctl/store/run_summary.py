"""A run's summary (`summarize`): status, counts, duration and the last complete cycle's
capacities, energies and efficiencies, from its steps and cycles tables.

numpy only (no pandas, no pyarrow): `labctl run` summarizes the columns it has just built.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

_SUMMARY_KEYS = ("cycle_index", "charge_capacity_ah", "discharge_capacity_ah", "charge_energy_wh",
                 "discharge_energy_wh", "coulombic_efficiency", "energy_efficiency")


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _columns(table: Any) -> Mapping[str, Any]:
    """A DataFrame or a mapping of column arrays, as a mapping of numpy arrays."""
    if hasattr(table, "columns") and hasattr(table, "to_numpy"):
        return {c: table[c].to_numpy() for c in table.columns}
    return table if table is not None else {}


# A step moved charge when its counter grew by more than this (rest noise is far below).
_MOVED_AH = 1e-6
# A cycle returns to where it started when its last leg ends within this of the voltage
# the leg before the cycle ended at (same cut-off, read the same way).
_SAME_END_V = 0.05


def _legs(steps: Mapping[str, Any]) -> list[tuple[int, int, str, float]]:
    """(cycle, direction +1 charge / -1 discharge, end_kind, end voltage) of every step that
    moved charge, in order."""
    out = []
    for cycle, ch, dis, kind, end_v in zip(steps["cycle_index"], steps["charge_capacity_ah"],
                                           steps["discharge_capacity_ah"], steps["end_kind"],
                                           steps["end_voltage_v"], strict=True):
        ch, dis = float(ch or 0.0), float(dis or 0.0)
        if max(ch, dis) <= _MOVED_AH:
            continue
        out.append((int(cycle), 1 if ch >= dis else -1, str(kind),
                    math.nan if end_v is None else float(end_v)))
    return out


def complete_cycles(steps: Any) -> list[int]:
    """Cycles whose efficiencies mean something: the cell went through a whole charge and a
    whole discharge and came back to where it started.

    A cycle is complete when it both charged and discharged, every step of it ended
    normally (on its condition or its time; none interrupted, none stopped by a limit),
    and its last charge-moving leg ends at the state the leg before the cycle ended at
    (same direction, same end voltage within 50 mV). A charge that starts
    from wherever the cell happened to be (a simulated cell half full, a fresh cell) is not
    a complete cycle: its coulombic efficiency would be ~200 %.

    `steps` is a DataFrame or a mapping of column arrays.
    """
    steps = _columns(steps)
    if "cycle_index" not in steps or not len(steps["cycle_index"]):
        return []
    bad = {int(c) for c, kind in zip(steps["cycle_index"], steps["end_kind"], strict=True)
           if str(kind) not in ("condition", "time")}
    legs = _legs(steps)
    by_cycle: dict[int, list[int]] = {}  # one pass: a scan per cycle was quadratic
    for k, leg in enumerate(legs):
        by_cycle.setdefault(leg[0], []).append(k)
    complete = []
    for cycle in sorted(by_cycle):
        idx = by_cycle[cycle]
        if cycle in bad or idx[0] == 0:
            continue
        mine = [legs[k] for k in idx]
        if {leg[1] for leg in mine} != {1, -1}:
            continue
        before, last = legs[idx[0] - 1], mine[-1]
        if (before[1] == last[1] and {before[2], last[2]} <= {"condition", "time"}
                and abs(before[3] - last[3]) <= _SAME_END_V):
            complete.append(cycle)
    return complete


def summarize(meta: dict, steps: Any, cycles: Any, n_samples: int) -> dict[str, Any]:
    """Status, counts, duration, and the numbers of the last complete cycle.

    `steps` and `cycles` are DataFrames or mappings of column arrays (what finalize
    returns, so `labctl run` needs no pandas). Efficiencies come only from a complete
    charge/discharge cycle (`complete_cycles`); without one, the last cycle's capacities
    and energies are reported, the efficiencies are None and `efficiency_note` says why.
    NaN becomes None.
    """
    import numpy as np

    steps, cycles = _columns(steps), _columns(cycles)
    out: dict[str, Any] = {"status": meta.get("status"), "reason": meta.get("reason")}
    n_cycles = len(cycles["cycle_index"]) if "cycle_index" in cycles else 0
    if n_cycles:
        complete = set(complete_cycles(steps))
        full = [k for k, c in enumerate(cycles["cycle_index"]) if int(c) in complete]
        row = full[-1] if full else n_cycles - 1
        for key in _SUMMARY_KEYS:
            value = cycles[key][row]
            # A null in Parquet (NaN written by pandas) comes back as None through pyarrow.
            out[key] = int(value) if key == "cycle_index" else (
                math.nan if value is None else float(value))
        out["complete_cycles"] = len(full)
        if not full:
            out["coulombic_efficiency"] = out["energy_efficiency"] = None
            out["efficiency_note"] = ("efficiencies: none (no complete charge/discharge "
                                      "cycle from and back to the same cut-off)")
    out["n_samples"] = int(n_samples)
    n_steps = len(steps["step_index"]) if "step_index" in steps else 0
    out["n_steps"] = int(n_steps)
    out["n_cycles"] = int(n_cycles)
    ends = np.asarray(steps["end_time_s"], dtype=np.float64) if n_steps else np.empty(0)
    ends = ends[~np.isnan(ends)]
    out["duration_s"] = float(ends.max()) if len(ends) else 0.0
    return {k: _clean(v) for k, v in out.items()}
