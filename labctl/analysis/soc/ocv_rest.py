"""SoC from the OCV table, read only when the cell has rested long enough."""

from __future__ import annotations

import numpy as np
import pandas as pd

from labctl.cells.spec import CellModel, Table
from labctl.errors import LabctlError


def inverse_ocv(ocv: Table | CellModel | pd.DataFrame, temperature_c: float | None = None,
                n_points: int = 2001) -> tuple[np.ndarray, np.ndarray]:
    """(voltage, soc) grid to interpolate SoC from a voltage.

    The OCV is made strictly increasing first (running maximum plus a nano-volt
    ramp): np.interp needs increasing x, and a flat stretch has no better answer.
    """
    if isinstance(ocv, CellModel):
        temperature_c = ocv.reference_temperature_c if temperature_c is None else temperature_c
        ocv = ocv.ocv_v
    if isinstance(ocv, pd.DataFrame):
        if not {"soc", "ocv_v"} <= set(ocv.columns) or len(ocv) < 2:
            raise LabctlError("OCV table: expected columns soc and ocv_v with two or more rows")
        d = ocv.sort_values("soc")
        ocv = Table(d["soc"].to_numpy(float), d["ocv_v"].to_numpy(float))
    soc = np.linspace(0.0, 1.0, n_points)
    v = np.asarray(ocv(soc, 25.0 if temperature_c is None else temperature_c), dtype=float)
    v = np.maximum.accumulate(v) + 1e-9 * np.arange(n_points)
    return v, soc


def ocv_rest_soc(time_s, current_a, voltage_v, ocv: Table | CellModel | pd.DataFrame, *,
                 min_rest_s: float = 1800.0, rest_current_a: float = 0.01,
                 temperature_c: float | None = None) -> np.ndarray:
    """SoC from the OCV wherever the cell has rested >= `min_rest_s`, NaN elsewhere.

    Rest: |current| <= `rest_current_a`. A rest counts from the end of the last
    interval with current (zero-order hold: sample k's current flows until k+1);
    a series that starts at rest counts from its first sample. Shapes: (n_steps,)
    or (n_steps, n_cells), like `voltage_v`.
    """
    t = np.asarray(time_s, dtype=float)
    v = np.asarray(voltage_v, dtype=float)
    i = np.asarray(current_a, dtype=float)
    if t.ndim != 1 or len(t) == 0 or v.shape[0] != len(t) or i.shape[0] != len(t):
        raise LabctlError("ocv_rest_soc: time_s, current_a and voltage_v need the same length")
    v2 = v.reshape(len(t), -1)
    i2 = np.broadcast_to(i.reshape(len(t), -1), v2.shape)
    active = np.abs(i2) > rest_current_a
    # Time the current last stopped: the sample after the last active one.
    t_next = np.append(t[1:], t[-1])[:, None]
    stopped = np.where(active, t_next, -np.inf)
    stopped = np.maximum.accumulate(stopped, axis=0)
    stopped = np.where(np.isfinite(stopped), stopped, t[0])
    rested = (~active) & (t[:, None] - stopped >= min_rest_s)
    v_grid, soc_grid = inverse_ocv(ocv, temperature_c)
    out = np.where(rested, np.interp(v2, v_grid, soc_grid), np.nan)
    return out.reshape(v.shape)
