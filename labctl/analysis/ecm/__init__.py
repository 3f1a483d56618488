"""Equivalent-circuit characterisation: HPPC pulses, RC fits, Arrhenius, CellModel building.

`segments` (cutting runs into rests and pulses, coulomb-counted SoC) is shared
with `labctl.analysis.ocv` and `labctl.analysis.gitt`.
"""

from labctl.analysis.ecm.arrhenius import ArrheniusFit, activation_energy, arrhenius_fit
from labctl.analysis.ecm.cell_model import (
    ecm_table_csv,
    ecm_tables_to_cell_model,
    table_from_long,
    write_long_csv,
)
from labctl.analysis.ecm.hppc import HppcResult, ecm_table, hppc
from labctl.analysis.ecm.pulse import RcFit, fit_rc

__all__ = ["ArrheniusFit", "HppcResult", "RcFit", "activation_energy", "arrhenius_fit",
           "ecm_table", "ecm_table_csv", "ecm_tables_to_cell_model", "fit_rc", "hppc",
           "table_from_long", "write_long_csv"]
