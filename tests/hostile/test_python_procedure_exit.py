"""A Python procedure calling sys.exit() ends its run as `faulted`, with a reason and tables.

Issue 13 §3: `sys.exit(0)` inside a procedure left `labctl run` exiting 0 with the run
`interrupted`, no reason, no tables.
"""

from __future__ import annotations

import json

import pandas as pd

from tests.support import json_out, labctl_cmd

EXITS_AFTER_ONE_STEP = '''
import sys


def procedure(ctx):
    yield ctx.step("Rest for 1 min")
    sys.exit(0)
'''


def test_sys_exit_inside_the_procedure_faults_the_run_from_the_command_line(tmp_path):
    proc_file = tmp_path / "exits.py"
    proc_file.write_text(EXITS_AFTER_ONE_STEP)
    proc = labctl_cmd("run", str(proc_file), "--results", str(tmp_path / "r"), "--json",
                      "--no-progress")
    assert proc.returncode == 1, proc.stderr  # the run failed; not 0
    out = json_out(proc)
    assert out["status"] == "faulted" and "sys.exit(0)" in out["reason"]


def test_sys_exit_inside_the_procedure_faults_the_run(tmp_path):
    # The engine's own guard, in-process: the run is faulted with its reason and tables.
    from labctl.engine.session import prepare, start_run

    proc_file = tmp_path / "exits.py"
    proc_file.write_text(EXITS_AFTER_ONE_STEP)
    outcome = start_run(prepare(str(proc_file)), results_root=tmp_path / "r")
    assert outcome.status == "faulted" and "sys.exit(0)" in outcome.reason
    run = next(p for p in (tmp_path / "r").iterdir() if p.is_dir())
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "faulted" and "sys.exit" in meta["reason"]
    steps = pd.read_parquet(run / "steps.parquet")
    assert list(steps["text"]) == ["Rest for 1 min"]


def test_sys_exit_at_import_is_a_validation_error(tmp_path):
    proc_file = tmp_path / "exits_early.py"
    proc_file.write_text("import sys\nsys.exit(3)\n")
    proc = labctl_cmd("validate", str(proc_file))
    assert proc.returncode == 2, proc.stderr
    assert "sys.exit(3)" in proc.stderr and "Traceback" not in proc.stderr
