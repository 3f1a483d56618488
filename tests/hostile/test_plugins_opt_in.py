"""Code and defaults come only from where the user said (issue 13 §3, High).

`*.py` files beside a station file were imported silently (also beside a default
station found in an ancestor folder such as a shared /tmp/instruments/), and a
cell preset in an ancestor folder silently replaced LFP's 3.65 V limit with 4.9 V.
"""

from __future__ import annotations

import hashlib
import json

from tests.support import REPO, json_out, labctl_cmd

MARKER_PLUGIN = '''
from pathlib import Path
Path(__file__).with_suffix(".imported").write_text("imported")

from labctl.plugins import DriverInfo, hookimpl
from labctl.drivers.sim_drivers import make_sim_cycler


@hookimpl
def labctl_drivers():
    return [DriverInfo("marker-cycler", ("cycler",), make_sim_cycler, "the sim cycler, renamed")]
'''
SIM_STATION = (REPO / "instruments" / "sim.yaml").read_text()
QUICKSTART = str(REPO / "procedures" / "quickstart.yaml")


def test_py_files_beside_a_station_are_not_imported_unless_listed(tmp_path):
    (tmp_path / "evil.py").write_text(MARKER_PLUGIN)
    station = tmp_path / "bench.yaml"
    station.write_text(SIM_STATION)
    proc = labctl_cmd("validate", QUICKSTART, "--station", str(station))
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "evil.imported").exists()
    assert "plugin" not in proc.stderr


def test_listed_plugins_are_loaded_printed_and_recorded(tmp_path):
    (tmp_path / "drv.py").write_text(MARKER_PLUGIN)
    station = tmp_path / "bench.yaml"
    station.write_text("name: marker\nplugins: [drv.py]\ninstruments:\n"
                       "  cycler: {driver: marker-cycler}\n")
    proc = labctl_cmd("run", QUICKSTART, "--station", str(station), "--results",
                      str(tmp_path / "r"), "--json", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "drv.imported").exists()
    assert f"loading plugin code {tmp_path / 'drv.py'}" in proc.stderr
    run = next(p for p in (tmp_path / "r").iterdir() if p.is_dir())
    meta = json.loads((run / "run.json").read_text())
    (plugin,) = meta["station"]["plugins"]
    assert plugin["file"] == str(tmp_path / "drv.py")
    assert plugin["sha256"] == hashlib.sha256((tmp_path / "drv.py").read_bytes()).hexdigest()
    assert (run / "inputs" / "plugin-drv.py").read_text() == MARKER_PLUGIN


def test_plugin_outside_the_station_folder_is_refused(tmp_path):
    (tmp_path / "drv.py").write_text(MARKER_PLUGIN)
    (tmp_path / "st").mkdir()
    station = tmp_path / "st" / "bench.yaml"
    station.write_text("plugins: [../drv.py]\n" + SIM_STATION)
    proc = labctl_cmd("validate", QUICKSTART, "--station", str(station), "--json")
    assert proc.returncode == 2
    (problem,) = json_out(proc)["problems"]
    assert problem["field"] == "plugins[0]" and problem["line"] == 1
    assert "leaves the station file's folder" in problem["message"]
    assert not (tmp_path / "drv.imported").exists()


def test_default_station_and_presets_never_come_from_a_parent_folder(tmp_path):
    # A shared ancestor (think /tmp) with a station, a driver beside it and a bad LFP preset.
    (tmp_path / "instruments").mkdir()
    (tmp_path / "instruments" / "sim.yaml").write_text("plugins: [evil.py]\n" + SIM_STATION)
    (tmp_path / "instruments" / "evil.py").write_text(MARKER_PLUGIN)
    cells = tmp_path / "fixtures" / "cells"
    cells.mkdir(parents=True)
    lfp = (REPO / "fixtures" / "cells" / "lfp-2p2ah.yaml").read_text()
    (cells / "lfp-2p2ah.yaml").write_text(lfp.replace("max_voltage_v: 3.65", "max_voltage_v: 4.9"))
    work = tmp_path / "work"
    work.mkdir()
    # PYTHONPATH: this checkout's labctl, run from a folder outside it.
    proc = labctl_cmd("validate", QUICKSTART, "--cell", "lfp-2p2ah", cwd=work,
                      env={"PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "instruments" / "evil.imported").exists()
    # The files used are printed: the checkout's, not the ancestor's.
    assert f"using {REPO / 'instruments' / 'sim.yaml'}" in proc.stderr
    assert f"from {REPO / 'fixtures' / 'cells' / 'lfp-2p2ah.yaml'}" in proc.stderr
    assert str(tmp_path / "fixtures") not in proc.stderr
