"""The Start form: fields from the declarations, and the server never starting a run that
does not pass `labctl validate` (whatever the browser sends)."""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
import threading
import time
import warnings
from datetime import datetime
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


def _plan(c: TestClient, plan_id: str, timeout_s: float = 60.0) -> dict:
    """Ask for the plan until it is ready, as the browser does."""
    deadline = time.monotonic() + timeout_s
    while True:
        r = c.get(f"/api/plan/{plan_id}").json()
        if r["state"] != "planning":
            return r
        assert time.monotonic() < deadline, "the plan did not come"
        time.sleep(0.2)


def test_check_shows_labctl_plans_plan_next_to_start(tmp_path):
    """A passing Check names the plan `labctl plan --json` makes in the background: a rest
    and a timed 1C discharge take exactly their times, and the discharge moves C x t."""
    procs = tmp_path / "procs"
    procs.mkdir()
    (procs / "short.yaml").write_text(
        "name: short\nsteps:\n  - Rest for 10 min\n  - Discharge at 1C for 30 s\n")
    c = client(tmp_path / "results", procs)
    body = {"procedure": "short.yaml", "station": "sim.yaml", "cell": "lfp-2p2ah", "params": {}}
    r = c.post("/api/check", json=body, headers={"X-Labctl-Token": TOKEN}).json()
    assert r["ok"] is True and r["plan_id"]
    assert r["estimate"]["line"].startswith("Rough estimate: 10 min 30 s, ")
    state = _plan(c, r["plan_id"])
    assert state["state"] == "ready"
    plan = state["plan"]
    summary = plan["summary"]
    assert summary["outcome"] == "completed, no warnings"
    assert summary["duration"] == "10 min 30 s"
    end = datetime.fromisoformat(summary["expected_end"])
    assert end.utcoffset() is not None  # the instant with its offset, for the browser
    assert abs(end.timestamp() - (time.time() + 630)) < 60
    rest, discharge = plan["steps"]
    assert (rest["text"], rest["path"], rest["duration"]) == ("Rest for 10 min", "steps[0]", "10 min")
    assert discharge["duration"] == "30 s" and discharge["ends"] == "time elapsed"
    assert discharge["ah_out"] == f"{2.2 * 30 / 3600:.3f}"
    # the smallest margin to the discharge-current limit: 1C = 2.2 A against 3C x 1.05
    m = {m["name"]: m for m in plan["margins"]}["discharge_current"]
    assert (m["limit"], m["closest"], m["margin"]) == ("6.93 A", "2.2 A", "4.73 A")
    # the same choice checked again: the plan made before, at once
    again = c.post("/api/check", json=body, headers={"X-Labctl-Token": TOKEN}).json()
    assert again["plan_id"] == r["plan_id"]
    assert c.get(f"/api/plan/{r['plan_id']}").json()["state"] == "ready"
    assert c.get("/api/plan/0123456789abcdef0123").status_code == 404


def test_defaults_are_shown_as_written(tmp_path):
    c = client(tmp_path / "results", REPO / "procedures")
    fields = {f["name"]: f for f in c.get("/api/parameters?procedure=cycle-life.yaml").json()["fields"]}
    assert fields["rpt_c_rate"]["default_text"] == "C/3"  # not 0.3333333333333333
    assert fields["cv_cutoff"]["default_text"] == "C/20"
    assert fields["cycles_per_rpt"]["default_text"] == "50"
    # a C-rate written so is what --param takes: the check passes with it
    body = {"procedure": "capacity.yaml", "station": "sim.yaml", "cell": "lfp-2p2ah",
            "params": {"c_rate": "C/3"}}
    r = c.post("/api/check", json=body, headers={"X-Labctl-Token": TOKEN}).json()
    assert r["ok"] is True and "--param c_rate=C/3" in r["command"]


def test_only_station_files_are_offered(tmp_path):
    c = client(tmp_path / "results", REPO / "procedures")
    page = c.get("/start").text
    assert 'value="sim.yaml"' in page and 'value="bench-a.yaml"' in page
    # a pyvisa-sim device file lives beside the stations but is not one
    assert (REPO / "instruments" / "sim-devices.yaml").is_file()
    assert "sim-devices.yaml" not in page


def test_a_refusal_names_its_file_and_readable_numbers(tmp_path):
    c = client(tmp_path / "results", REPO / "procedures")
    body = {"procedure": "examples/centuries.yaml", "station": "sim.yaml", "cell": "lfp-2p2ah",
            "params": {}}
    r = c.post("/api/check", json=body, headers={"X-Labctl-Token": TOKEN}).json()
    assert r["ok"] is False
    (problem,) = r["problems"]
    assert problem["file"] == str(REPO / "procedures" / "examples" / "centuries.yaml")
    assert problem["message"].startswith("refused: it would run 3.17 × 10⁴ years")
    assert "2 × 10¹² samples" in problem["message"] and "e+" not in problem["message"]
    assert "labctl plan shows" not in problem["message"]
    # the plan is made all the same: it shows why
    plan = _plan(c, r["plan_id"])["plan"]
    assert plan["summary"]["outcome"].startswith("refused by labctl validate and run")
    assert plan["summary"]["expected_end"] is None


LONG_PY = """
NAME = "long"
PARAMETERS = {"n": {"default": 20000, "min": 1, "max": 10000000, "type": "int"}}


def procedure(ctx):
    for _ in range(ctx.params["n"]):
        yield ctx.step("Rest for 10 s")
"""


def test_a_long_check_holds_up_no_other_request(tmp_path):
    """A Python procedure the quick plan follows step by step: validate stops planning
    after its budget (the rough estimate says "more than", and has no end time), and
    meanwhile the console answers other requests at once (the check is another process)."""
    procs = tmp_path / "procs"
    procs.mkdir()
    (procs / "long.py").write_text(LONG_PY)
    c = client(tmp_path / "results", procs)
    # far more steps than any machine plans in 3 s
    body = {"procedure": "long.py", "station": "sim.yaml", "cell": "lfp-2p2ah",
            "params": {"n": "2000000"}}
    out: dict = {}

    def check():
        started = time.monotonic()
        out["reply"] = c.post("/api/check", json=body, headers={"X-Labctl-Token": TOKEN}).json()
        out["took_s"] = time.monotonic() - started

    answered_meanwhile = 0  # GET /runs answered while the check was still under way
    try:
        with c:
            cpu_before = resource.getrusage(resource.RUSAGE_SELF)
            thread = threading.Thread(target=check)
            thread.start()
            time.sleep(0.8)  # the check is under way (its child planning)
            slowest = 0.0
            while thread.is_alive():
                started = time.monotonic()
                assert c.get("/runs").status_code == 200
                slowest = max(slowest, time.monotonic() - started)
                answered_meanwhile += thread.is_alive()
                time.sleep(0.1)
            thread.join()
            cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        c.app.state.plans.close()  # the passing check's plan: minutes of CPU if left running
    assert out["took_s"] > 2.5  # the quick plan's 3 s budget
    # ... of which this process (the console's) spent next to nothing: a child planned
    cpu_s = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    assert cpu_s < 1.0, f"the console itself spent {cpu_s:.2f} s of CPU on the check"
    print(f"check {out['took_s']:.2f} s; console CPU meanwhile {cpu_s:.2f} s; "
          f"slowest GET /runs {slowest * 1000:.0f} ms")
    # not a timing goal: the console answered other requests while the check was running
    # (an in-process check held the GIL, and GET /runs waited for it to end)
    assert answered_meanwhile >= 3, f"{answered_meanwhile} GET /runs during a check"
    est = out["reply"]["estimate"]
    assert est["status"] == "truncated"
    assert est["line"].startswith("Rough estimate: more than ")
    assert "the quick plan stopped after 3 s" in est["line"]


def test_a_plan_nobody_asks_for_is_stopped(tmp_path, monkeypatch):
    from labctl.console import plans

    procs = tmp_path / "procs"
    procs.mkdir()
    (procs / "long.py").write_text(LONG_PY)
    monkeypatch.setattr(plans, "IDLE_S", 0.5)
    jobs = plans.PlanJobs()
    job_id = jobs.request(procs / "long.py", REPO / "instruments" / "sim.yaml", "lfp-2p2ah",
                          {"n": "2000000"})  # minutes of planning if left alone
    deadline = time.monotonic() + 20
    while jobs._running == 0:  # its child started
        assert time.monotonic() < deadline
        time.sleep(0.05)
    try:
        while jobs._running:  # and was stopped, well before its ~6 s of planning
            assert time.monotonic() < deadline, "an abandoned plan kept running"
            time.sleep(0.05)
        while job_id in jobs._jobs:  # then forgotten (read without polling: a poll is a use)
            assert time.monotonic() < deadline, "an abandoned plan was kept"
            time.sleep(0.05)
    finally:
        jobs.close()
    assert jobs.poll(job_id) is None


def test_a_plan_that_cannot_start_fails_instead_of_planning_for_ever(tmp_path, monkeypatch):
    from labctl.console import plans

    def no_fork(*args, **kwargs):
        raise BlockingIOError("Resource temporarily unavailable")

    monkeypatch.setattr(plans, "run_niced", no_fork)
    jobs = plans.PlanJobs()
    job_id = jobs.request(REPO / "procedures" / "quickstart.yaml",
                          REPO / "instruments" / "sim.yaml", "lfp-2p2ah", {})
    deadline = time.monotonic() + 10
    while (state := jobs.poll(job_id))["state"] == "planning":
        assert time.monotonic() < deadline, "the job stayed 'planning'"
        time.sleep(0.05)
    assert state["state"] == "failed" and "BlockingIOError" in state["error"]


def test_a_procedure_that_prints_is_checked_and_planned(tmp_path):
    """A Python procedure's print() must not break the Check's or the plan's JSON."""
    procs = tmp_path / "procs"
    procs.mkdir()
    (procs / "chatty.py").write_text(
        "NAME = 'chatty'\nREQUIRES = ['cycler']\n"
        "def procedure(ctx):\n    for i in range(2):\n        print('pulse', i)\n"
        "        yield ctx.step('Rest for 1 minute')\n")
    c = client(tmp_path / "results", procs)
    body = {"procedure": "chatty.py", "station": "sim.yaml", "cell": "lfp-2p2ah", "params": {}}
    try:
        r = c.post("/api/check", json=body, headers={"X-Labctl-Token": TOKEN}).json()
        assert r["ok"] is True, r["problems"]
        state = _plan(c, r["plan_id"])
        assert state["state"] == "ready", state
        assert state["plan"]["summary"]["duration"] == "2 min"
    finally:
        c.app.state.plans.close()


def test_control_characters_in_a_parameter_are_refused(tmp_path):
    c = client(tmp_path / "results", REPO / "procedures")
    body = {"procedure": "quickstart.yaml", "station": "sim.yaml", "cell": "lfp-2p2ah",
            "params": {"discharge_c": "1\u0000"}}
    for url in ("/api/check", "/api/start"):
        r = c.post(url, json=body, headers={"X-Labctl-Token": TOKEN})
        assert r.status_code in (200, 400)
        reply = r.json()  # check: its problems; start: the error, status 400
        message = reply["problems"][0]["message"] if "problems" in reply else reply["error"]
        assert reply["ok"] is False and "control characters" in message
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_a_plan_waiting_for_its_turn_says_so(tmp_path):
    from labctl.console import plans

    procs = tmp_path / "procs"
    procs.mkdir()
    (procs / "long.py").write_text(LONG_PY)
    jobs = plans.PlanJobs(max_parallel=1)
    station = REPO / "instruments" / "sim.yaml"
    try:
        first = jobs.request(procs / "long.py", station, "lfp-2p2ah", {"n": "2000000"})
        second = jobs.request(procs / "long.py", station, "lfp-2p2ah", {"n": "1999999"})
        deadline = time.monotonic() + 20
        while jobs._running == 0:  # the first one's child started
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert jobs.poll(first)["queued"] is False
        waiting = jobs.poll(second)
        assert waiting["state"] == "planning" and waiting["queued"] is True
    finally:
        jobs.close()
