"""Cycling analyses on simulated runs, checked against sums the test computes itself from
the timeseries, against the cell model, and against the procedure's stop rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labctl.analysis.cycling.runs import analyze_cycling, analyze_dqdv, analyze_rate
from labctl.cells.load import load_cell
from labctl.engine.session import prepare, start_run
from labctl.store.run import open_run
from tests.support import REPO, json_out, labctl_cmd

# A noise-free simulated bench: rests carry exactly zero current, so the test's own
# per-step sums and the analysis' sign-split sums must agree to rounding.
STATION = """\
name: quiet sim
clock: virtual
instruments:
  cycler:
    driver: sim-cycler
    ranges: {max_current_a: 20.0, max_voltage_v: 5.0, min_voltage_v: 0.0}
"""
ACCELERATION = 40


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("cycling")
    station = root / "station.yaml"
    station.write_text(STATION)
    text = (REPO / "fixtures" / "cells" / "nmc-1p95ah.yaml").read_text(encoding="utf-8")
    text = text.replace("    resistance_growth_per_fade: 2.0\n",
                        f"    resistance_growth_per_fade: 2.0\n    acceleration: {ACCELERATION}\n")
    cell = root / "nmc-fast.yaml"
    cell.write_text(text, encoding="utf-8")
    return root, station, cell


@pytest.fixture(scope="module")
def life_run(bench):
    root, station, cell = bench
    prep = prepare(REPO / "procedures" / "cycle-life.yaml", station_path=station,
                   cell_ref=str(cell), params={"cycles_per_rpt": "4", "retention_pct": "90"})
    out = start_run(prep, results_root=root / "results")
    assert out.status == "completed"
    return open_run(out.path)


def test_per_cycle_sums_match_the_timeseries(life_run):
    tables, _, summary = analyze_cycling(life_run, plots_on=False)
    got = tables["cycles"].set_index("cycle_index")
    ts, steps = life_run.timeseries, life_run.steps
    for c, rows in ts.groupby("cycle_index"):
        kinds = steps.set_index("step_index")["kind"]
        charge = discharge = e_in = e_out = 0.0
        for s, r in rows.groupby("step_index"):
            q = np.trapezoid(r.current_a, r.test_time_s) / 3600.0
            e = np.trapezoid(r.voltage_v * r.current_a, r.test_time_s) / 3600.0
            if kinds[s] in ("charge", "hold"):
                charge, e_in = charge + q, e_in + e
            elif kinds[s] == "discharge":
                discharge, e_out = discharge - q, e_out - e
        row = got.loc[c]
        assert row.charge_capacity_ah == pytest.approx(charge, rel=1e-9, abs=1e-12)
        assert row.discharge_capacity_ah == pytest.approx(discharge, rel=1e-9, abs=1e-12)
        assert row.charge_energy_wh == pytest.approx(e_in, rel=1e-9, abs=1e-12)
        assert row.discharge_energy_wh == pytest.approx(e_out, rel=1e-9, abs=1e-12)
        if charge > 0:
            assert row.coulombic_efficiency == pytest.approx(discharge / charge, rel=1e-9)
            assert row.energy_efficiency == pytest.approx(e_out / e_in, rel=1e-9)
            assert row.mean_charge_voltage_v == pytest.approx(e_in / charge, rel=1e-9)
        assert row.max_temperature_c == rows.temperature_c.max()
    # The simulator's exact counters (the store's cycles table) agree within the
    # trapezoid rule's error on the CV holds.
    exact = life_run.cycles.set_index("cycle_index")
    assert np.allclose(got.discharge_capacity_ah, exact.discharge_capacity_ah, rtol=1e-3)
    assert np.allclose(got.charge_energy_wh, exact.charge_energy_wh, rtol=1e-3)
    # Ageing shows: capacity falls, DCIR rises, CE < 1 by about the fade per cycle.
    assert summary["last_retention"] < 0.93
    assert summary["dcir_growth"] > 1.05
    assert 0.99 < summary["median_coulombic_efficiency"] < 1.0


def test_dcir_matches_the_cell_model(life_run):
    tables, _, _ = analyze_cycling(life_run, plots_on=False)
    pulse = tables["dcir"].iloc[0]
    ts = life_run.timeseries
    before = ts[ts.step_index == pulse.step_index - 1].iloc[-1]
    end = ts[ts.step_index == pulse.step_index].iloc[-1]
    current = ts[ts.step_index == pulse.step_index].current_a.iloc[-1]
    assert pulse.dcir_ohm == pytest.approx((before.voltage_v - end.voltage_v) / -current,
                                           rel=1e-9)
    # Fresh cell at ~50 % SoC, ~25 °C: R0 + R1 (1 - e^-10/25) + R2 (1 - e^-10/900) from the
    # preset (0.038-0.039, 0.012 / 25 s, 0.020 / 900 s), plus the OCV's slope over the
    # 10 s of charge (~0.3 % SoC, ~0.5 V per unit SoC): within a few percent.
    m = load_cell("nmc-1p95ah").model
    r0 = float(m.r0_ohm(0.5))
    expected = r0 + 0.012 * (1 - np.exp(-10 / 25)) + 0.020 * (1 - np.exp(-10 / 900))
    assert pulse.dcir_ohm == pytest.approx(expected, rel=0.06)


def test_cycle_life_stops_at_the_retention_threshold(life_run):
    cycles = life_run.cycles.sort_values("cycle_index")
    per_block = 4 + 1  # one RPT + cycles_per_rpt
    n_blocks = (len(cycles) - 1) // per_block  # the last cycle is the final RPT
    assert len(cycles) == n_blocks * per_block + 1
    sums = [cycles.discharge_capacity_ah.iloc[b * per_block:(b + 1) * per_block].sum()
            for b in range(n_blocks)]
    ratios = np.array(sums) / sums[0]
    assert ratios[-1] < 0.90  # the block that ended the run
    assert np.all(ratios[:-1] >= 0.90)  # and no block before it
    assert n_blocks < 40  # it stopped on retention, not on max_blocks


def test_dqdv_of_a_run_tracks_peaks(life_run):
    tables, _, summary = analyze_dqdv(life_run, cycles=[2, 7], plots_on=False)
    assert summary["cycles"] == [2, 7]
    dq = tables["dqdv"]
    assert set(dq.cycle_index) == {2, 7}
    # The area under each cycle's dQ/dV is what its main discharge moved.
    for c in (2, 7):
        d = dq[dq.cycle_index == c]
        steps = life_run.steps
        main = steps[(steps.cycle_index == c) & (steps.kind == "discharge")]
        assert np.trapezoid(d.dqdv_ah_per_v, d.voltage_v) == pytest.approx(
            main.discharge_capacity_ah.max(), rel=2e-3)
    assert summary["peaks"], "the NMC curve has peaks"
    assert all(len(p["cycles"]) >= 1 for p in summary["peaks"])


def test_rate_capability_run(bench):
    root, station, _ = bench
    prep = prepare(REPO / "procedures" / "rate-capability.yaml", station_path=station,
                   cell_ref="lto-1p8ah", params={"rest_min": "5", "rate_6": "5"})
    out = start_run(prep, results_root=root / "results")
    assert out.status == "completed"
    tables, _, _ = analyze_rate(out.path, plots_on=False)
    r = tables["rates"]
    assert r.c_rate.to_numpy() == pytest.approx([0.1, 0.2, 0.5, 1.0, 2.0, 5.0], rel=1e-6)
    assert np.all(np.diff(r.discharge_capacity_ah) < 0)  # more current, less capacity
    assert np.all(np.diff(r.mean_voltage_v) < 0)
    steps = open_run(out.path).steps
    dis = steps[(steps.kind == "discharge")].sort_values("step_index")
    assert r.sort_values("step_index").discharge_capacity_ah.to_numpy() == pytest.approx(
        dis.discharge_capacity_ah.to_numpy())


def test_cli_analyze_cycling_and_bad_input(life_run):
    proc = labctl_cmd("analyze", "cycling", str(life_run.path), "--json", "--no-plots")
    assert proc.returncode == 0, proc.stderr
    out = json_out(proc)
    assert out["ok"] and out["summary"]["n_rpt"] >= 2
    stored = open_run(life_run.path).analysis("cycling")
    assert isinstance(stored["cycles"], pd.DataFrame) and len(stored["cycles"]) > 5
    proc = labctl_cmd("analyze", "dqdv", str(life_run.path), "--cycles", "1,9999")
    assert proc.returncode == 2
    assert "no usable cycle 9999" in proc.stderr and "Traceback" not in proc.stderr
