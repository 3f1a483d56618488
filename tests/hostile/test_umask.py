"""Files labctl writes follow the umask, like the journal (issue 13 §3, Medium).

Atomic writes made run.json, Parquet tables, inputs/, analyses and exports mode 0600
whatever the umask, so colleagues on a shared results folder could not read them.
Run in-process with the umask set (quicker than a subprocess per command).
"""

from __future__ import annotations

import os
import stat

import pandas as pd
import pytest

import labctl
from labctl.engine.session import prepare, start_run
from labctl.store.analysis import save_analysis
from labctl.store.export import export_run


@pytest.fixture
def umask():
    old = os.umask(0o022)
    os.umask(old)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o077, 0o600), (0o002, 0o664)])
def test_results_files_follow_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    proc = tmp_path / "short.yaml"
    proc.write_text("name: short\nsteps:\n  - Discharge at 1C for 2 min\n  - Rest for 1 min\n")
    results = tmp_path / "results"
    out = start_run(prepare(proc), results_root=results)
    run = out.path
    save_analysis(run, "demo", tables={"t": pd.DataFrame({"x": [1.0]})}, summary={"n": 1},
                  csv={"t": pd.DataFrame({"x": [1.0]})})
    export_run(labctl.open_run(run), "csv", tmp_path / "out")
    files = [run / "run.json", run / "journal.bin", run / "timeseries.parquet", run / "log.txt",
             results / "index.jsonl", *(run / "inputs").iterdir(),
             *(p for p in (run / "analysis").rglob("*") if p.is_file()),
             *(p for p in (tmp_path / "out").rglob("*") if p.is_file())]
    assert len(files) > 8
    modes = {str(f.relative_to(tmp_path)): oct(stat.S_IMODE(f.stat().st_mode)) for f in files}
    assert set(modes.values()) == {oct(mode)}, modes
