"""Rate capability: what each constant-current discharge delivered, by C-rate.

A rate point is a discharge step longer than MIN_DISCHARGE_S that ended on a
voltage (its condition or the cell's limit), not on time or charge. Its C-rate
is |mean current| / nominal capacity; capacity and energy are the step's; the
mean voltage is energy / capacity. Retention is relative to the lowest rate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MIN_DISCHARGE_S = 60.0
RATE_COLUMNS = ["cycle_index", "step_index", "c_rate", "current_a", "discharge_capacity_ah",
                "discharge_energy_wh", "mean_voltage_v", "duration_s", "end_voltage_v",
                "max_temperature_c", "capacity_retention", "energy_retention"]


def rate_table(steps: pd.DataFrame, nominal_capacity_ah: float) -> pd.DataFrame:
    s = steps[(steps["kind"] == "discharge") & (steps["duration_s"] > MIN_DISCHARGE_S)
              & steps["end_kind"].isin(["condition", "limit"])
              & steps["end_reason"].astype(str).str.contains("V", regex=False)]
    if len(s) == 0:
        return pd.DataFrame(columns=RATE_COLUMNS)
    out = pd.DataFrame({
        "cycle_index": s["cycle_index"].astype(int),
        "step_index": s["step_index"].astype(int),
        "current_a": s["mean_current_a"].astype(float),
        "discharge_capacity_ah": s["discharge_capacity_ah"].astype(float),
        "discharge_energy_wh": s["discharge_energy_wh"].astype(float),
        "duration_s": s["duration_s"].astype(float),
        "end_voltage_v": s["end_voltage_v"].astype(float),
        "max_temperature_c": s["max_temperature_c"].astype(float),
    })
    out["c_rate"] = out["current_a"].abs() / float(nominal_capacity_ah)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["mean_voltage_v"] = out["discharge_energy_wh"] / out["discharge_capacity_ah"]
    out = out.sort_values(["c_rate", "step_index"]).reset_index(drop=True)
    out["capacity_retention"] = out["discharge_capacity_ah"] / out["discharge_capacity_ah"].iloc[0]
    out["energy_retention"] = out["discharge_energy_wh"] / out["discharge_energy_wh"].iloc[0]
    return out[RATE_COLUMNS]
