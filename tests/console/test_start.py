"""The Start form: fields from the declarations, and the server never starting a run that
does not pass `labctl validate` (whatever the browser sends)."""

from __future__ import annotations

import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the console extra is not installed: pip install -e '.[console]'")
pytest.importorskip("httpx", reason="starlette's test client needs httpx")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from labctl.console.app import ConsoleConfig, create_app  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TOKEN = "form-token-0123456789abcdef"


def client(results: Path, procedures: Path) -> TestClient:
    config = ConsoleConfig(results=results, procedures=procedures,
                           stations=REPO / "instruments", form_token=TOKEN)
    return TestClient(create_app(config), base_url="http://127.0.0.1:8765")


def test_form_fields_are_the_procedures_declarations(tmp_path):
    c = client(tmp_path / "results", REPO / "procedures")
    fields = {f["name"]: f for f in c.get("/api/parameters?procedure=capacity.yaml").json()["fields"]}
    # procedures/capacity.yaml: c_rate {default: C/3, min: 0.02, max: 2, unit: C}, rest_h in h
    assert set(fields) == {"c_rate", "cv_cutoff", "rest_h"}
    assert fields["c_rate"]["unit"] == "C" and fields["c_rate"]["min"] == 0.02
    assert fields["c_rate"]["max"] == 2 and fields["c_rate"]["default"] == pytest.approx(1 / 3)
    assert fields["rest_h"]["unit"] == "h" and fields["rest_h"]["max"] == 24
    assert fields["cv_cutoff"]["description"] == "end of the CV hold"


def test_python_procedure_parameters_are_read_without_running_the_file(tmp_path):
    procs = tmp_path / "procs"
    procs.mkdir()
    marker = tmp_path / "ran"
    (procs / "pulse.py").write_text(
        f"open({str(marker)!r}, 'w').write('executed')\n"
        "PARAMETERS = {'pulse_c': {'default': 1.0, 'unit': 'C', 'min': 0.1, 'max': 3}}\n"
        "def procedure(ctx):\n    yield ctx.step('Rest for 1 s')\n")
    c = client(tmp_path / "results", procs)
    fields = c.get("/api/parameters?procedure=pulse.py").json()["fields"]
    assert [(f["name"], f["unit"], f["min"], f["max"]) for f in fields] == [("pulse_c", "C", 0.1, 3)]
    assert not marker.exists()


def test_start_refuses_what_validate_refuses_even_without_check(tmp_path):
    procs = tmp_path / "procs"
    procs.mkdir()
    (procs / "high.yaml").write_text("name: high\nsteps:\n  - Charge at 1C until 4.5 V\n")
    results = tmp_path / "results"
    c = client(results, procs)
    body = {"procedure": "high.yaml", "station": "sim.yaml", "cell": "lfp-2p2ah", "params": {}}
    r = c.post("/api/start", json=body, headers={"X-Labctl-Token": TOKEN})
    assert r.status_code == 400
    problems = r.json()["problems"]
    assert problems and problems[0]["line"] == 3 and "4.5 V" in problems[0]["message"]
    assert not results.exists() or not any(results.iterdir())  # nothing started
    # an out-of-range parameter: the declaration's range, from validate
    (procs / "rate.yaml").write_text(
        "name: rate\nparameters:\n  c: {default: 1, min: 0.1, max: 2, unit: C}\n"
        "steps:\n  - Discharge at {c}C for 1 s\n")
    r = c.post("/api/check", json={**body, "procedure": "rate.yaml", "params": {"c": "5"}},
               headers={"X-Labctl-Token": TOKEN})
    assert r.json()["ok"] is False
    assert "above the maximum 2" in r.json()["problems"][0]["message"]
    r = c.post("/api/start", json={**body, "cell": "no-such-cell"}, headers={"X-Labctl-Token": TOKEN})
    assert r.status_code == 400 and "unknown cell" in r.json()["error"]


def test_a_busy_port_is_a_clear_message(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "labctl.cli", "console", "--port", str(port),
                            "--results", str(tmp_path)], cwd=REPO, capture_output=True,
                           text=True, timeout=60)
    assert r.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in r.stderr and "Traceback" not in r.stderr


def test_check_shows_the_plan_next_to_start(tmp_path):
    """A passing Check carries the plan (labctl plan on the simulated twin): a rest and a
    timed 1C discharge take exactly their times, and the discharge moves C x t of charge."""
    procs = tmp_path / "procs"
    procs.mkdir()
    (procs / "short.yaml").write_text(
        "name: short\nsteps:\n  - Rest for 10 min\n  - Discharge at 1C for 30 s\n")
    c = client(tmp_path / "results", procs)
    body = {"procedure": "short.yaml", "station": "sim.yaml", "cell": "lfp-2p2ah", "params": {}}
    r = c.post("/api/check", json=body, headers={"X-Labctl-Token": TOKEN}).json()
    assert r["ok"] is True
    plan = r["estimate"]["plan"]
    assert plan["status"] == "completed" and plan["run_duration_s"] == pytest.approx(630.0)
    rest, discharge = plan["steps"]
    assert rest["text"] == "Rest for 10 min" and rest["duration_s"] == pytest.approx(600.0)
    assert discharge["duration_s"] == pytest.approx(30.0)
    assert discharge["discharge_capacity_ah"] == pytest.approx(2.2 * 30 / 3600, rel=1e-3)
    assert list(discharge["end_reasons"]) and all(k.startswith("time") for k in discharge["end_reasons"])
    # the smallest margin to the discharge-current limit: 1C = 2.2 A against 3C x 1.05
    m = plan["margins"]["discharge_current"]
    assert m["value"] == pytest.approx(2.2, rel=1e-3) and m["limit"] == pytest.approx(6.93)
    assert m["margin"] == pytest.approx(6.93 - 2.2, rel=1e-3)
    assert r["estimate"]["text"].startswith("estimate: 10 min 30 s")
