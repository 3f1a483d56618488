"""sim-pybamm against PyBaMM itself (needs PyBaMM: pip install -e '.[pybamm]').

Independent truth: PyBaMM's own Experiment run of the same step, and the R0 values of
the Thevenin parameter set (ECM_Example), read from PyBaMM's parameter set.
"""

from __future__ import annotations

import numpy as np
import pytest

pybamm = pytest.importorskip("pybamm", reason="PyBaMM is optional: pip install -e '.[pybamm]'")

import labctl  # noqa: E402
from labctl.engine.session import prepare, start_run  # noqa: E402
from tests.pybamm.conftest import CHEN_CELL, ECM_CELL, write_procedure, write_station  # noqa: E402
from tests.support import REPO  # noqa: E402


def run(proc, station, cell, results, **params: str):
    prep = prepare(proc, station_path=station, cell_ref=str(cell), params=params)
    out = start_run(prep, results_root=results)
    assert out.status == "completed", out.reason
    return labctl.open_run(out.path)


def pybamm_reference(model, values, initial_soc: float | None, steps: list[str]):
    """PyBaMM's own Experiment run of the steps (1 s output)."""
    experiment = pybamm.Experiment(steps, period="1 second")
    sim = pybamm.Simulation(model, parameter_values=values, experiment=experiment)
    return sim.solve() if initial_soc is None else sim.solve(initial_soc=initial_soc)


@pytest.mark.parametrize("model", ["thevenin", "spme"])
def test_cc_discharge_matches_pybamm_experiment(tmp_path, model):
    if model == "thevenin":
        cell, pset, soc, amps, cutoff = ECM_CELL, "ECM_Example", 0.9, 100.0, 3.3
        pb_model = pybamm.equivalent_circuit.Thevenin()
        values = pybamm.ParameterValues(pset)
        values["Initial SoC"] = soc
        ref_soc = None
    else:
        cell, pset, soc, amps, cutoff = CHEN_CELL, "Chen2020", 0.9, 5.0, 3.0
        pb_model = pybamm.lithium_ion.SPMe(options={"thermal": "lumped",
                                                    "calculate discharge energy": "true"})
        values = pybamm.ParameterValues(pset)
        ref_soc = soc
    station = write_station(tmp_path, model=model, parameter_set=pset, initial_soc=soc)
    proc = write_procedure(tmp_path, "cc", [f"Discharge at {amps:g} A until {cutoff} V"])
    r = run(proc, station, cell, tmp_path / "results")
    ref = pybamm_reference(pb_model, values, ref_soc,
                           [f"Discharge at {amps:g} A until {cutoff} V"])
    ts = r.timeseries
    t = ts["test_time_s"].to_numpy() - ts["test_time_s"].iloc[0]
    t_ref = ref["Time [s]"].entries - ref["Time [s]"].entries[0]
    v_ref = ref["Voltage [V]"].entries
    # Capacity: the charge moved to the cut-off.
    q = r.steps["discharge_capacity_ah"].iloc[0]
    q_ref = amps * t_ref[-1] / 3600.0
    assert abs(q / q_ref - 1) < 0.005, (q, q_ref)
    assert r.steps["end_kind"].iloc[0] == "condition"
    assert abs(ts["voltage_v"].iloc[-1] - cutoff) < 1e-3
    # Voltage at every logged instant (the reference interpolated; both 1 s grids).
    inside = t <= t_ref[-1]
    err = np.abs(ts["voltage_v"].to_numpy()[inside] - np.interp(t[inside], t_ref, v_ref))
    assert err.max() < 1e-3, err.max()


@pytest.mark.parametrize("model", ["thevenin", "spme"])
def test_cc_cv_charge_ends_at_the_current_cutoff(tmp_path, model):
    if model == "thevenin":
        cell, pset, vmax, cap = ECM_CELL, "ECM_Example", 4.1, 100.0
    else:
        cell, pset, vmax, cap = CHEN_CELL, "Chen2020", 4.2, 5.0
    station = write_station(tmp_path, model=model, parameter_set=pset, initial_soc=0.5)
    proc = write_procedure(tmp_path, "cccv", [f"Charge at 1C until {vmax} V",
                                              f"Hold at {vmax} V until C/20"])
    r = run(proc, station, cell, tmp_path / "results")
    steps = r.steps
    assert list(steps["end_kind"]) == ["condition", "condition"]
    hold = steps.iloc[1]
    assert abs(hold["end_current_a"] - cap / 20) < 1e-3 * cap / 20
    ts = r.timeseries
    held = ts[ts["step_index"] == hold["step_index"]]
    assert np.abs(held["voltage_v"] - vmax).max() < 1e-3
    assert held["current_a"].iloc[-1] == pytest.approx(cap / 20, rel=1e-3)
    assert (held["current_a"].diff().dropna() <= 1e-6).all()  # decays under the hold


def _thevenin_r0_truth(values, temperature_c: float, pybamm_current_a: float, soc: float):
    """R0 of ECM_Example at this temperature (degC), PyBaMM current (+ discharge) and SoC."""
    r0 = values["R0 [Ohm]"](pybamm.Scalar(temperature_c), pybamm.Scalar(pybamm_current_a),
                            pybamm.Scalar(soc))
    return float(np.asarray(r0.evaluate()).reshape(-1)[0])


def test_hppc_on_thevenin_recovers_the_parameter_set_r0(tmp_path):
    from labctl.analysis.characterization import analyze_hppc

    initial_soc = 0.5
    station = write_station(tmp_path, model="thevenin", parameter_set="ECM_Example",
                            initial_soc=initial_soc)
    r = run(REPO / "procedures" / "hppc.yaml", station, ECM_CELL, tmp_path / "results",
            n_setpoints="3", rest_min="25", relax_min="5")
    analyze_hppc(r.path, plots=False)
    pulses = labctl.open_run(r.path).analysis("hppc")["pulses"]
    assert len(pulses) == 6 and pulses["fit_success"].all()
    # PyBaMM's SoC at each pulse: the initial SoC plus the charge moved before it (the
    # Thevenin model's SoC integrates the current over its 100 Ah capacity).
    steps = r.steps
    net = (steps["charge_capacity_ah"] - steps["discharge_capacity_ah"]).cumsum()
    before = dict(zip(steps["step_index"], net.shift(fill_value=0.0), strict=True))
    values = pybamm.ParameterValues("ECM_Example")
    capacity = float(values["Cell capacity [A.h]"])
    errors = []
    for p in pulses.itertuples():
        soc = initial_soc + before[p.step_index] / capacity
        truth = _thevenin_r0_truth(values, p.temperature_c, -p.current_a, soc)
        errors.append(p.r0_ohm / truth - 1)
    errors = np.array(errors)
    assert np.abs(errors).max() < 0.03, errors
