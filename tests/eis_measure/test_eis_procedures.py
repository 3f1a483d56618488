"""The ready EIS procedures on the simulated bench, analysed, against the presets' true values."""

from __future__ import annotations

import numpy as np
import pytest

from labctl.analysis.eis.runs import analyze_run
from labctl.engine.session import prepare, start_run
from labctl.store.run import open_run
from tests.support import REPO

K_B = 8.617333262e-5
STATION = REPO / "instruments" / "sim.yaml"


def _run(tmp_path, name, cell=None, **params):
    prep = prepare(REPO / "procedures" / f"{name}.yaml", station_path=STATION, cell_ref=cell,
                   params={k: str(v) for k, v in params.items()})
    out = start_run(prep, results_root=tmp_path / "results")
    assert out.status == "completed", out.reason
    return open_run(out.path)


def _llzo_truth(temperature_c):
    """llzo-pellet.yaml: sigma T Arrhenius; bulk 2.0e-4 S/cm @ 0.32 eV, gb 4.0e-4 @ 0.40 eV."""
    t, t0 = np.asarray(temperature_c) + 273.15, 298.15
    bulk = 2.0e-4 * (t0 / t) * np.exp(-0.32 / K_B * (1 / t - 1 / t0))
    gb = 4.0e-4 * (t0 / t) * np.exp(-0.40 / K_B * (1 / t - 1 / t0))
    return bulk, 1 / (1 / bulk + 1 / gb)


def test_conductivity_vs_temperature_recovers_the_pellet_preset(tmp_path):
    run = _run(tmp_path, "conductivity-vs-temperature", cell="llzo-pellet", stable_min=5)
    spectra = run.records("spectra")
    temps = spectra.groupby("step_index").temperature_c.mean().to_numpy()
    np.testing.assert_allclose(temps, [-20, -10, 0, 10, 25], atol=0.3)
    # geometry given explicitly (the preset's 1.0 mm and 0.785 cm2)
    result, folder, summary = analyze_run(run.path, "p(R1,CPE1)-p(R2,CPE2)-CPE3",
                                          thickness_mm=1.0, area_cm2=0.785, plots=False)
    cond = result.conductivity
    bulk, total = _llzo_truth(cond.temperature_c.to_numpy())
    np.testing.assert_allclose(cond.sigma_bulk_s_per_cm, bulk, rtol=0.03)
    np.testing.assert_allclose(cond.sigma_total_s_per_cm, total, rtol=0.03)
    arr = result.arrhenius.set_index("quantity")
    assert arr.loc["bulk", "activation_energy_ev"] == pytest.approx(0.32, rel=0.03)
    # total = bulk + gb in series is not one Arrhenius line; compare with the line through
    # the true totals at the same temperatures (independent: the preset numbers)
    t = cond.temperature_c.to_numpy() + 273.15
    slope = np.polyfit(1 / (K_B * t), np.log(total * t), 1)[0]
    assert arr.loc["total", "activation_energy_ev"] == pytest.approx(-slope, rel=0.03)
    assert result.fits.kk_valid.all()
    # stored with the run, readable as DataFrames
    stored = open_run(run.path).analysis("eis")
    assert {"fits", "conductivity", "arrhenius", "linkk"} <= set(stored)
    assert len(stored["fits"]) == 5 and "step_index" in stored["fits"]
    assert open_run(run.path).analysis_summary("eis")["n_spectra"] == 5


def test_pellet_geometry_comes_from_the_run_cell_file(tmp_path):
    run = _run(tmp_path, "conductivity-vs-temperature", cell="llzo-pellet", stable_min=1,
               t1=0, t2=25, t3=40, t4=60, t5=80, points_per_decade=6)
    result, _, summary = analyze_run(run.path, plots=True)
    assert summary["geometry"] == {"thickness_mm": 1.0, "area_cm2": 0.785, "from": "cell file"}
    bulk, _ = _llzo_truth(result.conductivity.temperature_c.to_numpy())
    np.testing.assert_allclose(result.conductivity.sigma_bulk_s_per_cm, bulk, rtol=0.05)
    assert (run.path / "analysis" / "eis" / "arrhenius.png").is_file()
    assert (run.path / "analysis" / "eis" / "nyquist-000.png").is_file()


def test_eis_vs_pressure_shows_falling_interfacial_resistance(tmp_path):
    run = _run(tmp_path, "eis-vs-pressure", cell="ssb-bulk", hold_min=2, points_per_decade=6)
    pressures = run.records("pressure")
    assert pressures.setpoint_mpa.max() == 25 and (pressures.phase == "hold").any()
    result, _, _ = analyze_run(run.path, "L0-R0-p(R1,CPE1)-p(R2,CPE2)-W1", plots=False)
    fits = result.fits.sort_values("pressure_mpa")
    np.testing.assert_allclose(fits.pressure_mpa, [1, 3, 6, 12, 25], atol=0.06)
    r2 = fits.R2.to_numpy()
    assert (np.diff(r2) < 0).all()
    # contact model of ssb-bulk.yaml: R_int = 0.20 / (0.15 + 0.85 (1 - exp(-P / 5))) at 50 % SoC
    phi = 0.15 + 0.85 * (1 - np.exp(-fits.pressure_mpa.to_numpy() / 5.0))
    np.testing.assert_allclose(r2, 0.20 / phi, rtol=0.03)
    np.testing.assert_allclose(fits.R0, 0.15, rtol=0.02)  # the series part does not move


def test_eis_vs_soc_one_spectrum_per_step_in_a_loop(tmp_path):
    # 5 steps of 20 % from full: spectra at 100, 80, 60, 40, 20 % and at the bottom (the
    # last discharge ends at the min voltage)
    run = _run(tmp_path, "eis-vs-soc", n_points=5, step_min=24, rest_min=5,
               points_per_decade=4)
    spectra = run.records("spectra")
    groups = spectra.groupby("step_index")
    assert groups.ngroups == 6  # 5 in the loop + the one at the bottom
    assert (groups.size() == groups.size().iloc[0]).all()
    assert list(spectra[spectra.label == "bottom"].step_index.unique()) == [max(groups.groups)]
    # lfp-2p2ah: r0 = 0.021 Ohm full, 0.020 at 50 %, rising to 0.035 empty; the highest
    # frequency point sits on the series resistance
    hf = groups.apply(lambda g: g.loc[g.frequency_hz.idxmax(), "z_real_ohm"]).to_numpy()
    assert hf[0] == pytest.approx(0.021, rel=0.05)
    assert hf[2] == pytest.approx(0.0205, rel=0.05)
    assert hf[-1] > 0.026
    volts = groups.voltage_v.mean().to_numpy()
    assert (np.diff(volts) < 0).all()  # DC voltage falls as the cell empties
