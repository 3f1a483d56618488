"""Resume after the journal was cut at a record boundary never repeats measured work.

Issue 13 §3 (High): a cut just before a step's closing state record made resume
start from the previous step's snapshot, so the step ran again (4.41 Ah
discharged from a 2.2 Ah cell) and the run still said `completed`. Here a short
cycling run is cut at record boundaries (every cut just before a state record,
plus a spread of the others), resumed, and compared with the uncut run: the
same steps, and each cycle's discharge capacity within 2 % of the uncut run's
and never above the cell's capacity.
"""

from __future__ import annotations

import shutil

import pandas as pd

from labctl.engine.session import prepare, resume_run, start_run
from tests.hostile.helpers import as_interrupted, record_boundaries

PROCEDURE = """
name: cut-cycles
log: every 60 s
steps:
  - Discharge at 1C until {cell.min_voltage_v} V
  - repeat: 3
    steps:
      - Charge at 1C until {cell.max_voltage_v} V
      - Discharge at 1C until {cell.min_voltage_v} V
"""
def test_resume_after_cuts_at_record_boundaries_repeats_nothing(tmp_path):
    proc = tmp_path / "cut.yaml"
    proc.write_text(PROCEDURE)
    prep = prepare(proc)
    full = start_run(prep, results_root=tmp_path / "results")
    assert full.status == "completed"
    ref_cycles = pd.read_parquet(full.path / "cycles.parquet")
    ref_steps = pd.read_parquet(full.path / "steps.parquet")
    capacity = prep.cell.capacity_ah

    records = record_boundaries(full.path / "journal.bin")
    # The cuts that matter most: just before each state record (after its samples).
    before_state = [records[i - 1][0] for i, (_, what) in enumerate(records)
                    if what == "state" and i > 0]
    # ...and every other boundary after the run's start record (31 cuts for this run).
    cuts = sorted(set(before_state) | {end for end, _ in records[1:-1]})
    assert len(before_state) >= 6
    for k, cut in enumerate(cuts):
        run = tmp_path / f"cut{k}"
        shutil.copytree(full.path, run)
        as_interrupted(run, cut)
        out = resume_run(run)
        assert out.status == "completed", (cut, out.reason)
        steps = pd.read_parquet(run / "steps.parquet")
        assert list(steps["text"]) == list(ref_steps["text"]), cut  # every step once
        cycles = pd.read_parquet(run / "cycles.parquet")
        assert len(cycles) == len(ref_cycles), cut
        for got, want in zip(cycles["discharge_capacity_ah"], ref_cycles["discharge_capacity_ah"],
                             strict=True):
            assert got <= capacity * 1.02, (cut, got)
            assert abs(got - want) <= 0.02 * want, (cut, got, want)


def test_resume_removes_temporary_files_left_by_a_kill_during_finalize(tmp_path):
    """SIGKILL between writing a table's temporary file and renaming it left `.tmp`
    Parquet files that resume did not remove (issue 13 §3, Low)."""
    proc = tmp_path / "short.yaml"
    proc.write_text("name: short\nsteps:\n  - Rest for 1 min\n  - Rest for 1 min\n")
    out = start_run(prepare(proc), results_root=tmp_path / "results")
    first_end = next(e for e, what in record_boundaries(out.path / "journal.bin")
                     if what == "step_end")
    as_interrupted(out.path, first_end)
    # What atomic_path leaves behind when killed before its rename.
    for name in (".steps.parquet.k3j9x.tmp", ".timeseries.parquet.a81qz.tmp", ".run.json.zz1.tmp"):
        (out.path / name).write_bytes(b"PAR1 half a table")
    resumed = resume_run(out.path)
    assert resumed.status == "completed"
    assert not list(out.path.glob(".*.tmp"))
    assert "removed 3 temporary file(s)" in (out.path / "log.txt").read_text()


def test_a_snapshot_that_cannot_be_moved_on_is_refused_not_guessed():
    """Samples after the last snapshot of a simulated instrument whose state labctl cannot
    rebuild from them (no SoC in it): resume refuses instead of repeating that part."""
    import numpy as np
    import pytest

    from labctl.engine.resume import ResumeState, restore_instruments
    from labctl.errors import LabctlError

    class OpaqueSim:
        def get_state(self):
            return {"variables": [1.0]}

        def set_state(self, state):
            raise AssertionError("must not be restored")

    samples = {"test_time_s": np.array([10.0, 20.0]), "cycle_index": np.array([1, 1]),
               "charge_capacity_ah": np.zeros(2), "discharge_capacity_ah": np.array([0.1, 0.2]),
               "temperature_c": np.array([25.0, 25.0])}
    state = ResumeState([], None, None, 1, 2, {"cycler": {"variables": [0.5]}},
                        uncovered=samples, uncovered_has_reference=True)
    with pytest.raises(LabctlError, match="cannot be rebuilt"):
        restore_instruments({"cycler": OpaqueSim()}, state, type("Cell", (), {"capacity_ah": 2.2}))


def test_doctor_reports_and_repair_removes_temporary_files(tmp_path):
    from labctl.store.doctor import check_run

    proc = tmp_path / "short.yaml"
    proc.write_text("name: short\nsteps:\n  - Rest for 1 min\n")
    out = start_run(prepare(proc), results_root=tmp_path / "results")
    as_interrupted(out.path)
    (out.path / ".cycles.parquet.x1y2.tmp").write_bytes(b"PAR1")
    found = {f.check: f for f in check_run(out.path).findings}
    assert not found["temporary files"].ok
    assert (out.path / ".cycles.parquet.x1y2.tmp").exists()  # only reported without --repair
    repaired = {f.check: f for f in check_run(out.path, repair=True).findings}
    assert repaired["temporary files"].repaired
    assert not list(out.path.glob(".*.tmp"))
