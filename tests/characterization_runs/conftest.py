"""Runs shared by the characterization tests: simulated on the default bench, once per session.

Truth for the accuracy tests is the preset cell file (fixtures/cells/nmc-1p95ah.yaml),
read with the cell loader: the simulator runs exactly that model.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.cells import load_cell
from labctl.engine.session import prepare, start_run
from tests.support import REPO

PROCEDURES = REPO / "procedures"
STATION = REPO / "instruments" / "sim.yaml"
# 30 s pulses with 2 min between them: long against tau1 (25 s for the NMC preset), so
# R1 and tau1 separate within the noise of the default bench (0.2 mV).
HPPC_PARAMS = {"pulse_s": "30", "pulse_rest_s": "120", "n_setpoints": "4", "step_min": "12",
               "rest_min": "40"}


def run_procedure(name: str, results: Path, cell: str | Path = "nmc-1p95ah",
                  **params: str) -> Path:
    proc = PROCEDURES / name if not Path(name).is_absolute() else Path(name)
    prep = prepare(proc, station_path=STATION, cell_ref=str(cell), params=params)
    out = start_run(prep, results_root=results)
    assert out.status == "completed", out.reason
    return out.path


@pytest.fixture(scope="session")
def results_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("char-results")


@pytest.fixture(scope="session")
def nmc():
    return load_cell("nmc-1p95ah")


@pytest.fixture(scope="session")
def hppc_run(results_root) -> Path:
    """HPPC of the NMC preset, analysed (analysis/hppc/ with cell.yaml)."""
    from labctl.analysis.characterization import analyze_hppc

    path = run_procedure("hppc.yaml", results_root, **HPPC_PARAMS)
    analyze_hppc(path, plots=False)
    return path


@pytest.fixture(scope="session")
def drive_run(results_root) -> Path:
    """The DST-style drive cycle on the NMC preset, 20 playbacks, logged every 5 s."""
    return run_procedure("drive-cycle.yaml", results_root, repeat="20", profile_log_s="5")
