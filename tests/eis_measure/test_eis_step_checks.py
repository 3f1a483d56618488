"""eis and pressure steps: located validation errors (exit 2 via the CLI), loops, analyze on files."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from labctl.analysis.eis.command import eis_command
from labctl.engine.session import prepare, start_run
from labctl.errors import ValidationError
from labctl.store.run import open_run
from tests.support import REPO, json_out, labctl_cmd

STATION = REPO / "instruments" / "sim.yaml"


def _write(tmp_path, name, body):
    p = tmp_path / name
    p.write_text(textwrap.dedent(body))
    return p


def test_bad_sweeps_are_located_errors_with_exit_2(tmp_path):
    proc = _write(tmp_path, "bad.yaml", """\
        name: bad
        steps:
          - eis: {start: 20 MHz, stop: 1 Hz}
          - eis: {amplitude: 5 V}
          - eis: {mode: FOO}
          - eis: {mode: GEIS, stop: 10 Hz}
          - eis: {start: 1 kHz, stop: 1 kHz}
          - eis: {mode: PEIS, amplitude: 10 mV, dc_bias: 3.0 V}
        """)
    res = labctl_cmd("run", str(proc), "--json", "--results", str(tmp_path / "r"))
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    problems = json_out(res)["problems"]
    by_line = {}
    for p in problems:
        assert p["file"].endswith("bad.yaml")
        by_line.setdefault(p["line"], []).append(p["message"])
    text = {line: " ".join(msgs) for line, msgs in by_line.items()}
    assert "max_frequency_hz 7 MHz" in text[3] and "allowed" in text[3]
    assert "max_amplitude_v 1 V" in text[4]
    assert "mode must be one of PEIS, GEIS" in text[5]
    assert "needs 'amplitude'" in text[6]  # GEIS has no default amplitude
    assert "must differ" in text[7]
    # 3.0 V DC on an LFP cell (2.5..3.65 V) is fine; the window check must not fire here
    assert 8 not in text
    # the frequency problem points at the `start` key (its column), not just the line
    start_problem = next(p for p in problems if p["line"] == 3)
    assert start_problem["field"].endswith("start")


def test_dc_bias_outside_the_cell_window_and_pressure_limits(tmp_path):
    proc = _write(tmp_path, "bias.yaml", """\
        name: bias
        steps:
          - eis: {dc_bias: 3.7 V}
          - pressure: {setpoint: 60 MPa}
          - pressure: {setpoint: 120 MPa, ramp: 5 MPa/s}
          - pressure: {setpoint: 5 MPa, ramp: fast}
        """)
    with pytest.raises(ValidationError) as info:
        prepare(proc, station_path=STATION, cell_ref="ssb-bulk")
    msgs = {p.line: [] for p in info.value.problems}
    for p in info.value.problems:
        msgs[p.line].append(p.message)
    assert any("voltage window 2..3 V" in m for m in msgs[3])
    assert any("max stack pressure 50 MPa" in m for m in msgs[4])
    assert any("outside the press's range" in m for m in msgs[5])
    assert any("max_ramp_mpa_per_s 2" in m for m in msgs[5])
    assert any("pressure per time" in m for m in msgs[6])


def test_station_without_a_pstat_is_refused_before_the_run(tmp_path):
    station = _write(tmp_path, "station.yaml", """\
        name: no pstat
        clock: virtual
        instruments:
          cycler: {driver: sim-cycler}
        """)
    proc = _write(tmp_path, "p.yaml", """\
        name: p
        steps:
          - eis: {}
        """)
    with pytest.raises(ValidationError) as info:
        prepare(proc, station_path=station)
    assert "needs a pstat" in str(info.value.problems[0])
    assert info.value.problems[0].line == 3


def test_eis_and_pressure_inside_a_repeat_loop(tmp_path):
    proc = _write(tmp_path, "loop.yaml", """\
        name: loop
        steps:
          - repeat: 3
            steps:
              - Discharge at 1C for 3 min
              - pressure: {setpoint: 15 MPa, hold: 20 s, poll: 5 s}
              - eis: {start: 1 kHz, stop: 1 Hz, points_per_decade: 3, rest: 1 min}
        """)
    out = start_run(prepare(proc, station_path=STATION, cell_ref="ssb-bulk"),
                    results_root=tmp_path / "results")
    assert out.status == "completed", out.reason
    run = open_run(out.path)
    spectra = run.records("spectra")
    assert spectra.step_index.nunique() == 3
    assert sorted(spectra.cycle_index.unique()) == [1, 2, 3]
    # each iteration took 5 % of the 1 Ah cell: DC voltage (OCV) lower each time
    volts = spectra.groupby("step_index").voltage_v.mean().to_numpy()
    assert (np.diff(volts) < 0).all()
    steps = run.steps
    eis_rows = steps[steps.kind == "eis"]
    # duration = 1 min rest + the sweep (1 kHz..1 Hz, 10 points, 2 periods each + overhead)
    f = np.logspace(3, 0, 10)
    assert eis_rows.duration_s.iloc[0] == pytest.approx(60 + (2 / f).sum() + 10 * 0.05, abs=0.1)
    np.testing.assert_allclose(spectra.pressure_mpa, 15.0)


def test_analyze_eis_on_a_csv_and_a_malformed_file(tmp_path):
    f = np.logspace(5, -1, 40)
    w = 2 * np.pi * f
    z = 0.05 + 0.1 / (1 + 0.1 * 0.2 * (1j * w) ** 0.9) + 0.01 * (1 - 1j) / np.sqrt(w)
    good = tmp_path / "cell.csv"
    rows = "\n".join(f"{a:.10g},{b.real:.10g},{b.imag:.10g}" for a, b in zip(f, z, strict=True))
    good.write_text("frequency_hz,z_real_ohm,z_imag_ohm\n" + rows + "\n")
    # the `labctl analyze eis` command itself (in-process: fast, and independent of other
    # analyses registered under `labctl analyze`)
    cmd = eis_command()
    store = tmp_path / "results"
    res = CliRunner().invoke(cmd, [str(good), "--circuit", "R0-p(R1,CPE1)-W1", "--json",
                                   "--no-plots", "--results", str(store)])
    assert res.exit_code == 0, res.output
    params = json.loads(res.stdout)["summary"]["parameters"]
    assert params["R0"]["first"] == pytest.approx(0.05, rel=1e-3)
    assert params["R1"]["first"] == pytest.approx(0.1, rel=1e-3)
    # a plain file is imported into the results store first; results go with that run
    folder = Path(json.loads(res.stdout)["folder"])
    assert folder.parent.parent.parent == store and (folder / "fits.parquet").is_file()
    assert not (tmp_path / "cell-eis").exists()
    bad = tmp_path / "bad.csv"
    bad.write_text("frequency_hz,z_real_ohm,z_imag_ohm\n1000,0.1,-0.01\n100,abc,-0.02\n")
    res = CliRunner().invoke(cmd, [str(bad), "--json", "--results", str(store)])
    assert res.exit_code == 2
    problems = json.loads(res.output)["problems"]
    assert problems[0]["file"].endswith("bad.csv") and problems[0]["line"] == 3
