"""The constant-current charge or discharge of a cycle, as capacity and voltage arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd

from labctl.errors import LabctlError


def main_step(steps: pd.DataFrame, cycle: int, direction: str) -> pd.Series | None:
    """The cycle's `direction` ('charge' or 'discharge') step that moved the most charge
    (a CC step: a CV hold has kind 'hold' and is never chosen)."""
    column = f"{direction}_capacity_ah"
    s = steps[(steps["cycle_index"] == cycle) & (steps["kind"] == direction)]
    if len(s) == 0 or float(s[column].max()) <= 0:
        return None
    return s.loc[s[column].idxmax()]


def segment(ts: pd.DataFrame, step_index: int) -> tuple[np.ndarray, np.ndarray]:
    """(|charge moved| since the step's start in Ah, voltage) of the constant-current part
    of one step, trapezoid rule.

    Other cyclers record CC-CV as one step (Neware's "CCCV_Chg", Maccor's CC-CV): its CV
    tail moves charge at one voltage, an infinite dQ/dV that would read as a peak. The
    segment ends where |I| first falls 2 % below the step's largest |I| (a labctl CC step,
    whose current only carries noise, is kept whole)."""
    rows = ts[ts["step_index"] == step_index]
    i = rows["current_a"].to_numpy(float)
    if len(i):
        low = np.abs(i) < 0.98 * np.max(np.abs(i))
        reached = int(np.argmin(low))  # the first sample at the CC current
        later = np.flatnonzero(low[reached:])
        if len(later):
            rows = rows.iloc[:reached + int(later[0])]
            i = i[:len(rows)]
    t = rows["test_time_s"].to_numpy(float)
    q = np.zeros(len(t))
    if len(t) > 1:
        q[1:] = np.cumsum(0.5 * (i[1:] + i[:-1]) * np.diff(t)) / 3600.0
    return np.abs(q), rows["voltage_v"].to_numpy(float)


def pick_cycles(available: list[int], wanted: list[int] | None, how_many: int = 4) -> list[int]:
    """The cycles asked for (each must exist), or first, last and evenly spaced between."""
    if not available:
        raise LabctlError("the run has no cycle with a constant-current segment to analyse")
    if wanted:
        missing = [c for c in wanted if c not in available]
        if missing:
            raise LabctlError(f"--cycles: no usable cycle {', '.join(map(str, missing))}; the run "
                              f"has cycles {available[0]}..{available[-1]} "
                              f"({len(available)} with a full segment)")
        return list(dict.fromkeys(wanted))
    if len(available) <= how_many:
        return list(available)
    idx = np.linspace(0, len(available) - 1, how_many).round().astype(int)
    return [available[k] for k in dict.fromkeys(idx.tolist())]


def parse_cycles(text: str | None) -> list[int] | None:
    """'1,100,500' -> [1, 100, 500]; None or '' -> None."""
    if not text:
        return None
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = int(part)
        except ValueError:
            raise LabctlError(f"--cycles: {part!r} is not a cycle number; write e.g. "
                              "--cycles 1,100,500") from None
        if value < 1:
            raise LabctlError(f"--cycles: cycle numbers start at 1, got {value}")
        out.append(value)
    return out or None
