"""`labctl show` prints quantities with units and a steps table that fits 80 and 120
columns; run ids are never cut in `ls`, `status` and the multi-channel table; `resume` and
`labctl.open_run` take the id prefixes `show` takes."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import labctl
from labctl.errors import LabctlError
from labctl.report.quantities import format_duration_words, format_quantity
from tests.support import REPO, json_out, labctl_cmd


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    proc = labctl_cmd("run", "procedures/quickstart.yaml", "--results", str(root), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    return root


def _run_dir(store: Path) -> Path:
    return next(p for p in store.iterdir() if p.is_dir())


def test_quantities_read_as_a_technician_writes_them():
    assert format_quantity("charge_capacity_ah", 1.9243195601580225) == "1.9243 Ah"
    assert format_quantity("coulombic_efficiency", 0.9999894255727496) == "99.999 %"
    assert format_quantity("duration_s", 7 * 3600 + 10 * 60 + 12) == "7 h 10 min"
    assert format_duration_words(42.04) == "42.0 s"
    assert format_duration_words(3 * 86400 + 4 * 3600 + 59) == "3 d 4 h"
    assert format_quantity("temperature_c", -1e-20) == "0.0 °C"
    # coin cells and pellets read in milli-units, zero stays as it was
    assert format_quantity("charge_capacity_ah", 0.004976893) == "4.977 mAh"
    assert format_quantity("mean_current_a", -0.000325) == "-0.325 mA"
    assert format_quantity("discharge_capacity_ah", 0.0) == "0.0000 Ah"
    assert format_quantity("charge_capacity_ah", 0.1) == "0.1000 Ah"


@pytest.mark.parametrize("columns", [80, 120])
def test_show_fits_the_terminal_with_units(store, columns):
    run = _run_dir(store)
    proc = labctl_cmd("show", run.name, "--results", str(store), env={"COLUMNS": str(columns)})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.rstrip("\n").splitlines()
    # Every line fits (the run directory line is a path: it may be longer, never cut).
    assert all(len(line.rstrip()) <= columns for line in lines if "run directory" not in line)
    assert re.search(r"^  charge capacity: \d+\.\d{4} Ah$", proc.stdout, re.M)
    assert re.search(r"^  coulombic efficiency: \d+\.\d{3} %$", proc.stdout, re.M)
    assert re.search(r"^  duration: \d+ h \d+ min$", proc.stdout, re.M)
    # One line per step: quickstart.yaml has 8 steps; each row starts with its number.
    steps = labctl.open_run(run).steps
    for row in steps.itertuples():
        starts = [line for line in lines if re.match(rf"^ *{row.step_index} +{row.cycle_index} ", line)]
        assert len(starts) == 1, (row.step_index, proc.stdout)
    assert "1.9243195601580225" not in proc.stdout and not re.search(r"\d\.\d{9}", proc.stdout)


def test_show_json_keeps_full_precision_and_full_step_text(store):
    run = _run_dir(store)
    proc = labctl_cmd("show", str(run), "--json", env={"COLUMNS": "80"})
    data = json_out(proc)
    r = labctl.open_run(run)
    assert data["summary"]["charge_capacity_ah"] == r.cycles.charge_capacity_ah.iloc[-1]
    assert [s["text"] for s in data["steps"]] == list(r.steps.text)


def _long_copy(store: Path, tmp_path: Path, name: str, **meta_changes) -> Path:
    root = tmp_path / "store"
    root.mkdir(exist_ok=True)
    copy = root / name
    shutil.copytree(_run_dir(store), copy)
    meta = json.loads((copy / "run.json").read_text())
    meta.update(run_id=name, **meta_changes)
    (copy / "run.json").write_text(json.dumps(meta))
    return root


LONG_ID = ("20261205-072247-conductivity-vs-temperature-LLZO-pellet-1-mm-Au-blocking-"
           "and-a-longer-name-9892")


@pytest.mark.parametrize("columns", [80, 120])
def test_ls_never_cuts_a_run_id(store, tmp_path, columns):
    root = _long_copy(store, tmp_path, LONG_ID)
    short = _run_dir(store).name
    shutil.copytree(_run_dir(store), root / short)
    proc = labctl_cmd("ls", "--results", str(root), env={"COLUMNS": str(columns)})
    assert proc.returncode == 0, proc.stderr
    assert any(LONG_ID in line for line in proc.stdout.splitlines()), proc.stdout
    assert any(short in line for line in proc.stdout.splitlines())


def test_status_never_cuts_a_run_id(store, tmp_path):
    # A run "running" in this (live) process: status lists it.
    root = _long_copy(store, tmp_path, LONG_ID, status="running", pid=os.getpid(),
                      host=socket.gethostname(), process=None)
    proc = labctl_cmd("status", "--results", str(root), env={"COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    assert any(LONG_ID in line for line in proc.stdout.splitlines()), proc.stdout


def test_multichannel_table_never_cuts_a_run_directory(tmp_path):
    results = tmp_path / "a-results-folder-with-a-rather-long-name-so-paths-run-past-80"
    proc = labctl_cmd("run", "procedures/quickstart.yaml", "--channel", "1", "--channel", "2",
                      "--results", str(results), "--processes", "1", env={"COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    for run in results.iterdir():
        if run.is_dir():
            assert any(str(run) in line for line in proc.stdout.splitlines()), proc.stdout


def test_open_run_takes_a_run_id_prefix(store):
    run = _run_dir(store)
    assert labctl.open_run(run.name[:15], results=store).path == run
    assert labctl.open_run(str(store / run.name[:15])).path == run
    with pytest.raises(LabctlError, match="did you mean"):
        labctl.open_run(run.name[:-1] + "x", results=store)


def test_resume_takes_a_run_id_prefix_results_and_no_progress(tmp_path):
    results = tmp_path / "results"
    env = dict(os.environ, LABCTL_SIM_SPEED="3000")
    proc = subprocess.Popen([sys.executable, "-m", "labctl.cli", "run", "procedures/quickstart.yaml",
                             "--results", str(results), "--no-progress"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        run_dir = None
        while time.monotonic() < deadline and run_dir is None:
            for status in results.glob("*/status.json"):
                try:
                    if json.loads(status.read_text()).get("step_index", 0) >= 2:
                        run_dir = status.parent
                except (OSError, ValueError):
                    pass
            time.sleep(0.05)
        assert run_dir is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    resumed = labctl_cmd("resume", run_dir.name[:20], "--results", str(results), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert f"run directory: {run_dir}" in resumed.stdout
    assert "status: completed" in resumed.stdout
    assert "t=" not in resumed.stdout  # no progress line


def test_show_of_an_eis_run_prints_its_spectra_not_zero_ah(eis_run):
    run, _ = eis_run
    proc = labctl_cmd("show", str(run), env={"COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    assert "  impedance spectra: 1" in proc.stdout
    assert "charge capacity" not in proc.stdout and "efficienc" not in proc.stdout
    assert json_out(labctl_cmd("show", str(run), "--json"))["results"]["n_spectra"] == 1


def test_summary_reads_nulls_from_parquet_as_missing():
    from labctl.store.run import summarize

    steps = {"step_index": [1], "cycle_index": [1], "end_kind": ["time"], "end_voltage_v": [None],
             "charge_capacity_ah": [0.0], "discharge_capacity_ah": [0.0], "end_time_s": [60.0]}
    cycles = {"cycle_index": [1], "charge_capacity_ah": [0.0], "discharge_capacity_ah": [0.0],
              "charge_energy_wh": [0.0], "discharge_energy_wh": [0.0],
              "coulombic_efficiency": [None], "energy_efficiency": [None]}
    s = summarize({"status": "completed"}, steps, cycles, 7)
    assert s["coulombic_efficiency"] is None and s["duration_s"] == 60.0


def test_an_ambiguous_prefix_names_a_readable_few(tmp_path):
    """A prefix of a big store can match thousands of runs: the message names ten and
    counts the rest, from `labctl show` and from `labctl.open_run` alike."""
    import labctl
    from labctl.errors import LabctlError

    store = tmp_path / "results"
    names = [f"20261206-0402{k:02d}-import-cell{k:04d}-abcd" for k in range(25)]
    for name in names:
        (store / name).mkdir(parents=True)
    proc = labctl_cmd("show", "2026", "--results", str(store))
    assert proc.returncode == 2
    assert ", ".join(names[:10]) + " and 15 more (give more of the id)" in proc.stderr
    assert names[10] not in proc.stderr
    with pytest.raises(LabctlError, match="and 15 more"):
        labctl.open_run("2026", results=store)
