"""`labctl resume` loads nothing a tampered run.json points at (issue 13 §3, Medium).

Editing a copied run's run.json (procedure -> a .py, station -> a folder whose
station lists a plugin) ran that code on resume before the sha256 check refused
it. The files are now compared with the run's inputs/ copies first.
"""

from __future__ import annotations

import json

from labctl.engine.session import prepare, start_run
from tests.hostile.helpers import as_interrupted, record_boundaries
from tests.support import REPO, labctl_cmd

MARKER = 'from pathlib import Path\nPath(__file__).with_suffix(".imported").write_text("x")\n'


def _interrupted_run(tmp_path):
    proc = tmp_path / "p.yaml"
    proc.write_text("name: p\nsteps:\n  - Rest for 1 min\n  - Rest for 1 min\n")
    out = start_run(prepare(proc), results_root=tmp_path / "results")
    first_end = next(e for e, what in record_boundaries(out.path / "journal.bin")
                     if what == "step_end")
    as_interrupted(out.path, first_end)
    return out.path


def _edit_meta(run, **changes):
    meta = json.loads((run / "run.json").read_text())
    for key, (field, value) in changes.items():
        meta[key][field] = value
    (run / "run.json").write_text(json.dumps(meta))


def test_procedure_swapped_for_python_is_not_run(tmp_path):
    run = _interrupted_run(tmp_path)
    evil = tmp_path / "evil.py"
    evil.write_text(MARKER + "def procedure(ctx):\n    yield ctx.step('Rest for 1 s')\n")
    _edit_meta(run, procedure=("file", str(evil)))
    proc = labctl_cmd("resume", str(run))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "copy" in proc.stderr
    assert not (tmp_path / "evil.imported").exists()


def test_station_swapped_for_one_with_plugins_is_not_loaded(tmp_path):
    run = _interrupted_run(tmp_path)
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "evil.py").write_text(MARKER)
    (folder / "station.yaml").write_text("plugins: [evil.py]\n"
                                         + (REPO / "instruments" / "sim.yaml").read_text())
    _edit_meta(run, station=("file", str(folder / "station.yaml")))
    proc = labctl_cmd("resume", str(run))
    assert proc.returncode == 2, proc.stderr
    assert "differs from the copy" in proc.stderr
    assert not (folder / "evil.imported").exists()


def test_untouched_run_still_resumes(tmp_path):
    run = _interrupted_run(tmp_path)
    proc = labctl_cmd("resume", str(run), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "completed"
