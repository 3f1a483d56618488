"""engine/collector.py: the garbage collector leaves the process's earlier objects alone
during a run, and the caller gets its collector back as it was."""

from __future__ import annotations

import gc
import threading
import weakref
from pathlib import Path

import pytest

from labctl.engine.collector import earlier_objects_frozen

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_freeze_around():
    gc.unfreeze()  # another test's or plugin's freeze would change what these see
    yield
    gc.unfreeze()


class _Node:
    def __init__(self):
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_earlier_objects_are_frozen_inside_and_given_back_after():
    before = _Node()
    probe = weakref.ref(before)
    with earlier_objects_frozen():
        assert gc.get_freeze_count() > 0
        del before
        gc.collect()
        assert probe() is not None  # frozen: the collector does not look at it
        during = _Node()
        during_probe = weakref.ref(during)
        del during
        gc.collect()
        assert during_probe() is None  # what the run makes is collected as usual
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert probe() is None  # unfrozen: collectable again


def test_a_freeze_made_by_the_caller_is_left_as_it_is():
    gc.freeze()
    late = _Node()  # made after the caller's freeze: the block must not freeze it
    probe = weakref.ref(late)
    with earlier_objects_frozen():
        del late
        gc.collect()
        assert probe() is None
    # Not undone either (the count itself may fall: frozen objects still die by refcount).
    assert gc.get_freeze_count() > 0


def test_runs_side_by_side_share_one_freeze_undone_by_the_last():
    entered, release = threading.Event(), threading.Event()

    def other_run():
        with earlier_objects_frozen():
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=other_run)
    thread.start()
    assert entered.wait(10)
    with earlier_objects_frozen():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() > 0  # the other run still goes on
    release.set()
    thread.join(10)
    assert gc.get_freeze_count() == 0


def test_an_exception_in_the_block_still_unfreezes():
    with pytest.raises(RuntimeError), earlier_objects_frozen():
        raise RuntimeError("boom")
    assert gc.get_freeze_count() == 0


def test_an_in_process_run_gives_the_collector_back(tmp_path):
    from labctl.engine.session import prepare, start_run

    prep = prepare(ROOT / "procedures" / "quickstart.yaml",
                   station_path=ROOT / "instruments" / "sim.yaml")
    seen = []
    real_run = None

    from labctl.engine import runner

    real_run = runner.Engine.run

    def run(self):
        seen.append(gc.get_freeze_count())
        return real_run(self)

    runner.Engine.run = run
    try:
        outcome = start_run(prep, results_root=tmp_path, table_writer=None)
    finally:
        runner.Engine.run = real_run
    assert outcome.status == "completed"
    assert seen and seen[0] > 0  # frozen while the engine ran
    assert gc.get_freeze_count() == 0
