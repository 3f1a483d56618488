"""pseudo-ocv.yaml and gitt.yaml on the simulated NMC preset -> `analyze ocv` / `analyze gitt`.

Truth: the preset's OCV table (fixtures/cells/nmc-1p95ah.yaml), which the simulator runs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.interpolate import PchipInterpolator

from labctl.analysis.characterization import analyze_gitt, analyze_hppc, analyze_ocv
from labctl.cells import load_cell
from labctl.errors import LabctlError
from labctl.store.run import open_run
from tests.characterization_runs.conftest import run_procedure


@pytest.fixture(scope="module")
def pseudo_run(results_root):
    path = run_procedure("pseudo-ocv.yaml", results_root)
    analyze_ocv(path, plots=True)
    return path


@pytest.fixture(scope="module")
def gitt_run(results_root):
    path = run_procedure("gitt.yaml", results_root, pulse_c_rate="C/5", pulse_min="30")
    analyze_gitt(path, length_m=None, plots=True)
    return path


def test_pseudo_ocv_within_5_mv_away_from_the_ends(pseudo_run, nmc):
    """Ends: the lab's SoC 0 is the C/20 cut-off, ~0.3 % SoC above the model's 0; on the
    NMC curve's steep bottom (3-8 V per unit SoC) that alone is ~9 mV below 10 % SoC."""
    run = open_run(pseudo_run)
    table = run.analysis("ocv")["ocv"]
    inner = table[(table.soc >= 0.1) & (table.soc <= 0.95)]
    err = inner.ocv_v - nmc.model.ocv_v(inner.soc.to_numpy())
    assert np.max(np.abs(err)) < 0.005
    summary = run.analysis_summary("ocv")
    assert summary["method"] == "pseudo"
    # No hysteresis in the model: charge - discharge is twice the polarisation at C/20,
    # 2 I (R0 + R1 + R2) ~ 2 * 0.0975 A * 0.07 Ohm = 14 mV (mid SoC).
    r_total = float(nmc.model.r0_ohm(0.5)) + sum(float(rc.r_ohm(0.5)) for rc in nmc.model.rc_pairs)
    assert summary["mean_hysteresis_v_soc_10_90"] == pytest.approx(
        2 * nmc.capacity_ah / 20 * r_total, rel=0.15)
    assert (pseudo_run / "analysis" / "ocv" / "ocv.png").is_file()


def test_ocv_csv_is_a_cell_file_table(pseudo_run, tmp_path, nmc):
    """ocv.csv goes straight into a cell file as {csv: ocv.csv, column: ocv_v}."""
    csv = pseudo_run / "analysis" / "ocv" / "ocv.csv"
    assert list(pd.read_csv(csv).columns) == ["soc", "ocv_v"]
    (tmp_path / "ocv.csv").write_bytes(csv.read_bytes())
    text = (pseudo_run / "inputs" / "cell.yaml").read_text()
    start = text.index("  ocv_v:")
    end = text.index("  r0_ohm:")
    (tmp_path / "cell.yaml").write_text(text[:start] + "  ocv_v: {csv: ocv.csv, column: ocv_v}\n"
                                        + text[end:])
    cell = load_cell(tmp_path / "cell.yaml")
    assert float(cell.model.ocv_v(0.5)) == pytest.approx(float(nmc.model.ocv_v(0.5)), abs=0.005)


def test_gitt_relaxed_ocv_within_5_mv(gitt_run, nmc):
    run = open_run(gitt_run)
    points = run.analysis("gitt")["ocv_points"]
    # Ends as for the pseudo-OCV: SoC 0 is the C/5 pulse's cut-off, ~0.5 % above the model's.
    inner = points[(points.soc >= 0.15) & (points.soc <= 0.95)]
    assert len(inner) >= 7
    err = inner.ocv_v - nmc.model.ocv_v(inner.soc.to_numpy())
    assert np.max(np.abs(err)) < 0.005
    summary = run.analysis_summary("gitt")
    assert summary["n_pulses"] >= 9  # 10 % pulses from full to the cut-off
    pulses = run.analysis("gitt")["pulses"]
    assert (pulses.direction == "discharge").all()
    np.testing.assert_allclose(pulses.current_a, -nmc.capacity_ah / 5, rtol=0.01)
    # Each pulse moves 10 % of the capacity (30 min at C/5), the last one less (cut-off).
    np.testing.assert_allclose((pulses.soc_start - pulses.soc_end)[:-1], 0.1, atol=0.003)
    # The simulated cell is an equivalent circuit without solid diffusion, so its D values
    # say nothing; the Weppner-Huggins core is tested against the exact slab solution in
    # tests/analysis/characterization/test_char_ocv_gitt.py.


def test_gitt_geometry_gives_d_from_d_over_l2(gitt_run):
    from labctl.analysis.characterization.gitt_run import diffusion_length_m

    length = diffusion_length_m(radius_um=6.0)
    assert length == pytest.approx(2e-6)
    _, summary = analyze_gitt(gitt_run, length_m=length, plots=False)
    pulses = open_run(gitt_run).analysis("gitt")["pulses"]
    np.testing.assert_allclose(pulses.d_m2_per_s, pulses.d_over_l2_per_s * length**2)
    with pytest.raises(LabctlError, match="one of"):
        diffusion_length_m(radius_um=5.0, length_um=3.0)
    with pytest.raises(LabctlError, match="needs all"):
        diffusion_length_m(mass_g=1.0)


def test_hppc_takes_its_ocv_from_a_pseudo_ocv_run(hppc_run, pseudo_run, nmc):
    _, summary = analyze_hppc(hppc_run, ocv=pseudo_run, plots=False)
    assert "ocv" in summary["ocv_source"]
    ocv = open_run(hppc_run).analysis("hppc")["ocv"]
    inner = ocv[(ocv.soc >= 0.1) & (ocv.soc <= 0.95)]
    assert np.max(np.abs(inner.ocv_v - nmc.model.ocv_v(inner.soc.to_numpy()))) < 0.005
    # Restore the default analysis for the other tests sharing the run.
    analyze_hppc(hppc_run, plots=False)


def test_ocv_from_rests_of_a_gitt_run(gitt_run, nmc):
    _, summary = analyze_ocv(gitt_run, plots=False)
    assert summary["method"] == "rests"
    # The rest ends are the relaxed voltage: within a few mV of the true OCV (what a 30 min
    # rest leaves of the slow RC pair's overpotential, plus noise).
    soc_pts = np.asarray(summary["rest_points"]["soc"])
    v_pts = np.asarray(summary["rest_points"]["ocv_v"])
    near = (soc_pts > 0.15) & (soc_pts < 0.95)
    point_err = np.max(np.abs(v_pts[near] - nmc.model.ocv_v(soc_pts[near])))
    assert point_err < 0.005
    # Between them the table is PCHIP through those points: its error is at most PCHIP's own
    # error through the exact truth at the same SoCs (computed here independently) plus the
    # points' offset. Below 20 % the truth bends at 10 and 15 % where no point holds it.
    table = open_run(gitt_run).analysis("ocv")["ocv"]
    inner = table[(table.soc >= 0.2) & (table.soc <= 0.9)]
    order = np.argsort(soc_pts)
    pchip_truth = PchipInterpolator(soc_pts[order], nmc.model.ocv_v(soc_pts[order]))
    grid = inner.soc.to_numpy()
    interp_err = np.max(np.abs(pchip_truth(grid) - nmc.model.ocv_v(grid)))
    assert interp_err < 0.005  # 10 % points on this curve: a few mV
    assert np.max(np.abs(inner.ocv_v - nmc.model.ocv_v(grid))) < interp_err + point_err + 0.0005
