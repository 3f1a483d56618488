"""Cycling analyses: per-cycle table, capacity retention and its fit, RPT/DCIR,
rate capability, incremental capacity dQ/dV and differential voltage dV/dQ.

Everything here is a function of a run's stored tables (timeseries, steps) or of
plain arrays, so it runs on vendor data brought into the same tables too.
`runs.py` stores results with a run; `command.py` is `labctl analyze cycling|rate|dqdv`.
"""

from labctl.analysis.cycling.dqdv import differential_voltage, find_peaks_v, incremental_capacity
from labctl.analysis.cycling.percycle import cycle_table, dcir_pulses, rpt_table
from labctl.analysis.cycling.rate import rate_table
from labctl.analysis.cycling.retention import RetentionFit, fit_retention

__all__ = ["RetentionFit", "cycle_table", "dcir_pulses", "differential_voltage", "find_peaks_v",
           "fit_retention", "incremental_capacity", "rate_table", "rpt_table"]
