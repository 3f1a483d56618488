"""Helpers for tests that run the `labctl` command as a user does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def labctl_cmd(*args: str, cwd: Path | None = None, timeout: float = 120, env: dict | None = None,
               check: bool = False) -> subprocess.CompletedProcess:
    """Run the `labctl` command the way a user does (a subprocess)."""
    full_env = dict(os.environ)
    full_env.pop("LABCTL_SIM_SPEED", None)
    if env:
        full_env.update(env)
    proc = subprocess.run(
        [sys.executable, "-m", "labctl.cli", *args],
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"labctl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def json_out(proc: subprocess.CompletedProcess) -> dict:
    return json.loads(proc.stdout)
