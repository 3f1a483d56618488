"""Characterization analyses of stored runs: OCV, GITT, HPPC -> cell file, SoC estimators.

Each `analyze_*(run_dir, ...)` reads a run (`labctl.open_run`), picks the steps it
needs by the contract in docs/characterization.md, runs the cores in
`labctl.analysis.ocv`, `.gitt`, `.ecm` and `.soc`, and stores tables, CSVs,
summary.json and PNG plots in RUN/analysis/<name>/. `labctl analyze
ocv|gitt|hppc|soc` are the commands (`command.py`).
"""

from labctl.lazy import lazy_names

# Names load from their modules on first use (labctl/lazy.py).
__getattr__, __dir__ = lazy_names(__name__, {
    "analyze_gitt": "labctl.analysis.characterization.gitt_run",
    "analyze_hppc": "labctl.analysis.characterization.hppc_run",
    "analyze_ocv": "labctl.analysis.characterization.ocv_run",
    "analyze_soc": "labctl.analysis.characterization.soc_run",
})

__all__ = ["analyze_gitt", "analyze_hppc", "analyze_ocv", "analyze_soc"]
