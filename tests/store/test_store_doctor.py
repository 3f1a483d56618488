"""doctor on damaged journals: repair what the journal allows, never drop good data."""

from __future__ import annotations

import numpy as np
import pandas as pd

from labctl.store.doctor import check_run
from labctl.store.journal import read_journal
from labctl.store.run import open_run
from labctl.store.tables import finalize
from tests.store.store_synth import write_run


def _damage_middle(path):
    raw = bytearray((path / "journal.bin").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (path / "journal.bin").write_bytes(bytes(raw))


def test_damage_after_the_tables_were_built_keeps_the_tables(tmp_path):
    run = write_run(tmp_path, "done", np.random.default_rng(41), n_cycles=1)
    finalize(run.path)
    _damage_middle(run.path)
    assert read_journal(run.path).corrupt_ranges
    report = check_run(run.path, repair=True)
    found = {f.check: f for f in report.findings}
    assert not found["journal"].ok and not found["journal"].repaired
    assert "hold all the data" in found["journal"].detail
    assert found["tables"].ok
    ts = open_run(run.path).timeseries  # still every sample, from the tables
    assert ts.test_time_s.to_numpy().tobytes() == run.samples["test_time_s"].tobytes()


def test_damage_in_a_crashed_run_is_rewritten_and_the_run_opens(tmp_path):
    run = write_run(tmp_path, "crashed", np.random.default_rng(42), crash_in_step=3)
    _damage_middle(run.path)
    damaged = read_journal(run.path)
    report = check_run(run.path, repair=True)
    found = {f.check: f for f in report.findings}
    assert found["journal"].repaired and "original kept" in found["journal"].detail
    fixed = read_journal(run.path)
    assert not fixed.corrupt_ranges and not fixed.torn_tail
    for name, col in damaged.samples.items():  # everything readable before is still there
        assert fixed.samples[name].tobytes() == col.tobytes()
    assert list(run.path.glob("journal.bin.damaged-*"))
    ts = open_run(run.path).timeseries
    assert isinstance(ts, pd.DataFrame) and len(ts) == len(damaged.samples["test_time_s"])
