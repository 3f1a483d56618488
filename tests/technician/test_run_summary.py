"""What the closing summary of `labctl run` says: efficiencies only for complete cycles,
and EIS / conductivity / abuse runs their own result instead of "0 Ah"."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from labctl.report.run_results import valley_resistance_ohm
from labctl.store.run import complete_cycles
from tests.support import json_out, labctl_cmd


def _steps(rows):
    cols = ["step_index", "cycle_index", "kind", "end_kind", "end_voltage_v",
            "charge_capacity_ah", "discharge_capacity_ah", "end_time_s"]
    return pd.DataFrame([dict(zip(cols, r, strict=True)) for r in rows])


def test_a_charge_from_wherever_the_cell_was_is_not_a_complete_cycle():
    # capacity.yaml on a half-full cell: 1.1 Ah in, 2.2 Ah out (197 % if taken as a cycle).
    steps = _steps([(1, 1, "charge", "condition", 3.65, 1.1, 0, 1),
                    (2, 1, "rest", "time", 3.64, 0, 0, 2),
                    (3, 1, "discharge", "condition", 2.5, 0, 2.2, 3)])
    assert complete_cycles(steps) == []


def test_known_start_then_charge_and_discharge_is_complete():
    steps = _steps([(1, 1, "discharge", "condition", 2.5, 0, 1.0, 1),
                    (2, 2, "charge", "condition", 3.65, 2.2, 0, 2),
                    (3, 2, "hold", "condition", 3.65, 0.01, 0, 3),
                    (4, 2, "discharge", "condition", 2.5004, 0, 2.2, 4),
                    (5, 3, "charge", "condition", 3.65, 2.2, 0, 5),
                    (6, 3, "discharge", "interrupted", 3.1, 0, 0.4, 6)])
    # cycle 3 was cut short (an abort): 18 % would be nonsense.
    assert complete_cycles(steps) == [2]


def test_a_cycle_ending_elsewhere_than_it_started_is_not_complete():
    steps = _steps([(1, 1, "discharge", "condition", 2.5, 0, 1.0, 1),
                    (2, 2, "charge", "condition", 3.65, 2.2, 0, 2),
                    (3, 2, "discharge", "condition", 3.0, 0, 1.5, 3),   # stops at 3.0 V
                    (4, 3, "charge", "condition", 3.65, 1.5, 0, 4),
                    (5, 3, "discharge", "time", 3.3, 0, 0.2, 5)])       # a pulse
    assert complete_cycles(steps) == []


def test_capacity_yaml_prints_no_efficiency(tmp_path):
    proc = labctl_cmd("run", "procedures/capacity.yaml", "--results", str(tmp_path), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "efficiency:" not in proc.stdout
    assert "no complete charge/discharge cycle" in proc.stdout
    # The capacity itself is still there: the cell's 2.2 Ah at C/3, within 5 %.
    cap = float(re.search(r"discharge capacity: ([0-9.]+) Ah", proc.stdout).group(1))
    assert cap == pytest.approx(2.2, rel=0.05)


def test_quickstart_prints_a_coulombic_efficiency_near_100_percent(tmp_path):
    proc = labctl_cmd("run", "procedures/quickstart.yaml", "--results", str(tmp_path),
                      "--no-progress")
    assert proc.returncode == 0, proc.stderr
    ce = float(re.search(r"coulombic efficiency: ([0-9.]+) %", proc.stdout).group(1))
    assert 99.0 < ce <= 100.5  # the simulated cell has no side reactions


def test_eis_run_reports_its_spectra_not_zero_ah(eis_run):
    _, proc = eis_run
    assert "impedance spectra: 1" in proc.stdout  # eis.yaml sweeps once
    assert "0.0000 Ah" not in proc.stdout


def test_conductivity_run_reports_the_pellet_conductivity(tmp_path):
    proc = labctl_cmd("run", "procedures/conductivity-vs-temperature.yaml", "--cell", "llzo-pellet",
                      "--results", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    results = json_out(proc)["results"]
    at_25 = [c for c in results["conductivity"] if abs(c["temperature_c"] - 25) < 0.5]
    # The cell file: bulk 2.0e-4 and grain boundary 4.0e-4 S/cm in series -> 1.333e-4 S/cm.
    assert at_25 and at_25[0]["conductivity_s_per_cm"] == pytest.approx(1 / (1 / 2e-4 + 1 / 4e-4),
                                                                          rel=0.05)
    temps = [c["temperature_c"] for c in results["conductivity"]]
    sigmas = [c["conductivity_s_per_cm"] for c in results["conductivity"]]
    assert sigmas == [s for _, s in sorted(zip(temps, sigmas, strict=True))]  # rises with T


def test_abuse_run_reports_the_onset_temperature(tmp_path):
    proc = labctl_cmd("run", "procedures/arc-hws.yaml", "--station", "instruments/sim-abuse.yaml",
                      "--cell", "nmc-1p95ah", "--results", str(tmp_path), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    onset = float(re.search(r"self-heating onset: ([0-9.]+) °C", proc.stdout).group(1))
    # fixtures/abuse/liquid-li-ion.yaml: the first reaction's onset is 90 °C; ARC steps 5 K.
    assert 85 <= onset <= 100
    assert not re.search(r"[0-9] Ah", proc.stdout)


def test_valley_resistance_of_a_blocking_spectrum():
    import numpy as np

    # R = 1000 ohm parallel C = 1 nF, in series with a blocking capacitor of 10 uF.
    f = np.logspace(7, -1, 81)
    w = 2 * np.pi * f
    z = 1000 / (1 + 1j * w * 1000 * 1e-9) + 1 / (1j * w * 1e-5)
    r = valley_resistance_ohm(f, z.real, z.imag)
    assert r == pytest.approx(1000, rel=0.02)
    # Without a spike at the low end there is no valley: no number rather than a wrong one.
    z2 = 1000 / (1 + 1j * w * 1000 * 1e-9)
    assert np.isnan(valley_resistance_ohm(f, z2.real, z2.imag))
