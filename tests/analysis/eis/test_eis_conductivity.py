"""Solid-electrolyte conductivity from fitted arcs (LLTO, seed-facts.md) and Arrhenius fits."""

from __future__ import annotations

import numpy as np
import pytest

from labctl.analysis.eis import (
    analyze_spectra,
    arrhenius_fit,
    conductivity_s_per_cm,
    fit_spectrum,
    pellet_conductivity,
)
from labctl.errors import LabctlError
from tests.analysis.eis.synth_eis import BOLTZMANN_EV_PER_K, LLTO, noisy, q_for, z_cpe, z_r_cpe

THICKNESS_MM, AREA_CM2 = 1.0, 1.0  # 1 mm pellet, 1 cm^2 gold electrodes
F_PELLET = np.logspace(7, -1, 81)  # 10 MHz (high-frequency analyser) to 0.1 Hz
CIRCUIT = "p(R1,CPE1)-p(R2,CPE2)-CPE3"


def pellet_spectrum(sigma_grain, sigma_total, f=F_PELLET):
    """Bulk arc (~1e-11 F), grain-boundary arc (~1e-9 F), blocking-electrode CPE tail."""
    cell_constant_per_cm = (THICKNESS_MM / 10) / AREA_CM2
    r_b = cell_constant_per_cm / sigma_grain
    r_gb = cell_constant_per_cm / sigma_total - r_b
    return (z_r_cpe(r_b, q_for(r_b, r_b * 1e-11, 0.95), 0.95, f)
            + z_r_cpe(r_gb, q_for(r_gb, r_gb * 1e-9, 0.9), 0.9, f)
            + z_cpe(1e-6, 0.85, f))


def test_conductivity_formula():
    # 1 mm / (1000 Ohm * 1 cm^2) = 0.1 cm / 1000 Ohm cm^2 = 1e-4 S/cm
    assert conductivity_s_per_cm(1000.0, 1.0, 1.0) == pytest.approx(1e-4, rel=1e-12)
    assert conductivity_s_per_cm(250.0, 2.0, 0.5) == pytest.approx(0.2 / 125.0, rel=1e-12)
    with pytest.raises(LabctlError, match="thickness_mm"):
        conductivity_s_per_cm(1.0, 0.0, 1.0)


def test_llto_pellets_give_back_published_grain_and_overall_conductivity():
    temps = sorted(LLTO)
    spectra = [(F_PELLET, noisy(pellet_spectrum(*LLTO[t]), 0.005, t)) for t in temps]
    result = analyze_spectra(spectra, CIRCUIT, thickness_mm=THICKNESS_MM, area_cm2=AREA_CM2,
                             names=[f"LLTO sintered {t} C" for t in temps])
    cond = result.conductivity
    for t, (_, row) in zip(temps, cond.iterrows(), strict=True):
        grain, overall = LLTO[t]
        assert row["sigma_bulk_s_per_cm"] == pytest.approx(grain, rel=0.05), t
        assert row["sigma_total_s_per_cm"] == pytest.approx(overall, rel=0.05), t
        # Reported uncertainties are honest: the error is within 3 standard errors.
        assert abs(row["sigma_bulk_s_per_cm"] - grain) <= 3 * row["sigma_bulk_stderr_s_per_cm"]
        assert row["bulk_resistor"] == "R1" and row["grain_boundary_resistor"] == "R2"
    assert result.fits["kk_valid"].all()
    assert result.arrhenius is None  # no temperatures given


def test_bulk_is_the_fastest_arc_whatever_the_writing_order():
    grain, overall = LLTO[1300]
    z = pellet_spectrum(grain, overall)
    fit = fit_spectrum(F_PELLET, z, "p(R2,CPE2)-p(R1,CPE1)-CPE3",
                       initial={"R2": 6e3, "CPE2_0": q_for(6e3, 6e-6, 0.9), "CPE2_1": 0.9,
                                "R1": 300.0, "CPE1_0": q_for(300.0, 3e-9, 0.95),
                                "CPE1_1": 0.95})
    pc = pellet_conductivity(fit, thickness_mm=THICKNESS_MM, area_cm2=AREA_CM2)
    assert pc.bulk_resistor == "R1"
    assert pc.sigma_bulk_s_per_cm == pytest.approx(grain, rel=0.01)
    assert pc.sigma_total_s_per_cm == pytest.approx(overall, rel=0.01)
    # Naming them explicitly the other way round is obeyed (and gives other numbers).
    swapped = pellet_conductivity(fit, thickness_mm=THICKNESS_MM, area_cm2=AREA_CM2,
                                  bulk="R2", grain_boundary="R1")
    assert swapped.sigma_bulk_s_per_cm == pytest.approx(0.1 / fit.as_dict()["R2"], rel=1e-9)
    with pytest.raises(LabctlError, match="not a resistor"):
        pellet_conductivity(fit, thickness_mm=1.0, area_cm2=1.0, bulk="CPE3_0")


def _sigma_t(ea_ev, prefactor, temperature_c):
    t = np.asarray(temperature_c) + 273.15
    return prefactor / t * np.exp(-ea_ev / (BOLTZMANN_EV_PER_K * t))


def test_arrhenius_recovers_activation_energy_within_its_uncertainty():
    temps = np.array([-20.0, 0.0, 20.0, 40.0, 60.0, 80.0])
    sigma = _sigma_t(0.35, 5e3, temps) * np.exp(np.random.default_rng(3).normal(0, 0.03, 6))
    a = arrhenius_fit(temps, sigma)
    assert a.form == "sigma_t" and a.prefactor_unit == "S K/cm"
    assert abs(a.activation_energy_ev - 0.35) <= 3 * a.activation_energy_stderr_ev
    assert 0.001 < a.activation_energy_stderr_ev < 0.05
    # The line passes through the data: conductivity at 25 C within the noise.
    assert a.sigma_s_per_cm(25.0) == pytest.approx(_sigma_t(0.35, 5e3, 25.0), rel=0.1)


def test_arrhenius_standard_error_is_calibrated():
    # Student t with 4 degrees of freedom: P(|t| < 1) = 0.626.
    temps = np.array([-20.0, 0.0, 20.0, 40.0, 60.0, 80.0])
    rng = np.random.default_rng(17)
    inside = []
    for _ in range(400):
        s = _sigma_t(0.35, 5e3, temps) * np.exp(rng.normal(0, 0.05, 6))
        a = arrhenius_fit(temps, s)
        inside.append(abs(a.activation_energy_ev - 0.35) <= a.activation_energy_stderr_ev)
    assert 0.56 < np.mean(inside) < 0.70


def test_arrhenius_plain_sigma_form():
    temps = np.array([25.0, 50.0, 75.0, 100.0])
    t = temps + 273.15
    sigma = 80.0 * np.exp(-0.42 / (BOLTZMANN_EV_PER_K * t))
    a = arrhenius_fit(temps, sigma, form="sigma")
    assert a.activation_energy_ev == pytest.approx(0.42, rel=1e-9)
    assert a.prefactor == pytest.approx(80.0, rel=1e-9)
    # The same data read as sigma*T gives a larger apparent Ea (by about k_B T).
    apparent = arrhenius_fit(temps, sigma).activation_energy_ev
    assert apparent == pytest.approx(0.42 + BOLTZMANN_EV_PER_K * 333, abs=0.005)
    two = arrhenius_fit(temps[:2], sigma[:2], form="sigma")
    assert two.activation_energy_ev == pytest.approx(0.42, rel=1e-9)
    assert np.isnan(two.activation_energy_stderr_ev)
    with pytest.raises(LabctlError, match="two or more"):
        arrhenius_fit([25.0, 25.0], [1e-4, 2e-4])
    with pytest.raises(LabctlError, match="form"):
        arrhenius_fit(temps, sigma, form="log")


def test_pellet_measured_at_several_temperatures_end_to_end():
    # Grain and grain-boundary conduction with their own activation energies.
    temps = np.array([0.0, 25.0, 50.0, 75.0])
    t_k = temps + 273.15
    s_grain = 3e-4 * np.exp(-0.30 / BOLTZMANN_EV_PER_K * (1 / t_k - 1 / 298.15))
    s_gb_only = 2e-5 * np.exp(-0.45 / BOLTZMANN_EV_PER_K * (1 / t_k - 1 / 298.15))
    s_total = 1 / (1 / s_grain + 1 / s_gb_only)  # resistances in series
    spectra = [(F_PELLET, noisy(pellet_spectrum(g, tot), 0.002, i))
               for i, (g, tot) in enumerate(zip(s_grain, s_total, strict=True))]
    res = analyze_spectra(spectra, CIRCUIT, thickness_mm=1.0, area_cm2=1.0,
                          temperatures_c=temps)
    arr = res.arrhenius.set_index("quantity")
    bulk = arrhenius_fit(temps, s_grain, form="sigma_t").activation_energy_ev
    total = arrhenius_fit(temps, s_total, form="sigma_t").activation_energy_ev
    assert arr.loc["bulk", "activation_energy_ev"] == pytest.approx(bulk, abs=0.01)
    assert arr.loc["total", "activation_energy_ev"] == pytest.approx(total, abs=0.01)
    assert set(arr["form"]) == {"sigma_t"}
