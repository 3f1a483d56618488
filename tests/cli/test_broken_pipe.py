"""`labctl ... | head`: the reader closing the pipe is not an error: no traceback, no
"error:" line, status 141 (128 + SIGPIPE, as `yes | head` leaves `yes`)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import REPO


@pytest.mark.parametrize("args", [["validate", "procedures/quickstart.yaml"],
                                  ["plan", "procedures/quickstart.yaml"]])
def test_a_closed_pipe_ends_the_command_quietly(args):
    p = subprocess.Popen([sys.executable, "-m", "labctl.cli", *args], cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # closed before the command writes: its first write meets EPIPE
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 141
    assert "Traceback" not in err and "error" not in err.lower()
