"""--json output is JSON alone, even when a Python procedure prints (a review found
`labctl plan --json` printing "pulse 0" before its JSON, which broke the console's plan)."""

from __future__ import annotations

import json

import pytest

from tests.support import labctl_cmd

CHATTY = ("NAME = 'chatty'\nREQUIRES = ['cycler']\n"
          "def procedure(ctx):\n    for i in range(2):\n        print('pulse', i)\n"
          "        yield ctx.step('Rest for 1 minute')\n")


@pytest.mark.parametrize("command", ["validate", "plan", "run", "run-channels"])
def test_a_procedures_prints_go_to_stderr_with_json(tmp_path, command):
    proc = tmp_path / "chatty.py"
    proc.write_text(CHATTY)
    extra = ("--results", str(tmp_path / "results")) if command.startswith("run") else ()
    if command == "run-channels":  # several channels: read and run by another path
        command, extra = "run", (*extra, "--channel", "1", "--channel", "2")
    done = labctl_cmd(command, str(proc), "--json", *extra, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    reply = json.loads(done.stdout)  # nothing but the JSON
    assert reply["ok"] is True
    assert "pulse 0" in done.stderr  # what the procedure printed is kept, on stderr
