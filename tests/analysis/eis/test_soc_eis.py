"""SoC and temperature from one spectrum, against the simulated cell's truth.

Truth: the procedure's own arithmetic (a spectrum every 12 min at C/2 from full =
every 10 % SoC) and the chamber set-points; the simulated cell (fixtures/cells/ssb-eis.yaml)
follows its documented impedance laws (SoC tables, Arrhenius, ageing factor).
"""

from __future__ import annotations

import numpy as np
import pytest

from labctl.engine.session import prepare, start_run
from labctl.sim.impedance import ImpedanceModel
from tests.support import REPO, json_out, labctl_cmd

STATION = REPO / "instruments" / "sim.yaml"


def _run(root, temperature_c, cell="ssb-eis"):
    prep = prepare(REPO / "procedures" / "eis-vs-soc-at-temperature.yaml", station_path=STATION,
                   cell_ref=cell, params={"temperature_c": str(temperature_c), "n_points": "9",
                                          "step_min": "12", "rest_min": "5", "stable_min": "5",
                                          "points_per_decade": "5"})
    out = start_run(prep, results_root=root)
    assert out.status == "completed", out.reason
    return out.path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("soc-eis")
    return {t: _run(root, t) for t in (15, 25, 35, 30, 20)}


def test_soc_and_temperature_from_one_spectrum_on_held_out_runs(runs):
    train = [runs[t] for t in (15, 25, 35)]
    proc = labctl_cmd("analyze", "soc-eis", str(runs[30]), str(runs[20]),
                      *[a for r in train for a in ("--train", str(r))], "--json")
    assert proc.returncode == 0, proc.stderr
    out = json_out(proc)
    assert out["n_training_spectra"] == 30
    import pandas as pd

    for run, chamber in ((runs[30], 30.0), (runs[20], 20.0)):
        res = next(r for r in out["runs"] if r["run"] == run.name)
        est = pd.read_parquet(run / "analysis" / "soc-eis" / "estimates.parquet")
        # Labels: full, then 10 % less per step (procedure arithmetic), within 2 %.
        truth = 1.0 - 0.1 * np.arange(10)
        np.testing.assert_allclose(est["soc_true"], truth, atol=0.02)
        err = est["soc_estimate"].to_numpy() - truth
        assert np.sqrt(np.mean(err**2)) < 0.03 and np.max(np.abs(err)) < 0.06
        assert res["soc"]["rmse"] < 0.03
        assert np.all(np.abs(est["temperature_estimate_c"] - chamber) < 1.0)


def test_a_run_cannot_be_both_trained_and_evaluated(runs):
    proc = labctl_cmd("analyze", "soc-eis", str(runs[30]), "--train", str(runs[30]),
                      "--train", str(runs[15]))
    assert proc.returncode == 2 and "both trained on and evaluated" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_spectrum_follows_the_documented_ageing_law():
    from labctl.cells.load import load_cell

    model = ImpedanceModel(load_cell("ssb-eis"))
    f = np.logspace(4, -2, 61)
    fresh = model.values(0.5, 25.0)
    aged = model.values(0.5, 25.0, resistance_factor=1.4)
    assert aged.series_ohm == pytest.approx(1.4 * fresh.series_ohm)
    for a, b in zip(fresh.arcs, aged.arcs, strict=True):
        assert b.r_ohm == pytest.approx(1.4 * a.r_ohm) and b.q == a.q
        # Q fixed: the apex moves down by 1.4^(1/alpha).
        assert a.apex_hz / b.apex_hz == pytest.approx(1.4 ** (1 / a.alpha), rel=1e-9)
    # The spectrum: the ohmic and polarisation parts both scale by 1.4 at DC.
    z0 = model.impedance(f, 0.5, 25.0)
    z1 = model.impedance(f, 0.5, 25.0, resistance_factor=1.4)
    assert z1[0].real == pytest.approx(1.4 * z0[0].real, rel=0.02)
    assert aged.dc_resistance_ohm() == pytest.approx(1.4 * fresh.dc_resistance_ohm())
