"""Runs several technician-output tests read: made once per session."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support import labctl_cmd


@pytest.fixture(scope="session")
def eis_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """procedures/eis.yaml on the NMC preset: (run directory, the `labctl run` process)."""
    root = tmp_path_factory.mktemp("eis-results")
    proc = labctl_cmd("run", "procedures/eis.yaml", "--cell", "nmc-1p95ah", "--results",
                      str(root), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    return next(p for p in root.iterdir() if p.is_dir()), proc
