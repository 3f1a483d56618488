"""The ready qualification suites (tests/qualification) pass on the simulated bench, and
fail with a clear measurement report on a deliberately mis-calibrated simulated channel.

The suites run in a subprocess (`pytest tests/qualification --labctl-sim ...`), as a test
engineer runs them. The mis-calibrated channel has gain_error g = 1 %: it reports the
current it was told to source while the cell gets I / (1 + g), so the reference meter
sees an error of I g / (1 + g) -- that number is checked in the record.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
SIM_STATION = REPO / "instruments" / "example-qualification-sim.yaml"


def _pytest(tmp_path: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "tests/qualification", "-q", "-p", "no:cacheprovider",
         "--labctl-results", str(tmp_path / "results"), "--junitxml", str(tmp_path / "j.xml"),
         *options],
        cwd=REPO, capture_output=True, text=True, timeout=300)


def _records(tmp_path: Path) -> dict:
    (folder,) = (tmp_path / "results" / "qualification").iterdir()
    return json.loads((folder / "session.json").read_text()), folder


def test_suites_pass_on_the_simulated_bench(tmp_path):
    proc = _pytest(tmp_path, "--labctl-sim")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " passed" in proc.stdout and "skipped" not in proc.stdout.splitlines()[-1]
    summary, folder = _records(tmp_path)
    devices = summary["devices"]
    assert set(devices) == {"cycler", "chamber", "pstat"}
    cycler = devices["cycler"]
    assert cycler["verdict"] == "pass"
    assert cycler["identity"]["serial"] == "SIM-SMU-0001"
    assert cycler["calibration_due"] == "2027-06-30"  # from the station file
    names = {m["name"] for t in cycler["tests"] for m in t["measurements"]}
    assert {"current_error[-1 A]", "voltage_error[+0 A]", "current_rise_time_10_90",
            "cv_regulation_pp"} <= names
    assert all(t["outcome"] == "passed" for t in cycler["tests"])
    assert cycler["runs"] and Path(cycler["runs"][0], "run.json").is_file()
    # One JSON per device under test, and the HTML report.
    assert (folder / "cycler-SIM-SMU-0001.json").is_file()
    html = (folder / "report.html").read_text()
    assert "SIM-SMU-0001" in html and "current_error[-0.1 A]" in html
    # JUnit XML carries the measurements and identities as properties.
    props = {p.get("name"): p.get("value") for p in ET.parse(tmp_path / "j.xml").iter("property")}
    assert props["labctl.cycler.serial"] == "SIM-SMU-0001"
    assert props["labctl.current_error[-1 A]"].endswith("pass")


def test_mis_calibrated_channel_fails_with_a_measurement_report(tmp_path):
    station = tmp_path / "miscal.yaml"
    text = SIM_STATION.read_text().replace("    time_per_read_s: 0.1\n",
                                           "    time_per_read_s: 0.1\n    gain_error: 0.01\n")
    assert "gain_error" in text
    station.write_text(text)
    proc = _pytest(tmp_path, "--labctl-sim", "--labctl-station", str(station))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert "measurement current_error[-0.1 A] = " in out
    assert "is outside its limits [-0.00015, 0.00015] A" in out
    assert "cycler: SIM-SMU serial SIM-SMU-0001 (calibration due 2027-06-30): FAIL" in out
    summary, _ = _records(tmp_path)
    cycler = summary["devices"]["cycler"]
    assert cycler["verdict"] == "fail"
    m = {m["name"]: m for t in cycler["tests"] for m in t["measurements"]}
    err = m["current_error[-0.1 A]"]
    assert err["verdict"] == "fail" and err["unit"] == "A"
    assert abs(err["value"] - (-0.1 * 0.01 / 1.01)) < 1e-6
    # The chamber and the potentiostat are not affected.
    assert summary["devices"]["chamber"]["verdict"] == "pass"
    assert summary["devices"]["pstat"]["verdict"] == "pass"


def test_without_options_the_suites_are_skipped_with_the_reason(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pytest", "tests/qualification", "-q", "-rs",
                           "-p", "no:cacheprovider"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout
    assert "give --labctl-station FILE or --labctl-sim" in proc.stdout
    assert " passed" not in proc.stdout and "skipped" in proc.stdout
