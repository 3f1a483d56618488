"""Without PyBaMM, a station using sim-pybamm fails with a message saying how to install it.

Runs everywhere: PyBaMM is hidden from the import system for the test, so the check
holds also where PyBaMM is installed.
"""

from __future__ import annotations

import sys

import pytest

from labctl.cells import load_cell
from labctl.errors import LabctlError
from labctl.stations.build import open_station
from labctl.stations.load import load_station
from tests.pybamm.conftest import ECM_CELL, write_station


def test_station_with_sim_pybamm_says_how_to_install_pybamm(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pybamm", None)  # `import pybamm` raises ImportError
    spec = load_station(write_station(tmp_path, model="thevenin"))  # validates without PyBaMM
    assert spec.instruments["cycler"].driver == "sim-pybamm"
    with pytest.raises(LabctlError) as err:
        open_station(spec, load_cell(ECM_CELL))
    assert "sim-pybamm needs PyBaMM: pip install -e '.[pybamm]'" in str(err.value)


def test_plugin_module_imports_without_pybamm(monkeypatch):
    monkeypatch.setitem(sys.modules, "pybamm", None)
    monkeypatch.delitem(sys.modules, "labctl.builtins.pybamm_sim", raising=False)
    monkeypatch.delitem(sys.modules, "labctl.drivers.sim_pybamm", raising=False)
    import importlib

    module = importlib.import_module("labctl.builtins.pybamm_sim")
    names = [d.name for d in module.labctl_drivers()]
    assert names == ["sim-pybamm"]
