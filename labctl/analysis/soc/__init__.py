"""State-of-charge estimators, vectorised over many cells, and how to score them.

- `coulomb_count`: integrate the current (optionally with an injected offset/noise);
- `ocv_rest_soc`: read the OCV table after a long enough rest;
- `ExtendedKalmanFilter`, `UnscentedKalmanFilter`: on the cell's OCV + R0 + RC model
  (a `CellModel`), state arrays (n_cells, n_states), `run_filter` over a series;
- `evaluate`, `plot_soc`.

See docs/soc.md.
"""

from labctl.analysis.soc.coulomb import coulomb_count
from labctl.analysis.soc.evaluate import evaluate, plot_soc
from labctl.analysis.soc.filters import ExtendedKalmanFilter, FilterSettings, UnscentedKalmanFilter
from labctl.analysis.soc.lookup import EcmGrid
from labctl.analysis.soc.ocv_rest import inverse_ocv, ocv_rest_soc
from labctl.analysis.soc.run import run_filter

__all__ = ["EcmGrid", "ExtendedKalmanFilter", "FilterSettings", "UnscentedKalmanFilter",
           "coulomb_count", "evaluate", "inverse_ocv", "ocv_rest_soc", "plot_soc", "run_filter"]
