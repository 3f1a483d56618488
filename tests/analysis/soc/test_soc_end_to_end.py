"""Characterise a known cell (pseudo-OCV + HPPC), build its CellModel, track SoC with it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from labctl.analysis.ecm import ecm_table, ecm_tables_to_cell_model, hppc
from labctl.analysis.ocv import pseudo_ocv
from labctl.analysis.soc import ExtendedKalmanFilter, evaluate, run_filter
from labctl.cells.spec import ThermalModel
from tests.analysis.characterization import synth
from tests.analysis.soc import drive


def test_characterised_model_tracks_soc():
    # The drive-cycle cell with its fast RC pair only, as the characterisation sees it.
    truth = synth.Truth(drive.CAP, drive.ocv, drive.r0, [drive.RC[0]])
    c20 = drive.CAP / 20
    ocv_run, _ = synth.simulate(truth, [(600.0, 0.0), (72000.0, -c20), (3600.0, 0.0),
                                        (72000.0, c20), (600.0, 0.0)], 10.0, noise_v=1e-3)
    steps = pd.DataFrame({"step_index": [1, 2, 3, 4, 5],
                          "kind": ["rest", "discharge", "rest", "charge", "rest"]})
    ocv_table = pseudo_ocv(ocv_run, steps).table
    hppc_run, _ = synth.simulate(truth, synth.hppc_schedule(drive.CAP), 1.0, noise_v=0.1e-3)
    pulses = hppc(hppc_run, capacity_ah=drive.CAP, initial_soc=1.0, ocv=ocv_table).pulses
    model = ecm_tables_to_cell_model(ocv_table, ecm_table(pulses), ThermalModel(40.0, 0.05))
    assert len(model.rc_pairs) == 1
    np.testing.assert_allclose(model.rc_pairs[0].r_ohm.values, drive.RC[0][0], rtol=0.05)

    t, i = drive.drive_cycle(3600, seed=8)
    soc, v = drive.simulate(t, i, 0.75, n_rc=1, noise_v=1.5e-3, seed=9)
    est = run_filter(ExtendedKalmanFilter(model, drive.CAP, 0.75, initial_soc_error=-0.2), t, i, v)
    e = evaluate(est[:, 0], soc[:, 0], t)
    assert e["convergence_time_s"] <= 120.0
    assert e["rmse_after_convergence"] <= 0.01
    assert e["max_error_after_convergence"] <= 0.03
