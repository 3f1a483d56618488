"""Characterization analyses of stored runs: OCV, GITT, HPPC -> cell file, SoC estimators.

Each `analyze_*(run_dir, ...)` reads a run (`labctl.open_run`), picks the steps it
needs by the contract in docs/characterization.md, runs the cores in
`labctl.analysis.ocv`, `.gitt`, `.ecm` and `.soc`, and stores tables, CSVs,
summary.json and PNG plots in RUN/analysis/<name>/. `labctl analyze
ocv|gitt|hppc|soc` are the commands (`command.py`).
"""

from labctl.analysis.characterization.gitt_run import analyze_gitt
from labctl.analysis.characterization.hppc_run import analyze_hppc
from labctl.analysis.characterization.ocv_run import analyze_ocv
from labctl.analysis.characterization.soc_run import analyze_soc

__all__ = ["analyze_gitt", "analyze_hppc", "analyze_ocv", "analyze_soc"]
