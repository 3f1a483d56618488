"""Inputs that ended in a traceback now end in a message and exit status 2 (issue 13 §3).

A cell CSV field over 128 KiB; a cell CSV symlinked to /dev/zero; `analyze` where the
run's analysis folder cannot be written; an absolute path that is not a run given to
`show`/`export`/`stop`/`analyze` (`NotImplementedError: Non-relative patterns`).
"""

from __future__ import annotations

import os

import pytest

from tests.support import REPO, labctl_cmd

QUICKSTART = str(REPO / "procedures" / "quickstart.yaml")
LFP = (REPO / "fixtures" / "cells" / "lfp-2p2ah.yaml").read_text()
INLINE_R0 = """  r0_ohm:   # at 25 °C; colder is higher through activation_energy_ev
    soc:    [0.0,   0.05,  0.10,  0.20,  0.50,  1.0]
    values: [0.035, 0.028, 0.024, 0.022, 0.020, 0.021]
"""


def _cell_with_csv(folder, csv_name: str):
    assert INLINE_R0 in LFP
    cell = folder / "cell.yaml"
    cell.write_text(LFP.replace(INLINE_R0, f"  r0_ohm: {{csv: {csv_name}, column: r0_ohm}}\n"))
    return cell


def _refused(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr


def test_cell_csv_field_over_128_kib(tmp_path):
    (tmp_path / "r0.csv").write_text("soc,r0_ohm\n0," + "9" * 200_000 + "\n1,0.02\n")
    cell = _cell_with_csv(tmp_path, "r0.csv")
    _refused(labctl_cmd("validate", QUICKSTART, "--cell", str(cell)), "r0.csv",
             "not a readable CSV table")


@pytest.mark.parametrize("target", ["/dev/zero", "fifo"])
def test_cell_csv_that_is_a_device_or_fifo(tmp_path, target):
    folder = tmp_path / "cell"
    folder.mkdir()
    if target == "fifo":
        os.mkfifo(folder / "r0.csv")  # inside the folder: refused for what it is, not blocking
    else:
        os.symlink(target, folder / "r0.csv")
    cell = _cell_with_csv(folder, "r0.csv")
    _refused(labctl_cmd("validate", QUICKSTART, "--cell", str(cell), timeout=60), "r0.csv")


def test_cell_table_outside_the_cell_folder_is_refused_and_not_echoed(tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("soc,top-secret-header\n")
    (tmp_path / "cell").mkdir()
    cell = _cell_with_csv(tmp_path / "cell", "../secret.csv")
    proc = labctl_cmd("validate", QUICKSTART, "--cell", str(cell))
    _refused(proc, "leaves the cell file's folder")
    assert "top-secret-header" not in proc.stderr


def test_absolute_paths_that_are_not_runs(tmp_path):
    for args in (["show", "/etc/hostname"], ["show", str(tmp_path / "nope")],
                 ["export", str(tmp_path / "nope"), "--format", "csv", "-o", str(tmp_path / "o")],
                 ["stop", str(tmp_path / "nope")], ["analyze", "cycling", str(tmp_path / "nope")]):
        _refused(labctl_cmd(*args), "no run")


def test_analyze_where_the_analysis_folder_cannot_be_written(tmp_path):
    from labctl.engine.session import prepare, start_run

    run = start_run(prepare(QUICKSTART), results_root=tmp_path).path
    (run / "analysis").write_text("a file where the analysis folder would go")
    _refused(labctl_cmd("analyze", "cycling", str(run)), "cannot")
