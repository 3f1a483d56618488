"""SoC estimators on the simulated drive cycle, with the cell file characterised by HPPC.

Reference: precise coulomb counting from full (the end of the CV hold) with the
characterised capacity; the estimators start 20 % off and see the same samples.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from labctl.analysis.characterization import analyze_soc
from labctl.store.run import open_run


@pytest.fixture(scope="module")
def cell_file(hppc_run):
    return hppc_run / "analysis" / "hppc" / "cell.yaml"


@pytest.mark.parametrize("error", [0.2, -0.2])
def test_ekf_and_ukf_converge_on_the_drive_cycle(drive_run, cell_file, error):
    _, summary = analyze_soc(drive_run, cell_file=cell_file, methods=("ekf", "ukf"),
                             initial_soc_error=error, plots=False)
    for name in ("ekf", "ukf"):
        s = summary["methods"][name]
        assert np.isfinite(s["convergence_time_s"]), name
        assert s["convergence_time_s"] < 1800, name
        assert s["rmse_after_convergence"] <= 0.01, name
        assert s["max_error_after_convergence"] <= 0.03, name


def test_coulomb_counting_drifts_as_offset_times_time(drive_run, cell_file):
    offset = 0.05
    _, summary = analyze_soc(drive_run, cell_file=cell_file, methods=("coulomb",),
                             initial_soc_error=0.0, current_offset_a=offset, plots=False)
    table = open_run(drive_run).analysis("soc")["soc"]
    t = table.test_time_s.to_numpy()
    err = table.coulomb_soc.to_numpy() - table.reference_soc.to_numpy()
    cap = summary["capacity_ah"]
    np.testing.assert_allclose(err, offset * (t - t[0]) / (3600 * cap), atol=1e-9)
    assert summary["methods"]["coulomb"]["final_error"] == pytest.approx(
        summary["expected_coulomb_drift"], rel=1e-6)


def test_soc_command_stores_results_and_reports(drive_run, cell_file):
    from labctl.analysis.characterization.command import soc_command

    res = CliRunner().invoke(soc_command(), [str(drive_run), "--cell-file", str(cell_file),
                                             "--method", "ocv", "--method", "coulomb",
                                             "--initial-soc-error", "0.1", "--json"])
    assert res.exit_code == 0, res.output
    run = open_run(drive_run)
    summary = run.analysis_summary("soc")
    assert set(summary["methods"]) == {"ocv", "coulomb"}
    # The OCV lookup reads only after the 30 min rest at the end: close to the reference.
    table = run.analysis("soc")["soc"]
    read = table.dropna(subset=["ocv_soc"])
    assert len(read) >= 1
    assert np.max(np.abs(read.ocv_soc - read.reference_soc)) < 0.02
    assert summary["methods"]["coulomb"]["final_error"] == pytest.approx(0.1, abs=1e-9)
    assert json.loads(res.output)["summary"]["methods"]["ocv"]["rmse"] < 0.02
    assert (drive_run / "analysis" / "soc" / "soc.png").is_file()
    bad = CliRunner().invoke(soc_command(), [str(drive_run), "--cell-file", "nope.yaml"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
