"""The user's commands on a BMS station: `labctl run` (its planning pass opens a copy of the
station without the file, so the DBC and cell paths must already be resolved) and
`labctl plan` (runs the BMS steps on the twin: nothing may be written anywhere)."""

from __future__ import annotations

import json

from bms_helpers import VEHICLE

from tests.support import REPO, labctl_cmd

PROC = REPO / "procedures" / "bms" / "can-timing.yaml"
ENV = {"PYTHONPATH": str(REPO)}  # this checkout's labctl, from another working folder


def test_run_from_the_command_line_finds_the_dbc(tmp_path):
    out = labctl_cmd("run", str(PROC), "--station", str(VEHICLE), "--results", str(tmp_path),
                     "--no-progress", cwd=tmp_path, env=ENV)  # another folder: nothing relative to it
    assert out.returncode == 0, out.stderr
    assert "BMS checks: 30 pass, 0 fail" in out.stdout
    run = next(p for p in tmp_path.iterdir() if (p / "run.json").is_file())
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    assert (run / "can" / "vehicle-bms.dbc").is_file()


def test_plan_runs_bms_steps_without_writing(tmp_path, monkeypatch):
    out = labctl_cmd("plan", str(PROC), "--station", str(VEHICLE), cwd=tmp_path, env=ENV)
    assert out.returncode == 0, out.stderr
    assert "not a run directory" not in out.stdout + out.stderr  # the report step faulted
    assert list(tmp_path.iterdir()) == []
    # in the process: the plan's engine has no run directory, so no frame log is written
    # (it used to go to the planning engine's placeholder path, /nonexistent/labctl-plan)
    import labctl.can.framelog as framelog
    from labctl.engine.session import prepare
    from labctl.plan import plan_prepared

    written = []
    monkeypatch.setattr(framelog, "save_step_log", lambda *a, **k: written.append(a[0]))
    report = plan_prepared(prepare(PROC, station_path=VEHICLE))
    assert report is not None and written == []
