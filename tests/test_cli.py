"""The `labctl` command, exercised as a subprocess the way a technician runs it."""

from __future__ import annotations

import numpy as np
import pandas as pd

import labctl
from tests.support import REPO, json_out, labctl_cmd


def test_quickstart_runs_and_summarises(tmp_path):
    proc = labctl_cmd("run", "procedures/quickstart.yaml", "--results", str(tmp_path), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "run directory:" in proc.stdout
    assert "discharge capacity" in proc.stdout and "coulombic efficiency" in proc.stdout
    runs = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len(runs) == 1
    run = labctl.open_run(runs[0])
    assert run.meta["status"] == "completed"
    ts = run.timeseries
    assert {"test_time_s", "unix_time_s", "step_index", "cycle_index", "voltage_v", "current_a",
            "temperature_c", "charge_capacity_ah", "discharge_capacity_ah", "charge_energy_wh",
            "discharge_energy_wh"} <= set(ts.columns)
    # Never past the LFP preset's limits (3.65 V / 2.5 V), allowing for measurement noise.
    assert ts.voltage_v.max() <= 3.65 + 0.002
    assert ts.voltage_v.min() >= 2.5 - 0.002
    # The discharge capacity in the summary equals the integral of the logged discharge
    # current (trapezoid over 10 s logging of a constant current is exact up to noise).
    dis = ts[ts.current_a < -0.01]
    steps = run.steps
    dis_step = steps[steps.kind == "discharge"].iloc[-1]  # the measured cycle's discharge
    seg = ts[ts.step_index == dis_step.step_index]
    integral = -np.trapezoid(seg.current_a, seg.test_time_s) / 3600
    assert abs(dis_step.discharge_capacity_ah - integral) < 0.002 * integral
    assert len(dis) > 10
    # 1C on a 2.2 Ah cell: a full discharge moves most of the rated capacity.
    assert 1.5 < dis_step.discharge_capacity_ah < 2.4


def test_run_json_output_and_ls_show_export(tmp_path):
    proc = labctl_cmd("run", "procedures/quickstart.yaml", "--results", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json_out(proc)
    assert out["status"] == "completed" and out["ok"] is True
    run_dir = out["run_dir"]

    listed = json_out(labctl_cmd("ls", "--results", str(tmp_path), "--json", check=True))
    assert [r["status"] for r in listed["runs"]] == ["completed"]

    shown = json_out(labctl_cmd("show", run_dir, "--json", check=True))
    assert shown["summary"]["status"] == "completed"
    assert len(shown["steps"]) >= 5

    bdf = tmp_path / "run-bdf.csv"
    exported = labctl_cmd("export", run_dir, "--format", "bdf", "-o", str(bdf), "--json")
    assert exported.returncode == 0, exported.stderr
    df = pd.read_csv(bdf, comment="#")
    for name in ("Test Time / s", "Voltage / V", "Current / A"):
        assert name in df.columns
    ts = labctl.open_run(run_dir).timeseries
    assert np.allclose(df["Voltage / V"].to_numpy(), ts.voltage_v.to_numpy())

    bad = labctl_cmd("export", run_dir, "--format", "xlsx", "-o", str(tmp_path / "x"))
    assert bad.returncode == 2
    assert "csv" in bad.stderr and "bdf" in bad.stderr


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_validation_rejects_overcharge_before_any_run(tmp_path):
    proc_file = _write(tmp_path, "over.yaml", "name: over\nsteps:\n  - Charge at 1C until 4.2 V\n")
    results = tmp_path / "results"
    for command in ("validate", "run"):
        proc = labctl_cmd(command, str(proc_file), "--cell", "lfp-2p2ah", "--results", str(results)
                          ) if command == "run" else labctl_cmd(command, str(proc_file))
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr
        assert f"{proc_file}:3:" in proc.stderr  # file and line of the offending step
        assert "3.65" in proc.stderr  # what is allowed
    assert not results.exists() or not any(results.iterdir())  # nothing was started


def test_validation_json_lists_problems(tmp_path):
    proc_file = _write(tmp_path, "bad.yaml", "name: bad\nsteps:\n  - Charge at 1 Q until 3.6 V\n")
    proc = labctl_cmd("validate", str(proc_file), "--json")
    assert proc.returncode == 2
    problems = json_out(proc)["problems"]
    assert problems and problems[0]["line"] == 3 and problems[0]["file"] == str(proc_file)
    assert "Q" in problems[0]["message"]


def test_yaml_python_tag_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    proc_file = _write(
        tmp_path, "evil.yaml",
        f"name: evil\nsteps: !!python/object/apply:os.system ['touch {marker}']\n",
    )
    proc = labctl_cmd("validate", str(proc_file))
    assert proc.returncode == 2
    assert "tag" in proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists()


def test_bad_param_and_missing_files_exit_2(tmp_path):
    proc = labctl_cmd("validate", "procedures/cycling.yaml", "--param", "nope=1")
    assert proc.returncode == 2 and "nope" in proc.stderr
    proc = labctl_cmd("validate", str(tmp_path / "missing.yaml"))
    assert proc.returncode == 2 and "not found" in proc.stderr
    proc = labctl_cmd("validate", "procedures/quickstart.yaml", "--cell", "no-such-cell")
    assert proc.returncode == 2 and "lfp-2p2ah" in proc.stderr  # lists the presets


def test_plugins_lists_builtins_and_local_files(tmp_path):
    station = _write(tmp_path, "bench.yaml", "plugins: [my_driver.py]\n"
                     + (REPO / "instruments" / "sim.yaml").read_text())
    _write(tmp_path, "my_driver.py", '''
from labctl.plugins import DriverInfo, hookimpl

@hookimpl
def labctl_drivers():
    return [DriverInfo("my-meter", ("thermometer",), lambda binding, ctx: None, "a lab's own meter")]
''')
    out = json_out(labctl_cmd("plugins", "--station", str(station), "--json", check=True))
    by_name = {p["name"]: p for p in out["plugins"]}
    assert by_name["sim-cycler"]["source"].startswith("builtin")
    assert by_name["bdf"]["kind"] == "exporter"
    assert by_name["my-meter"]["source"] == f"file: {tmp_path / 'my_driver.py'}"
