"""`labctl show` of a long run: its first and last steps, a line for the ones between, and
every step with --all (and always in --json)."""

from __future__ import annotations

import re

import pyarrow.parquet as pq

from labctl.commands.runs import FOLD_ABOVE, FOLD_EDGE
from tests.support import json_out, labctl_cmd

PROCEDURE = """\
name: many-steps
log: every 60 s
steps:
  - repeat: 12
    steps:
      - Discharge at 1C for 5 minutes
      - Rest for 1 minute
      - Charge at 1C for 5 minutes
      - Rest for 1 minute
"""
ROW = re.compile(r"^\s*(\d+)\s+\d+\s+\S")  # a step row starts with its index and cycle


def _step_rows(text: str) -> list[int]:
    return [int(m.group(1)) for line in text.splitlines() if (m := ROW.match(line))]


def test_a_long_run_shows_its_first_and_last_steps(tmp_path):
    proc = tmp_path / "many.yaml"
    proc.write_text(PROCEDURE)
    out = json_out(labctl_cmd("run", str(proc), "--results", str(tmp_path / "r"), "--json",
                              check=True))
    run = out["run_dir"]
    n = pq.read_metadata(f"{run}/steps.parquet").num_rows
    assert n == 48 > FOLD_ABOVE

    folded = labctl_cmd("show", run, check=True).stdout
    shown = _step_rows(folded)
    assert shown == [*range(1, FOLD_EDGE + 1), *range(n - FOLD_EDGE + 1, n + 1)]
    assert f"{n - 2 * FOLD_EDGE} steps not shown" in folded

    every = labctl_cmd("show", run, "--all", check=True).stdout
    assert _step_rows(every) == list(range(1, n + 1))
    assert "not shown" not in every
    assert len(json_out(labctl_cmd("show", run, "--json", check=True))["steps"]) == n
