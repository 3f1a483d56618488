"""kill -9 at many random moments: nothing flushed is ever lost or duplicated.

The trials themselves live in bench/crash_trials.py (which prints the figures);
here at least 50 kills land inside a run and every one must recover: the run
directory opens up to the last flush, `resume` finishes it, every sample that
was in the journal at the kill is still there, once, in order, and every step
ran exactly once.
"""

from __future__ import annotations

from bench.crash_trials import run_trials
from labctl.store.doctor import check_run

KILLS_INSIDE_A_RUN = 50  # the issue asks for at least 50


def test_kill_9_at_random_moments_loses_nothing(tmp_path):
    trials = run_trials(tmp_path, KILLS_INSIDE_A_RUN, seed=20261125, max_attempts=80)
    inside = [t for t in trials if t.outcome == "interrupted"]
    assert len(inside) >= KILLS_INSIDE_A_RUN, [t.outcome for t in trials]
    for t in trials:
        assert t.outcome in ("interrupted", "completed") or t.outcome.startswith("before")
        assert t.lost == 0, t
        assert t.duplicated == 0, t
        if t.outcome in ("interrupted", "completed"):
            assert t.steps_ok, t
    assert all(t.resumed_status == "completed" for t in inside)
    assert all(t.flushed >= 0 for t in trials)
    some_run = next(p for p in tmp_path.glob("t*/results/*") if p.is_dir())
    assert check_run(some_run).findings  # doctor can describe these runs
