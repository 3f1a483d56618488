"""HPPC end to end: procedures/hppc.yaml on the simulated NMC preset -> `analyze hppc` -> cell file.

Accuracy against the preset cell file (the model the simulator runs), and the round
trip: simulate the characterised cell file, characterise it again, compare.
"""

from __future__ import annotations

import numpy as np
import pytest

from labctl.analysis.characterization import analyze_hppc
from labctl.cells import load_cell
from labctl.store.run import open_run
from tests.characterization_runs.conftest import HPPC_PARAMS, run_procedure


def _mid(table):
    return table[(table.soc >= 0.15) & (table.soc <= 0.85)]


def test_hppc_recovers_the_preset_r0_r1_tau1(hppc_run, nmc):
    table = open_run(hppc_run).analysis("hppc")["ecm"]
    mid = _mid(table)
    assert len(mid) >= 3
    m = nmc.model
    for row in mid.itertuples():
        f = m.arrhenius_factor(row.temperature_c)  # the cell warms a little during pulses
        assert row.r0_ohm == pytest.approx(float(m.r0_ohm(row.soc)) * f, rel=0.02)
        assert row.r1_ohm == pytest.approx(float(m.rc_pairs[0].r_ohm(row.soc)) * f, rel=0.05)
        assert row.tau1_s == pytest.approx(float(m.rc_pairs[0].tau_s(row.soc)), rel=0.10)


def test_dcir_matches_the_closed_form_of_the_preset(hppc_run, nmc):
    """DCIR(t) of a discharge pulse = R0 + sum R_j (1 - exp(-t/tau_j)) + OCV change / I."""
    pulses = open_run(hppc_run).analysis("hppc")["pulses"]
    m = nmc.model
    dis = pulses[(pulses.direction == "discharge") & (pulses.soc > 0.15) & (pulses.soc < 0.85)]
    assert len(dis) >= 3
    for p in dis.itertuples():
        for t, got in ((1.0, p.dcir_1s_ohm), (10.0, p.dcir_10s_ohm), (30.0, p.dcir_30s_ohm)):
            dsoc = p.current_a * t / (3600.0 * nmc.capacity_ah)
            ocv_change = float(m.ocv_v(p.soc + dsoc) - m.ocv_v(p.soc))
            truth = (float(m.r0_ohm(p.soc))
                     + sum(float(rc.r_ohm(p.soc)) * -np.expm1(-t / float(rc.tau_s(p.soc)))
                           for rc in m.rc_pairs)
                     + ocv_change / p.current_a)
            assert got == pytest.approx(truth, rel=0.03), (p.soc, t)


def test_hppc_stores_tables_summary_and_a_loadable_cell_file(hppc_run, nmc):
    run = open_run(hppc_run)
    summary = run.analysis_summary("hppc")
    folder = hppc_run / "analysis" / "hppc"
    for name in ("cell.yaml", "ocv.csv", "ecm.csv", "ecm_table.csv", "pulses.csv"):
        assert (folder / name).is_file(), name
    cell = load_cell(folder / "cell.yaml")
    assert cell.limits == nmc.limits  # the tested cell's limits, never loosened
    # Capacity measured from full to the min voltage at 1C: a little below the rated one.
    assert 0.95 * nmc.capacity_ah < cell.capacity_ah < 1.01 * nmc.capacity_ah
    assert summary["n_pulses"] == 2 * int(HPPC_PARAMS["n_setpoints"])
    assert summary["cell_file"].endswith("cell.yaml")
    # The characterised OCV follows the preset between its set-points (rests only, 5 points).
    ocv = run.analysis("hppc")["ocv"]
    inner = ocv[(ocv.soc > 0.15) & (ocv.soc < 0.85)]
    assert np.max(np.abs(inner.ocv_v - nmc.model.ocv_v(inner.soc))) < 0.03


def test_round_trip_characterise_simulate_characterise(hppc_run, results_root):
    """The characterised cell file runs on the simulator and characterises to the same values."""
    first = open_run(hppc_run).analysis("hppc")["ecm"]
    cell_file = hppc_run / "analysis" / "hppc" / "cell.yaml"
    again = run_procedure("hppc.yaml", results_root, cell=cell_file, **HPPC_PARAMS)
    analyze_hppc(again, plots=False)
    second = open_run(again).analysis("hppc")["ecm"]
    a, b = _mid(first), second.sort_values("soc")
    assert len(a) >= 3 and len(b) == len(first)
    # The set-points move by ~1 % SoC: each round measures the capacity to the cut-off at
    # 1C, a little less than the model's. Compare at the first round's set-points.
    np.testing.assert_allclose(b.soc.to_numpy()[1:-1], first.sort_values("soc").soc[1:-1],
                               atol=0.03)
    for col, rtol in (("r0_ohm", 0.02), ("r1_ohm", 0.05), ("tau1_s", 0.10)):
        np.testing.assert_allclose(np.interp(a.soc, b.soc, b[col]), a[col], rtol=rtol,
                                   err_msg=col)


def test_activation_energy_from_three_chamber_temperatures(tmp_path, results_root, nmc):
    """HPPC inside chamber steps at 10, 25 and 40 °C: Ea of R0 = the preset's 0.30 eV."""
    (tmp_path / "hppc.yaml").write_text(
        (run_procedure.__globals__["PROCEDURES"] / "hppc.yaml").read_text())
    body = ["requires: [cycler, chamber]", "steps:"]
    for temp in (10, 25, 40):
        body += [f"  - chamber: {{setpoint_c: {temp}, tolerance_c: 0.5, stable_for: 10 min}}",
                 "  - include: hppc.yaml",
                 "    with: {n_setpoints: 2, step_min: 18, rest_min: 30, pulse_s: 30, "
                 "pulse_rest_s: 120}"]
    proc = tmp_path / "hppc-temperatures.yaml"
    proc.write_text("\n".join(body) + "\n")
    path = run_procedure(str(proc), results_root)
    _, summary = analyze_hppc(path, plots=False)
    assert summary["temperatures_c"] == pytest.approx([10, 25, 40], abs=1.0)
    assert summary["activation_energy_ev"] == pytest.approx(nmc.model.activation_energy_ev,
                                                            rel=0.05)
    # Several temperatures: the cell file carries SoC x temperature tables.
    cell = load_cell(path / "analysis" / "hppc" / "cell.yaml")
    assert cell.model.r0_ohm.depends_on_temperature
