"""ECM tables -> CellModel, and the long CSV format read back by the cell-file loader."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest

from labctl.analysis.ecm import ecm_table_csv, ecm_tables_to_cell_model, table_from_long
from labctl.analysis.ocv import ocv_table_csv
from labctl.cells.load import load_cell
from labctl.cells.spec import ThermalModel
from labctl.errors import LabctlError

THERMAL = ThermalModel(heat_capacity_j_per_k=45.0, heat_transfer_w_per_k=0.06)
SOC = np.array([0.1, 0.3, 0.5, 0.7, 0.9])


def _ocv_df():
    grid = np.linspace(0, 1, 11)
    return pd.DataFrame({"soc": grid, "ocv_v": 3.4 + 0.7 * grid})


def _ecm_df(temps=(25.0,)):
    rows = []
    for t in temps:
        scale = 1.0 + (25.0 - t) / 50.0  # colder: higher resistance
        for s in SOC:
            rows.append({"temperature_c": t, "soc": s, "r0_ohm": scale * (0.03 + 0.01 * s),
                         "r1_ohm": scale * 0.015, "tau1_s": 20.0 + 10 * s,
                         "r2_ohm": scale * 0.02, "tau2_s": 500.0, "n_pulses": 2})
    return pd.DataFrame(rows)


def test_single_temperature_gives_soc_tables_with_arrhenius():
    m = ecm_tables_to_cell_model(_ocv_df(), _ecm_df(), THERMAL, activation_energy_ev=0.3)
    assert not m.r0_ohm.depends_on_temperature
    np.testing.assert_allclose(m.r0_ohm(SOC), 0.03 + 0.01 * SOC)
    assert m.r0_ohm(0.0) == pytest.approx(0.031)  # constant beyond the measured ends
    assert len(m.rc_pairs) == 2
    np.testing.assert_allclose(m.rc_pairs[0].tau_s(SOC), 20 + 10 * SOC)
    np.testing.assert_allclose(m.ocv_v(np.array([0.25])), 3.4 + 0.7 * 0.25)
    assert m.activation_energy_ev == 0.3 and m.reference_temperature_c == 25.0
    assert m.thermal == THERMAL
    assert len(ecm_tables_to_cell_model(_ocv_df(), _ecm_df(), THERMAL, n_rc=1).rc_pairs) == 1


def test_several_temperatures_give_soc_by_temperature_tables():
    ecm = _ecm_df((10.0, 25.0, 40.0))
    # Set-points are never exactly the same at each temperature.
    ecm.loc[ecm.temperature_c == 40.0, "soc"] += 0.002
    m = ecm_tables_to_cell_model(_ocv_df(), ecm, THERMAL)
    assert m.r0_ohm.depends_on_temperature
    np.testing.assert_allclose(m.r0_ohm.temperature_c, [10.0, 25.0, 40.0])
    assert len(m.r0_ohm.soc) == 5  # near-equal set-points merged
    assert m.r0_ohm(0.5, 10.0) == pytest.approx(1.3 * 0.035, rel=1e-3)
    assert m.r0_ohm(0.5, 17.5) == pytest.approx(0.5 * (1.3 + 1.0) * 0.035, rel=1e-3)


def test_negative_or_missing_values_are_dropped_or_refused():
    ecm = _ecm_df()
    ecm.loc[0, "r1_ohm"] = -0.01  # a failed fit
    m = ecm_tables_to_cell_model(_ocv_df(), ecm, THERMAL)
    assert np.all(m.rc_pairs[0].r_ohm.values > 0)
    ecm["r0_ohm"] = np.nan
    with pytest.raises(LabctlError, match="r0_ohm"):
        ecm_tables_to_cell_model(_ocv_df(), ecm, THERMAL)


def test_csv_tables_load_as_a_cell_file(tmp_path):
    ecm = _ecm_df((10.0, 25.0))
    ecm.loc[ecm.temperature_c == 10.0, "soc"] += 0.01  # different set-points per temperature
    ocv_table_csv(_ocv_df(), tmp_path / "ocv.csv")
    ecm_table_csv(ecm, tmp_path / "ecm.csv")
    header = (tmp_path / "ecm.csv").read_text().splitlines()[0]
    assert header == "temperature_c,soc,r0_ohm,r1_ohm,tau1_s,r2_ohm,tau2_s"
    (tmp_path / "cell.yaml").write_text(textwrap.dedent("""\
        name: characterised
        chemistry: NMC
        capacity_ah: 2.0
        nominal_voltage_v: 3.7
        limits: {max_voltage_v: 4.2, min_voltage_v: 2.75, max_charge_current_a: 2,
                 max_discharge_current_a: 4, max_temperature_c: 60, min_temperature_c: -20}
        model:
          ocv_v: {csv: ocv.csv, column: ocv_v}
          r0_ohm: {csv: ecm.csv, column: r0_ohm}
          rc_pairs:
            - {r_ohm: {csv: ecm.csv, column: r1_ohm}, tau_s: {csv: ecm.csv, column: tau1_s}}
        """))
    model = load_cell(tmp_path / "cell.yaml").model
    np.testing.assert_allclose(model.ocv_v(np.array([0.35])), 3.4 + 0.7 * 0.35)
    # At each temperature the loaded table reproduces that temperature's own set-points.
    for t in (10.0, 25.0):
        rows = ecm[ecm.temperature_c == t]
        np.testing.assert_allclose(model.r0_ohm(rows.soc.to_numpy(), t), rows.r0_ohm, rtol=1e-9)
        np.testing.assert_allclose(model.rc_pairs[0].tau_s(rows.soc.to_numpy(), t), rows.tau1_s,
                                   rtol=1e-9)


def test_table_from_long_refuses_percent_soc():
    with pytest.raises(LabctlError, match=r"\[0, 1\]"):
        table_from_long(pd.DataFrame({"soc": [10, 50, 90], "ocv_v": [3.5, 3.7, 4.0]}), "ocv_v")
