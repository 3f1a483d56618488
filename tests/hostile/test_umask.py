"""Files labctl writes follow the umask, like the journal (issue 13 §3, Medium).

Atomic writes made run.json, Parquet tables, inputs/, analyses and exports mode 0600
whatever the umask, so colleagues on a shared results folder could not read them.
"""

from __future__ import annotations

import stat
import subprocess
import sys

import pytest

from tests.support import REPO

QUICKSTART = str(REPO / "procedures" / "quickstart.yaml")


def _labctl_with_umask(umask: str, *args: str) -> None:
    cmd = " ".join(["umask", umask, ";", sys.executable, "-m", "labctl.cli", *args])
    proc = subprocess.run(["sh", "-c", cmd], cwd=REPO, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(("umask", "mode"), [("077", 0o600), ("002", 0o664)])
def test_results_files_follow_the_umask(tmp_path, umask, mode):
    results = tmp_path / "results"
    _labctl_with_umask(umask, "run", QUICKSTART, "--results", str(results), "--no-progress")
    run = next(p for p in results.iterdir() if p.is_dir())
    _labctl_with_umask(umask, "analyze", "cycling", str(run))
    _labctl_with_umask(umask, "export", str(run), "--format", "csv", "-o", str(tmp_path / "out"))
    files = [run / "run.json", run / "journal.bin", run / "timeseries.parquet", run / "log.txt",
             results / "index.jsonl",
             *(run / "inputs").iterdir(), *(p for p in (run / "analysis").rglob("*") if p.is_file()),
             *(p for p in (tmp_path / "out").rglob("*") if p.is_file())]
    assert len(files) > 8
    modes = {str(f.relative_to(tmp_path)): oct(stat.S_IMODE(f.stat().st_mode)) for f in files}
    assert set(modes.values()) == {oct(mode)}, modes
