"""One Arrhenius reaction against closed forms written here, independently of the simulator.

ARC (adiabatic), first order: with conversion alpha = (T - T0) / dT_ad the self-heating
rate is r(T) = A exp(-E/RT) (T_f - T), T_f = T0 + dT_ad. Its onset (r = 0.02 °C/min at
alpha = 0) is T_on = (E/R) / ln(dT_ad A 60 / 0.02), and its maximum satisfies
T^2 = (E/R) (T_f - T). DSC at heating rate beta (first order, sample on the program):
the Kissinger condition beta E / (R T_p^2) = A exp(-E / (R T_p)) gives the peak.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from tests.abuse.abuse_helpers import proc, run, station

E = 120e3  # J/mol
R = 8.314462618
HEAT_J = 6750.0  # 150 K on 45 J/K
C = 45.0
DT_AD = HEAT_J / C
A = 2.0e9  # 1/s


def _preset(tmp):
    path = tmp / "single.yaml"
    path.write_text(f"""
name: single reaction
heat_capacity_j_per_k: {C}
heat_exchange_w_per_k: 0.3
reactions:
  - name: only
    heat_j: {HEAT_J}
    activation_energy_kj_per_mol: {E / 1e3}
    frequency_factor_per_s: {A}
""")
    return path


ABUSE = """
abuse: {allow: [max_temperature_c], reason: closed-form check}
safety: {max_temperature_c: 500}
"""


def test_arc_onset_and_peak_match_the_adiabatic_closed_form(tmp_path):
    st = station(tmp_path, preset=str(_preset(tmp_path)))
    p = proc(tmp_path, ABUSE + """
steps:
  - arc_hws: {start: 130 °C, end: 330 °C, step: 5 °C, rate_limit: 1000 °C/min, log: every 5 s,
              delta: 0.2 °C}
""")
    out, r = run(p, st, tmp_path)
    assert out.status == "completed", out.reason
    from labctl.analysis.abuse import analyze_run

    s = analyze_run(r, plots=False)
    e_r = E / R
    onset_truth = e_r / math.log(DT_AD * A * 60.0 / 0.02) - 273.15
    assert s["onset_c"] == pytest.approx(onset_truth, abs=2.0)
    th = r.records("thermal").sort_values("test_time_s")
    track = th[th.phase == "track"]
    # Conversion before tracking: the kinetics integrated here along the measured temperatures.
    before = th[th.test_time_s <= track.test_time_s.iloc[0]]
    k = A * np.exp(-e_r / (before.cell_temperature_c.to_numpy() + 273.15))
    alpha0 = 1.0 - math.exp(-np.trapezoid(k, before.test_time_s.to_numpy()))
    assert 0 < alpha0 < 0.05
    t_f = track.cell_temperature_c.iloc[0] + DT_AD * (1 - alpha0) + 273.15
    peak_truth = (-e_r + math.sqrt(e_r**2 + 4 * e_r * t_f)) / 2 - 273.15
    assert len(s["exotherm_peaks_c"]) == 1
    assert s["exotherm_peaks_c"][0] == pytest.approx(peak_truth, abs=2.0)
    assert s["max_rate_temperature_c"] == pytest.approx(peak_truth, abs=2.0)
    rate_truth = A * math.exp(-e_r / (peak_truth + 273.15)) * (t_f - peak_truth - 273.15) * 60
    assert s["max_self_heating_c_per_min"] == pytest.approx(rate_truth, rel=0.03)
    # all the heat shows as adiabatic temperature rise
    assert s["total_heat_j"] == pytest.approx(HEAT_J * (1 - alpha0), rel=0.01)


def test_dsc_peak_matches_kissinger(tmp_path):
    st = station(tmp_path, preset=str(_preset(tmp_path)))
    beta = 10.0 / 60.0  # K/s
    p = proc(tmp_path, ABUSE + """
steps:
  - dsc_ramp: {from: 60 °C, to: 400 °C, rate: 10 °C/min, log: every 1 s}
""")
    out, r = run(p, st, tmp_path)
    assert out.status == "completed", out.reason
    from labctl.analysis.abuse import analyze_run

    s = analyze_run(r, plots=False)
    tp = brentq(lambda t: beta * E / (R * t * t) - A * math.exp(-E / (R * t)), 300, 900) - 273.15
    assert s["exotherm_peaks_c"] == pytest.approx([tp], abs=2.0)
    assert s["exotherm_heat_j"] == pytest.approx(HEAT_J, rel=0.01)
    # onset: the heat flow reaches C x 0.02 °C/min where A exp(-E/RT) H = that
    onset = E / R / math.log(A * HEAT_J / (C * 0.02 / 60)) - 273.15
    assert s["onset_c"] == pytest.approx(onset, abs=2.0)
    assert np.isfinite(s["max_self_heating_c_per_min"])
