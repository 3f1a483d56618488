"""The plan on a station whose cell is a different model: the `sim-pybamm` station (PyBaMM's
Thevenin model of ECM_Example), planned with the labctl cell file that `labctl analyze hppc`
fitted from an HPPC run on that same station, against a real run there (within 5 %).

Needs PyBaMM (pip install -e '.[pybamm]'); skipped with that reason without it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pybamm = pytest.importorskip("pybamm", reason="PyBaMM is optional: pip install -e '.[pybamm]'")

import labctl  # noqa: E402
from labctl.engine.session import prepare, start_run  # noqa: E402
from labctl.plan import plan_prepared  # noqa: E402
from tests.plan.conftest import write  # noqa: E402
from tests.pybamm.conftest import ECM_CELL, write_station  # noqa: E402
from tests.support import REPO  # noqa: E402


def _run(proc, station, cell, results, **params: str):
    out = start_run(prepare(proc, station_path=station, cell_ref=str(cell), params=params),
                    results_root=results)
    assert out.status == "completed", out.reason
    return labctl.open_run(out.path)


def test_plan_with_a_fitted_cell_matches_a_pybamm_run(tmp_path):
    from labctl.analysis.characterization import analyze_hppc

    station = write_station(tmp_path, model="thevenin", parameter_set="ECM_Example",
                            initial_soc=0.5)
    hppc = _run(REPO / "procedures" / "hppc.yaml", station, ECM_CELL, tmp_path / "results",
                n_setpoints="9", rest_min="30", relax_min="5")
    _, summary = analyze_hppc(hppc.path, plots=False)
    fitted = Path(summary["cell_file"])
    # HPPC fits the electrical model only; the thermal line of the cell file is the loader's
    # default for an 18650 unless told. Take it from the parameter set instead: PyBaMM's cell
    # and jig (1000 + 500 J/K, 10 W/K cell-jig and jig-air) as one lumped node: their total
    # thermal mass and the two conductances in series.
    values = pybamm.ParameterValues("ECM_Example")
    mass = values["Cell thermal mass [J/K]"] + values["Jig thermal mass [J/K]"]
    conductance = 1.0 / (1.0 / values["Cell-jig heat transfer coefficient [W/K]"]
                         + 1.0 / values["Jig-air heat transfer coefficient [W/K]"])
    text = re.sub(r"thermal: \{[^}]*\}", f"thermal: {{heat_capacity_j_per_k: {mass}, "
                  f"heat_transfer_w_per_k: {conductance}}}", fitted.read_text())
    fitted.write_text(text)

    # A capacity check-up in amperes (both cell files give the same currents), from a
    # full charge: the cell's own behaviour decides every step's end.
    proc = write(tmp_path, "checkup", """
name: checkup
log: every 10 s
steps:
  - Charge at 50 A until 4.1 V
  - Hold at 4.1 V until 5 A
  - Rest for 30 minutes
  - Discharge at 50 A until 3.2 V
  - Rest for 30 minutes
  - Charge at 100 A for 30 minutes
""")
    report = plan_prepared(prepare(proc, station_path=station, cell_ref=fitted))
    assert report.status == "completed", report.reason
    run = _run(proc, station, ECM_CELL, tmp_path / "results")
    steps, ts = run.steps, run.timeseries

    def within(planned: float, measured: float) -> None:
        assert abs(planned / measured - 1) < 0.05, (planned, measured)

    within(report.duration_s, float(steps["end_time_s"].max()))
    within(report.steps[3]["discharge_capacity_ah"], float(steps["discharge_capacity_ah"].iloc[3]))
    within(report.steps[3]["duration_s"], float(steps["duration_s"].iloc[3]))
    within(report.max_temperature_c, float(ts["temperature_c"].max()))
