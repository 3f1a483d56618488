"""A procedure through the real Keithley drivers against `labctl sim serve` gives the same
results as the built-in simulator.

Both sides compute the same cell (same model, same initial state, no noise). What may
differ, and the tolerances that follow (documented in docs/drivers.md):
- The driver's step time 0 is its first reading, one reading period (0.1 s, the server's
  --time-per-read) after the source was switched on; a step's charge therefore differs
  by at most |I| x 0.1 s, and a condition fires at most one reading late.
- Voltages: the driver reads at 1 µV resolution; over 0.1 s the LFP cell moves < 0.1 mV
  (RC time constants 30 s and 1200 s), so logged voltages agree within 0.1 mV (measured: 15 µV).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from labctl.cells import load_cell
from labctl.engine.session import prepare, start_run
from labctl.simserve.server import ScpiServer, build_smu, serve_in_thread
from labctl.store.run import open_run

HERE = Path(__file__).parent
REPO = HERE.parent.parent
PROC = HERE / "data" / "smu-vs-sim.yaml"
CELL = REPO / "fixtures" / "cells" / "lfp-2p2ah.yaml"
READ_S = 0.1
V_TOL = 0.1e-3
T_TOL = 1.5 * READ_S


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    station = root / "station.yaml"
    station.write_text(
        "name: built-in sim\nclock: virtual\ninstruments:\n  cycler:\n    driver: sim-cycler\n"
        "    ranges: {max_current_a: 1.05, max_voltage_v: 5.0, min_voltage_v: 0.0}\n"
        "    resolution: {voltage_v: 1.0e-6, current_a: 1.0e-7}\n")
    out = start_run(prepare(PROC, station_path=station, cell_ref=CELL), results_root=root / "r")
    assert out.status == "completed", out.reason
    return open_run(out.path)


def _driver_run(tmp_path, family):
    smu = build_smu(load_cell(CELL), time_per_read_s=READ_S, speed=None)
    server = ScpiServer(smu, family, port=0)
    serve_in_thread(server)
    try:
        station = tmp_path / "station.yaml"
        station.write_text(
            f"name: {family} via sim serve\nclock: virtual\ninstruments:\n  cycler:\n"
            f"    driver: {family}\n    address: TCPIP::127.0.0.1::{server.port}::SOCKET\n"
            "    ranges: {max_current_a: 1.05, max_voltage_v: 5.0, min_voltage_v: 0.0}\n"
            "    calibration_due: 2027-01-31\n")
        out = start_run(prepare(PROC, station_path=station, cell_ref=CELL),
                        results_root=tmp_path / "r")
    finally:
        server.shutdown()
        server.server_close()
    assert out.status == "completed", out.reason
    # The station clock followed the instrument: the server's virtual time is the run's time.
    return open_run(out.path), smu


@pytest.mark.parametrize("family", ["keithley-2400", "keithley-2450"])
def test_same_results_as_builtin_simulator(tmp_path, sim_run, family):
    run, smu = _driver_run(tmp_path, family)
    ident = run.meta["station"]["instruments"]["cycler"]
    assert ident["serial"] == f"LABCTL-SIM-{family[-4:]}"
    assert ident["calibration_due"] == "2027-01-31"
    s_sim, s_drv = sim_run.steps, run.steps
    assert list(s_drv["step_index"]) == list(s_sim["step_index"])
    for col in ("duration_s",):
        assert np.allclose(s_drv[col], s_sim[col], atol=T_TOL), (s_drv[col], s_sim[col])
    # Charge moved per step: within |I| x one reading period.
    for col in ("charge_capacity_ah", "discharge_capacity_ah"):
        assert np.allclose(s_drv[col], s_sim[col], atol=0.5 * 2 * READ_S / 3600), col
    assert math.isclose(float(s_drv["discharge_capacity_ah"].iloc[1]), 0.5 * 180 / 3600, rel_tol=2e-3)
    # Logged voltages at the same step times (1 s logging on both sides).
    ts, td = sim_run.timeseries, run.timeseries
    for k in s_sim["step_index"]:
        a = ts[ts["step_index"] == k]
        b = td[td["step_index"] == k]
        t_a = a["test_time_s"].to_numpy() - a["test_time_s"].iloc[0]
        t_b = b["test_time_s"].to_numpy() - b["test_time_s"].iloc[0]
        inside = t_a <= t_b[-1]
        v_b = np.interp(t_a[inside], t_b, b["voltage_v"].to_numpy())
        dv = np.abs(v_b - a["voltage_v"].to_numpy()[inside])
        assert dv.max() <= V_TOL, (k, dv.max())
        i_b = np.interp(t_a[inside][1:-1], t_b, b["current_a"].to_numpy())
        assert np.allclose(i_b, a["current_a"].to_numpy()[inside][1:-1], atol=1e-6), k
    # And the truth: the simulated cell behind the server lost/gained what the driver counted.
    assert abs(td["test_time_s"].iloc[-1] - ts["test_time_s"].iloc[-1]) <= 5 * T_TOL
