"""A cell file without a `model:` on a real bench: validate and run check the ceilings on
what the procedure's text guarantees, and `labctl plan` says why it cannot plan.

(A review found validate refusing every procedure for such a cell on Bench A: the plan's
twin needs the model, and the refusal told the user to use a real cycler, which Bench A is.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.plan.conftest import write
from tests.support import REPO, labctl_cmd

BENCH = str(REPO / "instruments" / "bench-a.yaml")  # a Keithley 2281S: real hardware


@pytest.fixture
def modelless_cell(tmp_path: Path) -> Path:
    data = yaml.safe_load((REPO / "fixtures" / "cells" / "lfp-2p2ah.yaml").read_text())
    del data["model"]
    path = tmp_path / "no-model.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_validate_passes_without_an_estimate(modelless_cell):
    args = ("validate", "procedures/capacity.yaml", "--station", BENCH, "--cell",
            str(modelless_cell))
    checked = labctl_cmd(*args, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith("ok")
    # capacity.yaml rests twice for rest_h = 1 h: at least 2 h, whatever the cell does
    assert "estimate: none" in checked.stdout and "at least 2 h" in checked.stdout
    estimate = json.loads(labctl_cmd(*args, "--json", timeout=60).stdout)["estimate"]
    assert estimate["duration_s"] is None and estimate["n_samples"] is None
    assert estimate["status"] == "unplanned"
    assert "no 'model:'" in estimate["unplanned"]


def test_a_procedure_for_centuries_is_still_refused(tmp_path, modelless_cell):
    proc = write(tmp_path, "centuries", "name: centuries\nsteps:\n  - repeat: 1000000000000\n"
                 "    steps:\n      - Rest for 1 second\n")
    inputs = (str(proc), "--station", BENCH, "--cell", str(modelless_cell))
    for args in (("validate", *inputs), ("run", *inputs, "--results", str(tmp_path / "results"))):
        done = labctl_cmd(*args, timeout=60)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        # 1e12 one-second rests: 31,700 years, a lower bound the text alone gives
        assert "refused" in done.stderr and "at least 3.17e+04 years" in done.stderr
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_bounded_by_max_duration_it_passes(tmp_path, modelless_cell):
    proc = write(tmp_path, "bounded", "name: bounded\nmax_duration: 2 days\nsteps:\n"
                 "  - repeat: 1000000000000\n    steps:\n      - Rest for 1 second\n")
    checked = labctl_cmd("validate", str(proc), "--station", BENCH, "--cell",
                         str(modelless_cell), timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_plan_says_the_cell_needs_a_model(modelless_cell):
    planned = labctl_cmd("plan", "procedures/capacity.yaml", "--station", BENCH, "--cell",
                         str(modelless_cell), timeout=60)
    assert planned.returncode == 2
    assert "Traceback" not in planned.stderr
    assert "no-model.yaml" in planned.stderr and "no 'model:' section" in planned.stderr
    assert "labctl analyze hppc" in planned.stderr
    assert "real cycler" not in planned.stderr  # the plan's twin is always simulated
